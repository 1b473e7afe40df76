#include "common/correct/destripe.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "common/correct/internal/wavelet.h"

namespace tessera::correct {
namespace {

// A light-sheet-like plane: background, bright blobs, and horizontal stripes (rows dimmed from
// a random column on, as a shadow cast along the sheet).
std::vector<uint16_t> StripedPlane(int64_t w, int64_t h, uint32_t seed, std::vector<uint16_t>* clean = nullptr) {
  std::mt19937 rng(seed);
  std::vector<double> v(static_cast<size_t>(w * h), 200.0);
  std::uniform_real_distribution<double> ux(0, static_cast<double>(w)), uy(0, static_cast<double>(h));
  for (int b = 0; b < 40; ++b) {
    const double cx = ux(rng), cy = uy(rng), r = 4 + static_cast<double>(rng() % 12), a = static_cast<double>(500 + rng() % 3000);
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy, d2 = dx * dx + dy * dy;
        v[static_cast<size_t>(y * w + x)] += a * std::exp(-d2 / (2 * r * r));
      }
    }
  }
  if (clean) {
    clean->resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) (*clean)[i] = static_cast<uint16_t>(v[i]);
  }
  for (int s = 0; s < h / 12; ++s) {
    const auto y = static_cast<int64_t>(uy(rng));
    const auto x0 = static_cast<int64_t>(ux(rng) / 8);
    const double k = 0.5 + 0.4 * std::uniform_real_distribution<double>(0, 1)(rng);
    for (int64_t dy = 0; dy < 2 && y + dy < h; ++dy) {
      for (int64_t x = x0; x < w; ++x) v[static_cast<size_t>((y + dy) * w + x)] *= k;
    }
  }
  std::vector<uint16_t> out(v.size());
  std::normal_distribution<double> noise(0, 3);
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<uint16_t>(std::clamp(v[i] + noise(rng), 0.0, 65535.0));
  return out;
}

// tests/destripe_reference.py (pystripe's algorithm in numpy + PyWavelets) on the same plane.
std::vector<uint16_t> Reference(const std::vector<uint16_t>& plane, int64_t w, int64_t h, const DestripeOptions& o) {
  const std::string stem = ::testing::TempDir() + "/destripe_" + std::to_string(::getpid());
  const std::string in = stem + "_in.raw", out = stem + "_out.raw";
  std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(plane.data()), static_cast<std::streamsize>(plane.size() * 2));
  std::ostringstream cmd;
  cmd.precision(17);
  cmd << "/usr/bin/python3 tests/destripe_reference.py " << in << " " << out << " " << h << " " << w << " ";
  if (o.method == DestripeMethod::kWavelet) {
    cmd << "wavelet " << o.sigma_foreground << " " << o.sigma_background << " " << o.level << " " << o.wavelet << " "
        << o.threshold << " " << o.crossover;
  } else {
    cmd << "lightsheet " << o.artifact_length << " " << o.background_window << " " << o.percentile << " "
        << o.lightsheet_vs_background;
  }
  EXPECT_EQ(std::system(cmd.str().c_str()), 0) << cmd.str();
  std::vector<uint16_t> expected(plane.size());
  std::ifstream(out, std::ios::binary).read(reinterpret_cast<char*>(expected.data()), static_cast<std::streamsize>(expected.size() * 2));
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  return expected;
}

struct Case {
  const char* what;
  int64_t width, height;
  DestripeOptions options;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.what; }

class DestripeReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(DestripeReferenceTest, EqualsPystripesAlgorithmWithinOneGreyLevel) {
  const Case& c = GetParam();
  const auto plane = StripedPlane(c.width, c.height, 11);
  std::vector<uint16_t> got(plane.size());
  ASSERT_TRUE(Destripe({plane.data(), c.width, c.height, 0}, c.options, got).ok());
  const auto want = Reference(plane, c.width, c.height, c.options);
  int worst = 0;
  size_t differ = 0, changed = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int d = std::abs(int{got[i]} - int{want[i]});
    worst = std::max(worst, d);
    differ += d != 0;
    changed += want[i] != plane[i];
  }
  EXPECT_LE(worst, 1) << differ << " of " << got.size() << " pixels differ";
  for (size_t i = 0, shown = 0; i < got.size() && shown < 5; ++i) {
    if (std::abs(int{got[i]} - int{want[i]}) > 1 && ++shown) ADD_FAILURE() << "x " << i % c.width << " y " << i / c.width << ": " << got[i] << " against " << want[i] << " (was " << plane[i] << ")";
  }
  EXPECT_GT(changed, got.size() / 4) << "the reference changed too little to prove anything";
}

INSTANTIATE_TEST_SUITE_P(
    Methods, DestripeReferenceTest,
    ::testing::Values(
        Case{"one band, db3, every level", 256, 192, {.sigma_foreground = 32, .sigma_background = 32}},
        Case{"two bands around Otsu's threshold", 256, 192, {.sigma_foreground = 16, .sigma_background = 64}},
        Case{"the foreground only, odd sizes, sym4, 3 levels, a set threshold", 201, 155,
             {.sigma_foreground = 20, .level = 3, .wavelet = "sym4", .threshold = 400, .crossover = 30}},
        Case{"the background only, coif2", 128, 256, {.sigma_background = 40, .wavelet = "coif2"}},
        Case{"lightsheet, pystripe's defaults", 300, 260, {.method = DestripeMethod::kLightsheet}},
        Case{"lightsheet, short artifacts, a small window, odd sizes", 161, 97,
             {.method = DestripeMethod::kLightsheet, .artifact_length = 31, .background_window = 50,
              .percentile = 0.4, .lightsheet_vs_background = 1.5}}));

