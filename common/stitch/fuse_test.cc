#include "common/stitch/fuse.h"

#include <gtest/gtest.h>

#include <random>

namespace tessera::stitch {
namespace {

TEST(Fuse, CropsOfOneImageFuseBackToItExactly) {
  const int64_t W = 300, H = 200;
  std::vector<uint16_t> big(static_cast<size_t>(W * H));
  std::mt19937 rng(1);
  for (auto& v : big) v = static_cast<uint16_t>(rng() % 60000);
  // Four 160 x 120 crops overlapping by 20-40 pixels.
  const int64_t xs[] = {0, 140}, ys[] = {0, 80};
  std::vector<std::vector<uint16_t>> crops;
  std::vector<FuseInput> in;
  for (int64_t y0 : ys) {
    for (int64_t x0 : xs) {
      auto& c = crops.emplace_back(160 * 120);
      for (int64_t y = 0; y < 120; ++y)
        for (int64_t x = 0; x < 160; ++x) c[static_cast<size_t>(y * 160 + x)] = big[static_cast<size_t>((y0 + y) * W + x0 + x)];
    }
  }
  size_t k = 0;
  for (int64_t y0 : ys)
    for (int64_t x0 : xs) in.push_back({{crops[k++].data(), 160, 120, 0}, 0, 0, x0, y0, 160, 120});
  const auto out = FuseBox({0, 0, W, H}, in, 16);
  EXPECT_EQ(out, big);
  // A box in the middle, from windows of the tiles only: the same pixels.
  std::vector<FuseInput> windows;
  for (const auto& t : in) {
    // the window [40, 140) x [30, 110) of each tile
    windows.push_back({{t.window.data + 30 * 160 + 40, 100, 80, 160}, 40, 30, t.x, t.y, 160, 120});
  }
  const Rect box{100, 50, 130, 100};  // inside tile (0, 0)'s window
  const auto part = FuseBox(box, windows, 16);
  for (int64_t y = box.y0; y < box.y1; ++y)
    for (int64_t x = box.x0; x < box.x1; ++x)
      EXPECT_EQ(part[static_cast<size_t>((y - box.y0) * box.width() + x - box.x0)], big[static_cast<size_t>(y * W + x)]);
}

TEST(Fuse, OverlapsBlendSmoothlyAndUncoveredIsZero) {
  std::vector<uint16_t> a(100 * 10, 100), b(100 * 10, 200);
  std::vector<FuseInput> in = {{{a.data(), 100, 10, 0}, 0, 0, 0, 0, 100, 10}, {{b.data(), 100, 10, 0}, 0, 0, 60, 0, 100, 10}};
  const auto out = FuseBox({0, 0, 170, 10}, in, 20);
  auto at = [&](int64_t x) { return out[static_cast<size_t>(5 * 170 + x)]; };
  EXPECT_EQ(at(10), 100);
  EXPECT_EQ(at(165), 0);    // beyond b
  EXPECT_EQ(at(120), 200);  // b alone
  // Across the overlap [60, 100): from a's value to b's, never backwards.
  EXPECT_EQ(at(60), 105);   // b's edge weighs 1/20 against a's full weight
  for (int64_t x = 61; x < 100; ++x) EXPECT_GE(at(x), at(x - 1)) << x;
  EXPECT_GT(at(99), 190);
}

// Pixel by pixel, the definition: the feathered mean of the windows holding the pixel.
std::vector<uint16_t> Reference(const Rect& box, const std::vector<FuseInput>& tiles, int64_t blend) {
  const float b = static_cast<float>(std::max<int64_t>(1, blend));
  auto ramp = [b](int64_t i, int64_t n) { return std::min(1.0f, static_cast<float>(std::min(i, n - 1 - i) + 1) / b); };
  std::vector<uint16_t> out;
  for (int64_t y = box.y0; y < box.y1; ++y) {
    for (int64_t x = box.x0; x < box.x1; ++x) {
      float sum = 0, weight = 0;
      for (const FuseInput& t : tiles) {
        const int64_t wx = x - t.x - t.window_x, wy = y - t.y - t.window_y;
        if (wx < 0 || wy < 0 || wx >= t.window.width || wy >= t.window.height) continue;
        const float k = ramp(y - t.y, t.height) * ramp(x - t.x, t.width);
        sum += k * static_cast<float>(t.window.data[wy * (t.window.stride ? t.window.stride : t.window.width) + wx]);
        weight += k;
      }
      out.push_back(weight > 0 ? static_cast<uint16_t>(std::min(sum / weight + 0.5f, 65535.0f)) : 0);
    }
  }
  return out;
}

TEST(Fuse, AnyLayoutOfWindowsGivesTheDefinitionsPixelsExactly) {
  std::mt19937 rng(7);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE(round);
    std::vector<std::vector<uint16_t>> pixels;
    std::vector<FuseInput> in;
    const int n = static_cast<int>(uniform(0, 6));
    for (int i = 0; i < n; ++i) {
      const int64_t tw = uniform(8, 90), th = uniform(8, 90);
      auto& p = pixels.emplace_back(static_cast<size_t>(tw * th));
      for (auto& v : p) v = static_cast<uint16_t>(rng());
      // A window of the tile (a part, or all of it), seen through its stride.
      const int64_t wx = uniform(0, tw - 1), wy = uniform(0, th - 1);
      const int64_t ww = uniform(1, tw - wx), wh = uniform(1, th - wy);
      in.push_back({{p.data() + wy * tw + wx, ww, wh, tw}, wx, wy, uniform(-40, 120), uniform(-40, 120), tw, th});
    }
    const Rect box{uniform(-20, 60), uniform(-20, 60), 0, 0};
    const Rect b{box.x0, box.y0, box.x0 + uniform(1, 100), box.y0 + uniform(1, 100)};
    const int64_t blend = uniform(1, 40);
    EXPECT_EQ(FuseBox(b, in, blend), Reference(b, in, blend));
  }
}

}  // namespace
}  // namespace tessera::stitch
