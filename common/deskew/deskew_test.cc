#include "common/deskew/deskew.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

namespace tessera::deskew {
namespace {

TEST(DeskewTest, GeometryFollowsTheConvention) {
  // 45 degrees, a step of sqrt(2) pixels: a shear of exactly one pixel, within rounding.
  auto g = Plan({.angle_deg = 45, .stage_step_um = std::sqrt(2.0) * 0.5, .pixel_size_um = 0.5}, 100, 20, 11);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(g->copy);
  EXPECT_EQ(g->shear, 1.0);
  EXPECT_EQ(g->width, 100u + 10u);
  EXPECT_EQ(g->height, 20u);
  EXPECT_NEAR(g->voxel_um[2], 0.5, 1e-12);  // step * sin(45)
  // A quarter turn swaps the frame's sides before the shear.
  auto turned = Plan({.angle_deg = 60, .stage_step_um = 1, .pixel_size_um = 1, .rotate_90 = 1}, 100, 20, 5);
  ASSERT_TRUE(turned.ok());
  EXPECT_FALSE(turned->copy);
  EXPECT_EQ(turned->raw_width, 20u);
  EXPECT_EQ(turned->width, 20u + 2u);  // ceil(4 * 0.5)
  EXPECT_EQ(turned->Shift(0), 0.0);
  auto back = Plan({.angle_deg = 60, .stage_step_um = 1, .pixel_size_um = 1, .scan_direction = -1}, 10, 2, 5);
  ASSERT_TRUE(back.ok());
  EXPECT_DOUBLE_EQ(back->Shift(0), 2.0);
  EXPECT_DOUBLE_EQ(back->Shift(4), 0.0);
}

TEST(DeskewTest, BadParametersNameThemselves) {
  auto bad = [](Params p) { return Plan(p, 10, 10, 10).status().message(); };
  EXPECT_NE(bad({.angle_deg = 90, .stage_step_um = 1, .pixel_size_um = 1}).find("angle"), std::string::npos);
  EXPECT_NE(bad({.angle_deg = NAN, .stage_step_um = 1, .pixel_size_um = 1}).find("angle"), std::string::npos);
  EXPECT_NE(bad({.angle_deg = 45, .stage_step_um = 0, .pixel_size_um = 1}).find("stage step"), std::string::npos);
  EXPECT_NE(bad({.angle_deg = 45, .stage_step_um = 1, .pixel_size_um = INFINITY}).find("pixel size"),
            std::string::npos);
  EXPECT_NE(bad({.angle_deg = 45, .stage_step_um = 1, .pixel_size_um = 1, .scan_direction = 0}).find("direction"),
            std::string::npos);
  EXPECT_NE(bad({.angle_deg = 45, .stage_step_um = 1, .pixel_size_um = 1, .rotate_90 = 4}).find("rotate"),
            std::string::npos);
  // A shear that would make planes wider than any camera is refused, not allocated.
  EXPECT_EQ(Plan({.angle_deg = 1, .stage_step_um = 1e6, .pixel_size_um = 1e-6}, 10, 10, 1000).status().code(),
            StatusCode::kOutOfRange);
}

// Deskews `raw` (K frames of h x w) plane by plane, as the workers do.
std::vector<uint16_t> DeskewAll(const Params& p, const std::vector<uint16_t>& raw, uint32_t k_planes, uint32_t h,
                                uint32_t w, Geometry* geometry) {
  auto g = Plan(p, w, h, k_planes);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  *geometry = *g;
  const size_t frame = size_t{w} * h, plane = size_t{g->width} * g->height;
  std::vector<uint16_t> oriented(frame), out(plane * k_planes);
  for (uint32_t k = 0; k < k_planes; ++k) {
    EXPECT_TRUE(Orient<uint16_t>(p, std::span(raw).subspan(k * frame, frame), w, h, oriented).ok());
    EXPECT_TRUE(DeskewPlane<uint16_t>(*g, k, oriented, std::span(out).subspan(k * plane, plane)).ok());
  }
  return out;
}

// The numpy reference of the convention (tests/deskew_reference.py), run on the same stack.
std::vector<uint16_t> Reference(const Params& p, const std::vector<uint16_t>& raw, uint32_t k_planes, uint32_t h,
                                uint32_t w, std::string* shape) {
  // Named per process: ctest runs the cases side by side.
  const std::string stem = ::testing::TempDir() + "/deskew_" + std::to_string(::getpid());
  const std::string in = stem + "_in.raw", out = stem + "_out.raw";
  std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(raw.data()), raw.size() * 2);
  std::ostringstream cmd;
  cmd.precision(17);
  cmd << "/usr/bin/python3 tests/deskew_reference.py " << in << " " << out << " " << k_planes << " " << h << " " << w
      << " uint16 " << p.angle_deg << " " << p.stage_step_um << " " << p.pixel_size_um << " " << p.scan_direction
      << " " << p.rotate_90 << " " << (p.flip_ud ? 1 : 0);
  FILE* f = ::popen(cmd.str().c_str(), "r");
  char buf[128] = {};
  if (f != nullptr && std::fgets(buf, sizeof buf, f) != nullptr) *shape = buf;
  EXPECT_EQ(f != nullptr ? ::pclose(f) : -1, 0) << cmd.str();
  std::ifstream back(out, std::ios::binary);
  std::vector<uint16_t> expected(std::filesystem::file_size(out) / 2);
  back.read(reinterpret_cast<char*>(expected.data()), static_cast<std::streamsize>(expected.size() * 2));
  return expected;
}

struct Case {
  const char* what;
  Params params;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.what; }

class DeskewReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(DeskewReferenceTest, EqualsTheNumpyReference) {
  const Params p = GetParam().params;
  const uint32_t K = 9, H = 6, W = 13;
  std::mt19937 rng(7);
  std::vector<uint16_t> raw(size_t{K} * H * W);
  for (auto& v : raw) v = static_cast<uint16_t>(rng() % 65536);
  Geometry g;
  const auto got = DeskewAll(p, raw, K, H, W, &g);
  std::string shape;
  const auto expected = Reference(p, raw, K, H, W, &shape);
  EXPECT_EQ(shape, fmt::format("{} {} {}\n", K, g.height, g.width));
  ASSERT_EQ(got.size(), expected.size());
  size_t differ = 0, nonzero = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int d = std::abs(int{got[i]} - int{expected[i]});
    if (g.copy) {
      ASSERT_EQ(d, 0) << "voxel " << i << " of a copy differs";
    }
    ASSERT_LE(d, 1) << "voxel " << i;
    differ += d != 0;
    nonzero += got[i] != 0;
  }
  EXPECT_LE(differ, got.size() / 100) << "more than rounding apart";
  EXPECT_GE(nonzero, raw.size() * 8 / 10) << "the raw samples are in the deskewed stack";
}

