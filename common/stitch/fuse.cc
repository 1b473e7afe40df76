#include "common/stitch/fuse.h"

#include <algorithm>
#include <cmath>

namespace tessera::stitch {

std::vector<uint16_t> FuseBox(const Rect& box, const std::vector<FuseInput>& tiles, int64_t blend) {
  const int64_t w = box.width(), h = box.height();
  // Inside one tile only (most of a mosaic with modest overlaps): its pixels, copied.
  auto covered = [&](const FuseInput& t) {
    return t.x + t.window_x <= box.x0 && t.y + t.window_y <= box.y0 && t.x + t.window_x + t.window.width >= box.x1 &&
           t.y + t.window_y + t.window.height >= box.y1;
  };
  auto overlaps = [&](const FuseInput& t) {
    return t.x < box.x1 && t.y < box.y1 && t.x + t.width > box.x0 && t.y + t.height > box.y0;
  };
  if (std::count_if(tiles.begin(), tiles.end(), overlaps) == 1) {
    const auto only = std::find_if(tiles.begin(), tiles.end(), overlaps);
    if (covered(*only)) {
      std::vector<uint16_t> out(static_cast<size_t>(w * h));
      const int64_t stride = only->window.stride ? only->window.stride : only->window.width;
      for (int64_t y = 0; y < h; ++y) {
        const uint16_t* src = only->window.data + (box.y0 + y - only->y - only->window_y) * stride +
                              (box.x0 - only->x - only->window_x);
        std::copy_n(src, w, out.data() + y * w);
      }
      return out;
    }
  }
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
    const int64_t stride = t.window.stride ? t.window.stride : t.window.width, n = in_box.width();
    for (int64_t y = in_box.y0; y < in_box.y1; ++y) {
      const float wy = ramp(y - t.y, t.height);
      const uint16_t* src = t.window.data + (y - t.y - t.window_y) * stride + (in_box.x0 - t.x - t.window_x);
      float* s = sum.data() + (y - box.y0) * w + (in_box.x0 - box.x0);
      float* wt = weight.data() + (y - box.y0) * w + (in_box.x0 - box.x0);
      for (int64_t i = 0; i < n; ++i) {
        const float k = wy * wx[static_cast<size_t>(i)];
        s[i] += k * static_cast<float>(src[i]);
        wt[i] += k;
      }
    }
  }
  std::vector<uint16_t> out(sum.size(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    if (weight[i] > 0) out[i] = static_cast<uint16_t>(std::min(sum[i] / weight[i] + 0.5f, 65535.0f));  // rounded
  }
  return out;
}

}  // namespace tessera::stitch
