#include "common/correct/flatfield.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/correct/test_scene.h"

namespace tessera::correct {
namespace {

constexpr int kSize = 256, kStep = 230;  // 10 % overlap
constexpr double kDark = 100;
constexpr int kGrid = 12;  // fields across and down

// Vignetting off the optical axis: 35 % down at the far corner.
double Vignetting(double x, double y) {
  const double dx = x / kSize - 0.55, dy = y / kSize - 0.45;
  return 1 - 0.35 * (dx * dx + dy * dy) / 0.5;
}

// RMS of F's relative error against the truth, both at mean 1 over the field.
double RelativeRms(const FlatField& f) {
  double mean = 0;
  for (int y = 0; y < kSize; ++y) {
    for (int x = 0; x < kSize; ++x) mean += Vignetting(x + 0.5, y + 0.5);
  }
  mean /= kSize * kSize;
  double sum = 0;
  for (int y = 0; y < kSize; ++y) {
    for (int x = 0; x < kSize; ++x) {
      const double truth = Vignetting(x + 0.5, y + 0.5) / mean;
      sum += std::pow(f.At(x + 0.5, y + 0.5) / truth - 1, 2);
    }
  }
  return std::sqrt(sum / (kSize * kSize));
}

std::vector<testing::Field> VignettedFields(std::function<double(int)> gain = [](int) { return 1.0; }) {
  const auto scene = testing::DenseScene(kStep * (kGrid - 1) + kSize, kStep * (kGrid - 1) + kSize, 4);
  return testing::CutFields(scene, kGrid, kGrid, kSize, kStep, kDark, Vignetting, gain);
}

TEST(FlatFieldTest, EstimatedFromTheFieldsWithin2PercentOfTheTruthAndTheDarkLevel) {
  const auto fields = VignettedFields();
  FlatFieldEstimator e(kSize, kSize);
  for (const auto& f : fields) e.Add({f.pixels.data(), kSize, kSize, 0});
  auto flat = e.Estimate();
  ASSERT_TRUE(flat.ok()) << flat.status().ToString();
  EXPECT_LT(RelativeRms(*flat), 0.02);
  EXPECT_NEAR(flat->dark, kDark, 15);
  EXPECT_TRUE(CheckFlatField(*flat).ok());
}

TEST(FlatFieldTest, AZoomLevelOfEachFieldGivesTheSameFlatField) {
  const auto fields = VignettedFields();
  FlatFieldEstimator full(kSize, kSize), quarter(kSize, kSize);
  for (const auto& f : fields) {
    full.Add({f.pixels.data(), kSize, kSize, 0});
    std::vector<uint16_t> small(static_cast<size_t>(kSize / 4 * kSize / 4));
    for (int y = 0; y < kSize / 4; ++y) {
      for (int x = 0; x < kSize / 4; ++x) {
        double s = 0;
        for (int dy = 0; dy < 4; ++dy) {
          for (int dx = 0; dx < 4; ++dx) s += f.pixels[static_cast<size_t>((4 * y + dy) * kSize + 4 * x + dx)];
        }
        small[static_cast<size_t>(y * kSize / 4 + x)] = static_cast<uint16_t>(s / 16);
      }
    }
    quarter.Add({small.data(), kSize / 4, kSize / 4, 0}, 4);
  }
  auto a = full.Estimate(), b = quarter.Estimate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(RelativeRms(*b), 0.02);
  for (int y = 0; y < kSize; y += 17) {
    for (int x = 0; x < kSize; x += 17) EXPECT_NEAR(a->At(x + 0.5, y + 0.5), b->At(x + 0.5, y + 0.5), 0.01);
  }
}

TEST(FlatFieldTest, FieldsOfDifferentExposureGiveTheSameFlatField) {
  const auto fields = VignettedFields([](int t) { return 0.7 + 0.6 * ((t * 37) % 11) / 10.0; });
  FlatFieldEstimator e(kSize, kSize);
  for (const auto& f : fields) e.Add({f.pixels.data(), kSize, kSize, 0});
  auto flat = e.Estimate();
  ASSERT_TRUE(flat.ok());
  EXPECT_LT(RelativeRms(*flat), 0.02);
}

TEST(FlatFieldTest, TheCorrectionUndoesTheIllumination) {
  const auto fields = VignettedFields();
  FlatFieldEstimator e(kSize, kSize);
  for (const auto& f : fields) e.Add({f.pixels.data(), kSize, kSize, 0});
  auto flat = e.Estimate();
  ASSERT_TRUE(flat.ok());
  // Corner against centre of the same field, against the same pixels of the scene seen at the
  // field's centre by another field: the corrected ratio is the scene's, the raw one is not.
  const auto scene = testing::DenseScene(kStep * (kGrid - 1) + kSize, kStep * (kGrid - 1) + kSize, 4);
  double raw_err = 0, corrected_err = 0, n = 0;
  std::vector<uint16_t> out(static_cast<size_t>(kSize * kSize));
  for (const auto& f : fields) {
    ApplyFlatField(*flat, {f.pixels.data(), kSize, kSize, 0}, 0, 0, 1, out);
    // The whole field against the scene's, both as their means over the field: the shape left.
    double sum_raw = 0, sum_cor = 0, sum_scene = 0;
    for (int y = 0; y < kSize; ++y) {
      for (int x = 0; x < kSize; ++x) {
        sum_raw += f.pixels[static_cast<size_t>(y * kSize + x)] - kDark;
        sum_cor += out[static_cast<size_t>(y * kSize + x)] - kDark;
        sum_scene += scene.at(f.x + x, f.y + y);
      }
    }
    for (int y = 0; y < kSize; y += 8) {
      for (int x = 0; x < kSize; x += 8) {
        const double s = scene.at(f.x + x, f.y + y) / sum_scene;
        raw_err += std::pow((f.pixels[static_cast<size_t>(y * kSize + x)] - kDark) / sum_raw / s - 1, 2);
        corrected_err += std::pow((out[static_cast<size_t>(y * kSize + x)] - kDark) / sum_cor / s - 1, 2);
        n += 1;
      }
    }
  }
  EXPECT_LT(std::sqrt(corrected_err / n), 0.025);
  EXPECT_GT(std::sqrt(raw_err / n), 0.08);
}

TEST(FlatFieldTest, MemoryStaysBoundedHoweverManyFields) {
  FlatFieldOptions o;
  o.max_fields = 100;
  FlatFieldEstimator e(kSize, kSize, o);
  const auto fields = VignettedFields();
  for (int round = 0; round < 10; ++round) {
    for (const auto& f : fields) e.Add({f.pixels.data(), kSize, kSize, 0});
  }
  EXPECT_EQ(e.fields(), 10u * fields.size());
  auto flat = e.Estimate();
  ASSERT_TRUE(flat.ok());
  EXPECT_LT(RelativeRms(*flat), 0.03);  // 100 fields kept of 1,440
}

TEST(FlatFieldTest, BadOptionsAndFlatFieldsAreRefused) {
  EXPECT_FALSE(CheckFlatFieldOptions({.blocks = 2}).ok());
  EXPECT_FALSE(CheckFlatFieldOptions({.degree = 9}).ok());
  EXPECT_FALSE(CheckFlatFieldOptions({.dark = -3}).ok());
  FlatField f{.width = 10, .height = 10, .grid_x = 2, .grid_y = 2, .gain = {1, 1, 1}};
  EXPECT_FALSE(CheckFlatField(f).ok());
  f.gain = {1, 1, 1, std::nanf("")};
  EXPECT_FALSE(CheckFlatField(f).ok());
  f.gain = {1, 1, 1, 1};
  EXPECT_TRUE(CheckFlatField(f).ok());
  FlatFieldEstimator e(10, 10);
  EXPECT_EQ(e.Estimate().status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tessera::correct
