#include "common/synth/synthetic_mosaic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/codec/codec.h"
#include "common/deskew/deskew.h"

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

// A light-sheet stack: planes are sections of one 3-D scene, and tiles are offset in z too.
TEST(SyntheticMosaicTest, LightSheetPlanesAreSectionsOfOneVolume) {
  SyntheticOptions o;
  o.cols = 2, o.rows = 1, o.width = 256, o.height = 256, o.channels = 1, o.z_planes = 24, o.light_sheet = true;
  o.noise = false, o.vignetting = false;
  ASSERT_TRUE(ValidateOptions(o).ok());
  SyntheticMosaic m(o);
  EXPECT_NE(m.TrueZ(0), m.TrueZ(1));
  EXPECT_LE(std::abs(m.TrueZ(0)), o.z_error_planes);
  // Neighbouring planes look alike (a cell spans several), far ones do not.
  auto correlation = [&](uint32_t z0, uint32_t z1) {
    const auto a = Render(m, {.t = 0, .c = 0, .z = z0}), b = Render(m, {.t = 0, .c = 0, .z = z1});
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      sa += a[i], sb += b[i], saa += double(a[i]) * a[i], sbb += double(b[i]) * b[i], sab += double(a[i]) * b[i];
    }
    const double n = static_cast<double>(a.size());
    return (sab - sa * sb / n) / std::sqrt((saa - sa * sa / n) * (sbb - sb * sb / n));
  };
  EXPECT_GT(correlation(10, 11), 0.6);
  EXPECT_LT(correlation(10, 22), 0.2);
}

// An oblique stack is the scene sheared by the deskew's convention: deskewing its planes gives
// back the straight sections of the same scene (copy path: 45 degrees, a step of sqrt(2) px).
TEST(SyntheticMosaicTest, DeskewingAnObliqueStackGivesBackTheVolume) {
  SyntheticOptions o;
  o.cols = 1, o.rows = 1, o.width = 80, o.height = 48, o.channels = 1, o.z_planes = 12;
  o.noise = false, o.vignetting = false, o.pixel_size_um = 2.0;  // planes 2 um apart, as the straight stack's
  SyntheticOptions straight = o;
  straight.light_sheet = true;
  o.oblique = ObliqueScan{.angle_deg = 45, .stage_step_um = 2.0 * std::sqrt(2.0)};
  ASSERT_TRUE(ValidateOptions(o).ok()) << ValidateOptions(o).ToString();
  SyntheticMosaic skewed(o), flat(straight);
  ASSERT_TRUE(skewed.plan().oblique.has_value());
  auto g = deskew::Plan(DeskewParamsOf(skewed.plan()), o.width, o.height, o.z_planes);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_TRUE(g->copy);
  std::vector<uint16_t> raw(80 * 48), want(80 * 48), out(size_t{g->width} * g->height);
  auto bytes = [](std::vector<uint16_t>& v) { return std::span(reinterpret_cast<uint8_t*>(v.data()), v.size() * 2); };
  size_t compared = 0;
  for (uint32_t k = 0; k < o.z_planes; ++k) {
    skewed.RenderFrame({.t = 0, .c = 0, .z = k}, bytes(raw));
    flat.RenderFrame({.t = 0, .c = 0, .z = k}, bytes(want));
    ASSERT_TRUE(deskew::DeskewPlane<uint16_t>(*g, k, raw, out).ok());
    const uint32_t shift = static_cast<uint32_t>(g->Shift(k));
    for (uint32_t y = 0; y < o.height; ++y) {
      for (uint32_t x = shift; x < o.width; ++x, ++compared) {
        ASSERT_LE(std::abs(int{out[y * g->width + x]} - int{want[y * o.width + x]}), 1) << "plane " << k << " (" << x
                                                                                          << ", " << y << ")";
      }
    }
  }
  EXPECT_GT(compared, 80u * 48 * 6);
  o.oblique->rotate_90 = 1;
  EXPECT_NE(ValidateOptions(o).message().find("unrotated"), std::string::npos);
}

}  // namespace
}  // namespace tessera::synth
