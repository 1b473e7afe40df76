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

}  // namespace
}  // namespace tessera::stitch
