// Test scenes for the corrections' tests: one dense fluorescence-like image, and fields of
// view cut from it on a grid with a known illumination, dark level and gain per field.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace tessera::correct::testing {

struct Scene {
  int64_t width = 0, height = 0;
  std::vector<double> v;
  double at(int64_t x, int64_t y) const { return v[static_cast<size_t>(y * width + x)]; }
};

/// Tissue-like: a smooth background with dense cells of varied size and brightness.
inline Scene DenseScene(int64_t w, int64_t h, uint32_t seed) {
  Scene s{w, h, std::vector<double>(static_cast<size_t>(w * h))};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      s.v[static_cast<size_t>(y * w + x)] = 300 + 150 * std::sin(static_cast<double>(x) / 5.3) * std::cos(static_cast<double>(y) / 7.1);
    }
  }
  const int cells = static_cast<int>((w + 48) * (h + 48) / 300);
  for (int c = 0; c < cells; ++c) {
    // Cells centred past the edges too, so that the scene's density holds up to its borders.
    const double cx = u(rng) * static_cast<double>(w + 48) - 24, cy = u(rng) * static_cast<double>(h + 48) - 24;
    const double r = 2 + 6 * u(rng), a = 200 + 1800 * u(rng);
    const auto x0 = static_cast<int64_t>(std::max(0.0, cx - 3 * r)), x1 = std::min<int64_t>(w, static_cast<int64_t>(cx + 3 * r) + 1);
    const auto y0 = static_cast<int64_t>(std::max(0.0, cy - 3 * r)), y1 = std::min<int64_t>(h, static_cast<int64_t>(cy + 3 * r) + 1);
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = x0; x < x1; ++x) {
        const double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy;
        s.v[static_cast<size_t>(y * w + x)] += a * std::exp(-(dx * dx + dy * dy) / (2 * r * r));
      }
    }
  }
  return s;
}

struct Field {
  int64_t x = 0, y = 0;  ///< top-left in the scene
  double gain = 1;
  std::vector<uint16_t> pixels;
};

/// cols x rows fields of `size` px cut at `step` px apart, each gain(t) * illumination(x, y) *
/// scene + dark, with a little noise.
inline std::vector<Field> CutFields(const Scene& s, int cols, int rows, int64_t size, int64_t step, double dark,
                                    const std::function<double(double, double)>& illumination,
                                    const std::function<double(int)>& gain, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0, 2);
  std::vector<Field> out;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      Field f{c * step, r * step, gain(r * cols + c), std::vector<uint16_t>(static_cast<size_t>(size * size))};
      for (int64_t y = 0; y < size; ++y) {
        for (int64_t x = 0; x < size; ++x) {
          const double v = f.gain * illumination(static_cast<double>(x) + 0.5, static_cast<double>(y) + 0.5) *
                               s.at(f.x + x, f.y + y) + dark + noise(rng);
          f.pixels[static_cast<size_t>(y * size + x)] = static_cast<uint16_t>(std::clamp(std::nearbyint(v), 0.0, 65535.0));
        }
      }
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace tessera::correct::testing