TEST(DestripeTest, StripesDownTheColumnsAreTheTurnedPlanesStripes) {
  const int64_t w = 96, h = 128;
  const auto plane = StripedPlane(w, h, 3);
  std::vector<uint16_t> turned(plane.size()), a(plane.size()), b(plane.size());
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) turned[static_cast<size_t>(x * h + y)] = plane[static_cast<size_t>(y * w + x)];
  }
  DestripeOptions o{.sigma_foreground = 24, .sigma_background = 24};
  ASSERT_TRUE(Destripe({plane.data(), w, h, 0}, o, a).ok());
  o.along_y = true;
  ASSERT_TRUE(Destripe({turned.data(), h, w, 0}, o, b).ok());
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) ASSERT_EQ(b[static_cast<size_t>(x * h + y)], a[static_cast<size_t>(y * w + x)]);
  }
}

TEST(DestripeTest, TheWaveletMethodTakesTheStripesOut) {
  const int64_t w = 512, h = 384;
  std::vector<uint16_t> clean;
  const auto plane = StripedPlane(w, h, 5, &clean);
  std::vector<uint16_t> got(plane.size());
  ASSERT_TRUE(Destripe({plane.data(), w, h, 0}, {.sigma_foreground = 32, .sigma_background = 32}, got).ok());
  // The stripes: each row's mean log ratio to the clean plane, less that of the rows 3 above and
  // below (a stripe is sharp across the rows; what the filter does to the blobs is not).
  auto stripes = [&](const std::vector<uint16_t>& p) {
    std::vector<double> m(static_cast<size_t>(h), 0.0);
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const auto i = static_cast<size_t>(y * w + x);
        m[static_cast<size_t>(y)] += (std::log1p(static_cast<double>(p[i])) - std::log1p(static_cast<double>(clean[i]))) / static_cast<double>(w);
      }
    }
    double sum = 0;
    for (size_t y = 3; y + 3 < m.size(); ++y) sum += std::pow(m[y] - (m[y - 3] + m[y + 3]) / 2, 2);
    return std::sqrt(sum / static_cast<double>(m.size() - 6));
  };
  EXPECT_LT(stripes(got), 0.1 * stripes(plane)) << stripes(got) << " against " << stripes(plane);
}

TEST(DestripeTest, ZeroSigmasGiveThePlaneBack) {
  const auto plane = StripedPlane(64, 48, 1);
  std::vector<uint16_t> got(plane.size());
  ASSERT_TRUE(Destripe({plane.data(), 64, 48, 0}, {}, got).ok());
  EXPECT_EQ(got, plane);
}

TEST(DestripeTest, OptionsOutOfRangeAreRefusedByName) {
  const std::vector<uint16_t> plane(16, 1);
  std::vector<uint16_t> out(16);
  auto refused = [&](DestripeOptions o, const char* name) {
    const Status s = Destripe({plane.data(), 4, 4, 0}, o, out);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find(name), std::string::npos) << s.message();
  };
  refused({.sigma_foreground = -1}, "sigma_foreground");
  refused({.sigma_background = std::nan("")}, "sigma_background");
  refused({.level = 17}, "level");
  refused({.wavelet = "db99"}, "db99");
  refused({.crossover = 0}, "crossover");
  refused({.percentile = 1.5}, "percentile");
  refused({.artifact_length = 0}, "artifact_length");
  EXPECT_EQ(Destripe({plane.data(), 4, 4, 0}, {}, std::span(out).first(3)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DestripeMethodNamed("fft").status().code(), StatusCode::kInvalidArgument);
}

TEST(WaveletTest, ReconstructionGivesTheImageBack) {
  for (const char* name : {"haar", "db3", "sym5", "coif3", "db10"}) {
    auto w = internal::WaveletNamed(name);
    ASSERT_TRUE(w.ok());
    internal::Plane p(70, 46);
    std::mt19937 rng(2);
    for (double& v : p.v) v = static_cast<double>(rng() % 1000);
    const internal::Plane original = p;
    const int levels = internal::MaxLevel(46, w->dec_lo.size());
    const internal::Plane back = internal::Reconstruct(internal::Decompose(std::move(p), *w, std::max(levels, 1)), *w);
    ASSERT_EQ(back.width, 70);
    ASSERT_EQ(back.height, 46);
    for (size_t i = 0; i < back.v.size(); ++i) ASSERT_NEAR(back.v[i], original.v[i], 1e-8) << name;
  }
}

TEST(OtsuTest, IsSkimagesOnAnIntegerImage) {
  // Two populations: 100 +- 2 and 900 +- 2. skimage gives the upper end of the lower one.
  std::vector<uint16_t> p;
  for (int i = 0; i < 500; ++i) p.push_back(static_cast<uint16_t>(98 + i % 5));
  for (int i = 0; i < 300; ++i) p.push_back(static_cast<uint16_t>(898 + i % 5));
  const double t = OtsuThreshold({p.data(), 800, 1, 0});
  EXPECT_GE(t, 102);
  EXPECT_LT(t, 898);
  const std::vector<uint16_t> flat(10, 7);
  EXPECT_EQ(OtsuThreshold({flat.data(), 10, 1, 0}), 7);
}

}  // namespace
}  // namespace tessera::correct