INSTANTIATE_TEST_SUITE_P(
    Convention, DeskewReferenceTest,
    ::testing::Values(
        Case{"copy_one_pixel", {.angle_deg = 45, .stage_step_um = std::sqrt(2.0), .pixel_size_um = 1}},
        Case{"copy_two_pixels_back", {.angle_deg = 60, .stage_step_um = 4, .pixel_size_um = 1, .scan_direction = -1}},
        Case{"copy_turned_flipped",
             {.angle_deg = 45, .stage_step_um = std::sqrt(2.0), .pixel_size_um = 1, .rotate_90 = 3, .flip_ud = true}},
        Case{"interpolated", {.angle_deg = 31.5, .stage_step_um = 0.4, .pixel_size_um = 0.104}},
        Case{"interpolated_back", {.angle_deg = 31.5, .stage_step_um = 0.4, .pixel_size_um = 0.104, .scan_direction = -1}},
        Case{"interpolated_turned", {.angle_deg = 50, .stage_step_um = 1, .pixel_size_um = 1, .rotate_90 = 1}},
        Case{"interpolated_half_turn_flipped",
             {.angle_deg = 50, .stage_step_um = 1, .pixel_size_um = 1, .scan_direction = -1, .rotate_90 = 2,
              .flip_ud = true}}),
    [](const auto& info) { return std::string(info.param.what); });

TEST(DeskewTest, APlaneOfOnesShowsTheShearAndItsEdges) {
  // One plane of a 3-plane stack sheared half a pixel per plane: plane 1 starts half a pixel
  // in, so its first voxel is outside (0) and the others interpolate ones into ones.
  auto g = Plan({.angle_deg = 60, .stage_step_um = 1, .pixel_size_um = 1}, 4, 1, 3);
  ASSERT_TRUE(g.ok());
  ASSERT_EQ(g->width, 5u);
  std::vector<uint16_t> ones(4, 100), out(5);
  ASSERT_TRUE(DeskewPlane<uint16_t>(*g, 1, ones, out).ok());
  EXPECT_EQ(out, (std::vector<uint16_t>{0, 100, 100, 100, 0}));
  ASSERT_TRUE(DeskewPlane<uint16_t>(*g, 2, ones, out).ok());
  EXPECT_EQ(out, (std::vector<uint16_t>{0, 100, 100, 100, 100}));
  EXPECT_EQ(DeskewPlane<uint16_t>(*g, 3, ones, out).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera::deskew
