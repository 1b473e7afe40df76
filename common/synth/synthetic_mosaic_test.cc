#include "common/synth/synthetic_mosaic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/codec/codec.h"

namespace tessera::synth {
namespace {

std::vector<uint16_t> Render(const SyntheticMosaic& m, FrameKey k) {
  std::vector<uint16_t> px(size_t{m.plan().width} * m.plan().height);
  m.RenderFrame(k, {reinterpret_cast<uint8_t*>(px.data()), px.size() * 2});
  return px;
}

TEST(SyntheticMosaicTest, PlanIsAGridOfNamedTilesAtNominalPositions) {
  SyntheticOptions o;
  o.cols = 3, o.rows = 2, o.width = 100, o.height = 80, o.overlap = 0.2, o.channels = 3;
  SyntheticMosaic m(o);
  const ScanPlan& p = m.plan();
  ASSERT_EQ(p.tiles.size(), 6u);
  EXPECT_EQ(p.tiles[4].name, "r001_c001");
  EXPECT_DOUBLE_EQ(p.tiles[4].x, 80.0);
  EXPECT_DOUBLE_EQ(p.tiles[4].y, 64.0);
  EXPECT_EQ(p.tiles[5].row, 1);
  EXPECT_EQ(p.tiles[5].col, 2);
  EXPECT_EQ(p.channels, (std::vector<std::string>{"DAPI", "GFP", "mCherry"}));
  EXPECT_TRUE(p.Validate().ok());
  for (uint32_t t = 0; t < 6; ++t) {
    EXPECT_LE(std::abs(m.TruePosition(t)[0] - p.tiles[t].x), o.position_error_px);
    EXPECT_LE(std::abs(m.TruePosition(t)[1] - p.tiles[t].y), o.position_error_px);
  }
}

TEST(SyntheticMosaicTest, RenderingIsDeterministicAndDiffersPerFrame) {
  SyntheticMosaic m(SyntheticOptions{});
  EXPECT_EQ(Render(m, {1, 0, 0}), Render(m, {1, 0, 0}));
  EXPECT_NE(Render(m, {1, 0, 0}), Render(m, {1, 1, 0}));
  EXPECT_NE(Render(m, {1, 0, 0}), Render(m, {2, 0, 0}));
}

TEST(SyntheticMosaicTest, NeighboursShowTheSameSceneAtTheirTruePositions) {
  SyntheticOptions o;
  o.cols = 2, o.rows = 1, o.width = 200, o.height = 200, o.overlap = 0.25, o.channels = 1;
  o.position_error_px = 0;  // true == nominal: overlap columns must match exactly
  o.noise = false, o.vignetting = false;
  SyntheticMosaic m(o);
  auto left = Render(m, {0, 0, 0}), right = Render(m, {1, 0, 0});
  const uint32_t dx = 150;  // right tile starts at x = 150
  double energy = 0;
  for (uint32_t y = 0; y < 200; ++y)
    for (uint32_t x = dx; x < 200; ++x) {
      ASSERT_EQ(left[y * 200 + x], right[y * 200 + (x - dx)]) << "x=" << x << " y=" << y;
      energy += left[y * 200 + x] - 100.0;
    }
  EXPECT_GT(energy, 0) << "the overlap holds no structure: the test would prove nothing";
}

TEST(SyntheticMosaicTest, Uint8StaysInRangeAndCompressesLikeAnImage) {
  SyntheticOptions o;
  o.dtype = Dtype::kUint8;
  SyntheticMosaic m(o);
  std::vector<uint8_t> px(m.plan().frame_bytes());
  m.RenderFrame({0, 0, 0}, px);
  EXPECT_GT(*std::max_element(px.begin(), px.end()), 10);
  SyntheticMosaic m16{SyntheticOptions{}};
  auto frame = Render(m16, {3, 0, 0});
  auto packed = codec::Compress({reinterpret_cast<const uint8_t*>(frame.data()), frame.size() * 2}, 2, {});
  ASSERT_TRUE(packed.ok());
  const double ratio = static_cast<double>(packed->size()) / static_cast<double>(frame.size() * 2);
  EXPECT_GT(ratio, 0.2);  // noisy, like a camera
  EXPECT_LT(ratio, 0.8);  // yet structured
}

TEST(SyntheticMosaicTest, ValidateOptionsNamesTheProblem) {
  SyntheticOptions o;
  o.overlap = 0.95;
  EXPECT_NE(ValidateOptions(o).message().find("overlap"), std::string::npos);
  o = {};
  o.channels = 0;
  EXPECT_EQ(ValidateOptions(o).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateOptions(SyntheticOptions{}).ok());
}

}  // namespace
}  // namespace tessera::synth
