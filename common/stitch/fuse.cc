#include "common/stitch/fuse.h"

#include <algorithm>
#include <cmath>

namespace tessera::stitch {

void FuseBox(const Rect& box, std::span<const FuseInput> tiles, int64_t blend, std::span<uint16_t> out) {
  const int64_t w = box.width();
  const float b = static_cast<float>(std::max<int64_t>(1, blend));
  auto ramp = [b](int64_t i, int64_t n) { return std::min(1.0f, static_cast<float>(std::min(i, n - 1 - i) + 1) / b); };
  // Each tile's part of the box (the part its window holds), and its feather along x there.
  struct Part {
    const FuseInput* t;
    Rect in_box;
    std::vector<float> wx;
  };
  std::vector<Part> parts;
  for (const FuseInput& t : tiles) {
    const Rect in_box{std::max(box.x0, t.x + t.window_x), std::max(box.y0, t.y + t.window_y),
                      std::min(box.x1, t.x + t.window_x + t.window.width),
                      std::min(box.y1, t.y + t.window_y + t.window.height)};
    if (in_box.empty()) continue;
    Part& p = parts.emplace_back(Part{&t, in_box, std::vector<float>(static_cast<size_t>(in_box.width()))});
    for (int64_t x = in_box.x0; x < in_box.x1; ++x) p.wx[static_cast<size_t>(x - in_box.x0)] = ramp(x - t.x, t.width);
  }
  // Row by row, in runs of columns covered by the same tiles: a run of one tile is its pixels
  // (what the blend gives there too), a run of several is blended in the tiles' order.
  struct Span {
    const Part* part;
    const uint16_t* src;  // the tile's pixel at column in_box.x0 of this row
    float wy;
  };
  std::vector<Span> spans;
  std::vector<int64_t> edges;
  std::vector<float> sum(static_cast<size_t>(w)), weight(static_cast<size_t>(w));
  std::vector<const Span*> over;
  for (int64_t y = box.y0; y < box.y1; ++y) {
    uint16_t* row = out.data() + (y - box.y0) * w;
    spans.clear();
    edges.assign({box.x0, box.x1});
    for (const Part& p : parts) {
      if (y < p.in_box.y0 || y >= p.in_box.y1) continue;
      const FuseInput& t = *p.t;
      const int64_t stride = t.window.stride ? t.window.stride : t.window.width;
      spans.push_back({&p, t.window.data + (y - t.y - t.window_y) * stride + (p.in_box.x0 - t.x - t.window_x),
                       ramp(y - t.y, t.height)});
      edges.push_back(p.in_box.x0);
      edges.push_back(p.in_box.x1);
    }
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    for (size_t e = 0; e + 1 < edges.size(); ++e) {
      const int64_t x0 = edges[e], x1 = edges[e + 1], n = x1 - x0;
      over.clear();
      for (const Span& s : spans) {
        if (s.part->in_box.x0 <= x0 && s.part->in_box.x1 >= x1) over.push_back(&s);
      }
      uint16_t* dst = row + (x0 - box.x0);
      if (over.empty()) {
        std::fill_n(dst, n, uint16_t{0});
      } else if (over.size() == 1) {
        std::copy_n(over[0]->src + (x0 - over[0]->part->in_box.x0), n, dst);
      } else {
        float* sm = sum.data();
        float* wt = weight.data();
        for (size_t k = 0; k < over.size(); ++k) {
          const Span& s = *over[k];
          const int64_t at = x0 - s.part->in_box.x0;
          const uint16_t* src = s.src + at;
          const float* wx = s.part->wx.data() + at;
          for (int64_t i = 0; i < n; ++i) {
            const float kw = s.wy * wx[i];
            sm[i] = (k == 0 ? 0.0f : sm[i]) + kw * static_cast<float>(src[i]);
            wt[i] = (k == 0 ? 0.0f : wt[i]) + kw;
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          dst[i] = wt[i] > 0 ? static_cast<uint16_t>(std::min(sm[i] / wt[i] + 0.5f, 65535.0f)) : 0;  // rounded
        }
      }
    }
  }
}

std::vector<uint16_t> FuseBox(const Rect& box, std::span<const FuseInput> tiles, int64_t blend) {
  std::vector<uint16_t> out(static_cast<size_t>(box.width() * box.height()));
  FuseBox(box, tiles, blend, out);
  return out;
}

}  // namespace tessera::stitch
