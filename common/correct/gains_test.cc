#include "common/correct/gains.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/correct/test_scene.h"

namespace tessera::correct {
namespace {

constexpr int kSize = 200, kStep = 180;
constexpr double kDark = 100;

// The overlaps of a cols x rows grid: each pair's shared scene region, its mean in each field.
std::vector<OverlapMeans> Overlaps(const std::vector<testing::Field>& fields, int cols, int rows) {
  std::vector<OverlapMeans> out;
  auto mean = [&](const testing::Field& f, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
    double s = 0;
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = x0; x < x1; ++x) s += f.pixels[static_cast<size_t>((y - f.y) * kSize + (x - f.x))] - kDark;
    }
    return s / static_cast<double>((x1 - x0) * (y1 - y0));
  };
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const auto a = static_cast<uint32_t>(r * cols + c);
      for (const auto& [dc, dr] : {std::pair{1, 0}, std::pair{0, 1}}) {
        if (c + dc >= cols || r + dr >= rows) continue;
        const auto b = static_cast<uint32_t>((r + dr) * cols + c + dc);
        const auto& fa = fields[a];
        const auto& fb = fields[b];
        const int64_t x0 = std::max(fa.x, fb.x), y0 = std::max(fa.y, fb.y);
        const int64_t x1 = std::min(fa.x, fb.x) + kSize, y1 = std::min(fa.y, fb.y) + kSize;
        out.push_back({a, b, mean(fa, x0, y0, x1, y1), mean(fb, x0, y0, x1, y1), 1});
      }
    }
  }
  return out;
}

TEST(GainsTest, KnownGainsRecoveredWithin1Percent) {
  const int cols = 6, rows = 5;
  auto gain = [](int t) { return 0.8 + 0.4 * ((t * 53) % 17) / 16.0; };
  const auto scene = testing::DenseScene(kStep * (cols - 1) + kSize, kStep * (rows - 1) + kSize, 8);
  const auto fields = testing::CutFields(scene, cols, rows, kSize, kStep, kDark, [](double, double) { return 1.0; }, gain);
  auto g = SolveGains(cols * rows, Overlaps(fields, cols, rows), {});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // Up to one factor: the truth's geometric mean is not known to the solve.
  double log_mean = 0;
  for (int t = 0; t < cols * rows; ++t) log_mean += std::log(gain(t)) / (cols * rows);
  for (int t = 0; t < cols * rows; ++t) EXPECT_NEAR(g->gain[t] / (gain(t) / std::exp(log_mean)), 1.0, 0.01) << "field " << t;
  for (const auto& d : g->dropped) EXPECT_EQ(d, "");
}

TEST(GainsTest, AnOverlapThatDisagreesIsDroppedAndTheRestHold) {
  const int cols = 4, rows = 4;
  auto gain = [](int t) { return 1.0 + 0.05 * (t % 3); };
  const auto scene = testing::DenseScene(kStep * (cols - 1) + kSize, kStep * (rows - 1) + kSize, 9);
  const auto fields = testing::CutFields(scene, cols, rows, kSize, kStep, kDark, [](double, double) { return 1.0; }, gain);
  auto overlaps = Overlaps(fields, cols, rows);
  overlaps[5].mean_b *= 1.6;  // a bubble over one overlap
  auto g = SolveGains(cols * rows, overlaps, {});
  ASSERT_TRUE(g.ok());
  EXPECT_NE(g->dropped[5], "");
  for (int t = 1; t < cols * rows; ++t) EXPECT_NEAR(g->gain[t] / g->gain[0], gain(t) / gain(0), 0.01) << "field " << t;
}

TEST(GainsTest, FieldsNoOverlapReachesKeepGainOneAndBadOverlapsAreRefused) {
  std::vector<OverlapMeans> o = {{.a = 0, .b = 1, .mean_a = 100, .mean_b = 120}};
  auto g = SolveGains(3, o, {});
  ASSERT_TRUE(g.ok());
  EXPECT_NEAR(g->gain[1] / g->gain[0], 1.2, 1e-6);
  EXPECT_NEAR(g->gain[0] * g->gain[1], 1.0, 1e-6);
  EXPECT_EQ(g->gain[2], 1.0);
  EXPECT_EQ(SolveGains(2, std::vector<OverlapMeans>{{.a = 0, .b = 2}}, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SolveGains(2, std::vector<OverlapMeans>{{.a = 0, .b = 1, .mean_a = NAN}}, {}).status().code(),
            StatusCode::kInvalidArgument);
  auto dark = SolveGains(2, std::vector<OverlapMeans>{{.a = 0, .b = 1, .mean_a = 0.2, .mean_b = 0.3}}, {});
  ASSERT_TRUE(dark.ok());
  EXPECT_NE(dark->dropped[0], "");
}

}  // namespace
}  // namespace tessera::correct
