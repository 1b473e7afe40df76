// push_frames: the smallest acquisition program. Opens a slide of 2 x 2 tiles, 2 channels,
// pushes a gradient as every frame, closes, and prints the slide id.
//
//   build/client/examples/push_frames tcp://127.0.0.1:7400
#include <cstdio>
#include <vector>

#include "client/client.h"
#include "client/scanner.h"

int main(int argc, char** argv) {
  tessera::ScanPlan plan;
  plan.name = "example";
  plan.width = 640;
  plan.height = 480;
  plan.channels = {"DAPI", "GFP"};
  plan.pixel_size_um = {0.65, 0.65, 1.0};
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c)
      plan.tiles.push_back({.name = "fov" + std::to_string(r * 2 + c), .x = c * 576.0, .y = r * 432.0});

  auto scanner = tessera::Scanner::Open(argc > 1 ? argv[1] : tessera::kDefaultServer, plan);
  if (!scanner.ok()) {
    std::fprintf(stderr, "%s\n", scanner.status().ToString().c_str());
    return 1;
  }
  std::vector<uint16_t> pixels(size_t{plan.width} * plan.height);
  for (uint32_t t = 0; t < plan.tiles.size(); ++t) {
    for (uint32_t c = 0; c < plan.channels.size(); ++c) {
      for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint16_t>(100 + (i % plan.width) * (t + c + 1));
      auto bytes = std::span(reinterpret_cast<const uint8_t*>(pixels.data()), pixels.size() * 2);
      if (auto s = (*scanner)->Push({.t = t, .c = c, .z = 0}, bytes); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
  if (auto s = (*scanner)->Close(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s\n", (*scanner)->slide_id().c_str());
  return 0;
}
