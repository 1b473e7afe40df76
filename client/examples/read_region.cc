// read_region: what an analysis script does with Tessera. Reads a mosaic region of a slide at
// a zoom level, all channels, and prints each channel's mean and brightest pixel in micrometres.
//
//   build/client/examples/read_region tcp://127.0.0.1:7400 s000001 [level]
#include <cstdio>
#include <cstdlib>

#include "client/client.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: read_region MANAGER SLIDE [LEVEL]\n");
    return 2;
  }
  tessera::Client client(argv[1]);
  auto view = client.Describe(argv[2]);
  if (!view.ok()) {
    std::fprintf(stderr, "error: %s\n", view.status().ToString().c_str());
    return 1;
  }
  const uint32_t level = argc > 3 ? static_cast<uint32_t>(std::atoi(argv[3])) : view->level_count - 1;
  // The whole mosaic at that level: the dealer clips the box to the slide.
  auto region = client.ReadRegion({.slide = argv[2], .level = level, .x = 0, .y = 0,
                                   .width = int64_t{1} << 40, .height = int64_t{1} << 40});
  if (!region.ok()) {
    std::fprintf(stderr, "error: %s\n", region.status().ToString().c_str());
    return 1;
  }
  const auto& a = *region;
  std::printf("slide %s level %u: %lld x %lld px, %.3f um/px\n", argv[2], a.level,
              static_cast<long long>(a.shape[3]), static_cast<long long>(a.shape[2]), a.pixel_size_um[0]);
  for (int64_t c = 0; c < a.shape[0]; ++c) {
    double sum = 0;
    uint32_t best = 0;
    int64_t bx = 0, by = 0;
    for (int64_t y = 0; y < a.shape[2]; ++y) {
      for (int64_t x = 0; x < a.shape[3]; ++x) {
        const size_t i = a.index(c, 0, y, x);
        const uint32_t v = a.dtype == tessera::Dtype::kUint16 ? a.values<uint16_t>()[i] : a.values<uint8_t>()[i];
        sum += v;
        if (v > best) best = v, bx = x, by = y;
      }
    }
    std::printf("channel %s: mean %.1f, brightest %u at (%.1f, %.1f) um\n",
                view->summary.plan.channels[a.channels[static_cast<size_t>(c)]].c_str(),
                sum / static_cast<double>(a.shape[2] * a.shape[3]), best,
                static_cast<double>(a.x + bx) * a.pixel_size_um[0], static_cast<double>(a.y + by) * a.pixel_size_um[1]);
  }
  return 0;
}
