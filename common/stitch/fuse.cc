#include "common/stitch/fuse.h"

#include <algorithm>
#include <cmath>

namespace tessera::stitch {

std::vector<uint16_t> FuseBox(const Rect& box, const std::vector<FuseInput>& tiles, int64_t blend) {
  const int64_t w = box.width(), h = box.height();
  std::vector<float> sum(static_cast<size_t>(w * h), 0.0f), weight(sum.size(), 0.0f);
  const float b = static_cast<float>(std::max<int64_t>(1, blend));
  auto ramp = [b](int64_t i, int64_t n) { return std::min(1.0f, static_cast<float>(std::min(i, n - 1 - i) + 1) / b); };
  for (const FuseInput& t : tiles) {
    // The part of the box this tile covers, and of that the part its window holds.
    const Rect in_box{std::max(box.x0, t.x + t.window_x), std::max(box.y0, t.y + t.window_y),
                      std::min(box.x1, t.x + t.window_x + t.window.width),
                      std::min(box.y1, t.y + t.window_y + t.window.height)};
    if (in_box.empty()) continue;
    std::vector<float> wx(static_cast<size_t>(in_box.width()));
    for (int64_t x = in_box.x0; x < in_box.x1; ++x) wx[static_cast<size_t>(x - in_box.x0)] = ramp(x - t.x, t.width);
    for (int64_t y = in_box.y0; y < in_box.y1; ++y) {
      const float wy = ramp(y - t.y, t.height);
      const int64_t ty = y - t.y - t.window_y;
      float* s = sum.data() + (y - box.y0) * w + (in_box.x0 - box.x0);
      float* wt = weight.data() + (y - box.y0) * w + (in_box.x0 - box.x0);
      for (int64_t x = in_box.x0; x < in_box.x1; ++x) {
        const float k = wy * wx[static_cast<size_t>(x - in_box.x0)];
        *s++ += k * static_cast<float>(t.window.at(x - t.x - t.window_x, ty));
        *wt++ += k;
      }
    }
  }
  std::vector<uint16_t> out(sum.size(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    if (weight[i] > 0) out[i] = static_cast<uint16_t>(std::clamp(std::lround(sum[i] / weight[i]), 0L, 65535L));
  }
  return out;
}

}  // namespace tessera::stitch
