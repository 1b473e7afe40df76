#include "common/correct/flatfield.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <random>

namespace tessera::correct {
namespace {

constexpr uint32_t kGridSamples = 64;   // F's samples across and down, stored
constexpr double kLowQuantile = 0.02;   // the blocks' low values, for D
constexpr double kMinGain = 0.05;       // F never divides by less

// The values' mean with `trim` of them dropped at each end (sorted in place).
double TrimmedMean(std::vector<double>& v, double trim) {
  std::sort(v.begin(), v.end());
  const auto drop = static_cast<size_t>(std::floor(trim * static_cast<double>(v.size())));
  const size_t n = v.size() - 2 * std::min(drop, (v.size() - 1) / 2);
  const size_t first = (v.size() - n) / 2;
  return std::accumulate(v.begin() + static_cast<ptrdiff_t>(first), v.begin() + static_cast<ptrdiff_t>(first + n), 0.0) /
         static_cast<double>(n);
}

// Monomials u^i v^j, i + j <= degree.
std::vector<double> Terms(double u, double v, int degree) {
  std::vector<double> t;
  for (int d = 0; d <= degree; ++d) {
    for (int i = d; i >= 0; --i) t.push_back(std::pow(u, i) * std::pow(v, d - i));
  }
  return t;
}

struct Sample {
  double u, v, y;  // a block's centre in [-1, 1]^2, its value
};

double EvaluateSurface(const Eigen::VectorXd& coef, double u, double v, int degree) {
  const auto t = Terms(u, v, degree);
  double g = 0;
  for (Eigen::Index c = 0; c < coef.size(); ++c) g += coef(c) * t[static_cast<size_t>(c)];
  return g;
}

// A polynomial surface through the samples by least squares, the samples far off it (over 3
// robust standard deviations) dropped twice; nothing with fewer than twice its terms.
std::optional<Eigen::VectorXd> FitSurface(const std::vector<Sample>& samples, int degree) {
  const auto terms = static_cast<Eigen::Index>(Terms(0, 0, degree).size());
  std::vector<bool> use(samples.size(), true);
  Eigen::VectorXd coef;
  for (int round = 0; round < 3; ++round) {
    const auto rows = static_cast<Eigen::Index>(std::count(use.begin(), use.end(), true));
    if (rows < 2 * terms) return round == 0 ? std::nullopt : std::optional(coef);
    Eigen::MatrixXd a(rows, terms);
    Eigen::VectorXd rhs(rows);
    Eigen::Index r = 0;
    for (size_t k = 0; k < samples.size(); ++k) {
      if (!use[k]) continue;
      const auto t = Terms(samples[k].u, samples[k].v, degree);
      for (Eigen::Index c = 0; c < terms; ++c) a(r, c) = t[static_cast<size_t>(c)];
      rhs(r++) = samples[k].y;
    }
    coef = a.colPivHouseholderQr().solve(rhs);
    std::vector<double> res(samples.size());
    for (size_t k = 0; k < samples.size(); ++k) res[k] = std::abs(samples[k].y - EvaluateSurface(coef, samples[k].u, samples[k].v, degree));
    std::vector<double> sorted = res;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(sorted.size() / 2), sorted.end());
    const double limit = 3 * 1.4826 * sorted[sorted.size() / 2];
    for (size_t k = 0; k < samples.size(); ++k) use[k] = res[k] <= limit || limit <= 0;
  }
  return coef;
}

}  // namespace

double FlatField::At(double x, double y) const {
  // Sample i sits at the centre of the i-th of grid_x equal cells; linear between them and
  // beyond the outer ones (F is smooth).
  auto axis = [](double c, uint32_t samples, uint32_t size, int64_t& i0, double& t) {
    const double u = c * samples / size - 0.5;
    i0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(u)), 0, static_cast<int64_t>(samples) - 2);
    t = u - static_cast<double>(i0);
  };
  if (grid_x < 2 || grid_y < 2) return gain.empty() ? 1.0 : gain[0];
  int64_t ix, iy;
  double tx, ty;
  axis(x, grid_x, width, ix, tx);
  axis(y, grid_y, height, iy, ty);
  auto g = [&](int64_t i, int64_t j) { return static_cast<double>(gain[static_cast<size_t>(j * grid_x + i)]); };
  const double top = g(ix, iy) * (1 - tx) + g(ix + 1, iy) * tx;
  const double bottom = g(ix, iy + 1) * (1 - tx) + g(ix + 1, iy + 1) * tx;
  return std::max(kMinGain, top * (1 - ty) + bottom * ty);
}

Status CheckFlatFieldOptions(const FlatFieldOptions& o) {
  if (o.blocks < 4 || o.blocks > 256) return Error(StatusCode::kInvalidArgument, "flat-field blocks {}: 4 to 256", o.blocks);
  if (o.degree < 1 || o.degree > 6) return Error(StatusCode::kInvalidArgument, "flat-field degree {}: 1 to 6", o.degree);
  if (!(o.dark == -1 || (o.dark >= 0 && o.dark <= 65535))) {
    return Error(StatusCode::kInvalidArgument, "flat-field dark {}: -1 (estimated) or a grey level", o.dark);
  }
  if (o.max_fields < 3 || o.max_fields > 100000) {
    return Error(StatusCode::kInvalidArgument, "flat-field max_fields {}: 3 to 100000", o.max_fields);
  }
  if (!(o.trim >= 0 && o.trim < 0.5)) return Error(StatusCode::kInvalidArgument, "flat-field trim {}: in [0, 0.5)", o.trim);
  return OkStatus();
}

Status CheckFlatField(const FlatField& f) {
  constexpr uint32_t kMaxSide = 1u << 20, kMaxSamples = 1024;
  if (f.width == 0 || f.height == 0 || f.width > kMaxSide || f.height > kMaxSide || f.grid_x == 0 || f.grid_y == 0 ||
      f.grid_x > kMaxSamples || f.grid_y > kMaxSamples || f.gain.size() != size_t{f.grid_x} * f.grid_y) {
    return Error(StatusCode::kInvalidArgument, "flat field of {} x {} px with {} x {} samples and {} gains: not a flat field",
                 f.width, f.height, f.grid_x, f.grid_y, f.gain.size());
  }
  for (float g : f.gain) {
    if (!(g >= kMinGain && g <= 100)) return Error(StatusCode::kInvalidArgument, "flat field gain {}: outside [0.05, 100]", g);
  }
  if (!(f.dark >= 0 && f.dark <= 65535)) return Error(StatusCode::kInvalidArgument, "flat field dark {}: not a grey level", f.dark);
  return OkStatus();
}

FlatFieldEstimator::FlatFieldEstimator(uint32_t width, uint32_t height, FlatFieldOptions options)
    : width_(width), height_(height), options_(options) {}

void FlatFieldEstimator::Add(const stitch::ImageView& field, uint32_t scale) {
  const uint32_t n = options_.blocks;
  std::vector<double> sum(size_t{n} * n, 0.0), count(size_t{n} * n, 0.0);
  // Each pixel counts in the block its centre falls in, in level-0 pixels.
  std::vector<uint32_t> bx(static_cast<size_t>(field.width));
  for (int64_t x = 0; x < field.width; ++x) {
    const double c = (static_cast<double>(x) + 0.5) * scale;
    bx[static_cast<size_t>(x)] = std::min(n - 1, static_cast<uint32_t>(c * n / width_));
  }
  for (int64_t y = 0; y < field.height; ++y) {
    const double c = (static_cast<double>(y) + 0.5) * scale;
    const uint32_t by = std::min(n - 1, static_cast<uint32_t>(c * n / height_));
    for (int64_t x = 0; x < field.width; ++x) {
      const size_t b = size_t{by} * n + bx[static_cast<size_t>(x)];
      sum[b] += field.at(x, y);
      count[b] += 1;
    }
  }
  std::vector<float> grid(sum.size());
  for (size_t b = 0; b < grid.size(); ++b) {
    grid[b] = count[b] > 0 ? static_cast<float>(sum[b] / count[b]) : std::numeric_limits<float>::quiet_NaN();
  }
  ++seen_;
  if (grids_.size() < options_.max_fields) {
    grids_.push_back(std::move(grid));
    return;
  }
  // Past the bound, each field replaces a kept one with the chance that keeps the sample even.
  std::mt19937_64 rng(seen_);
  const uint64_t j = rng() % seen_;
  if (j < grids_.size()) grids_[static_cast<size_t>(j)] = std::move(grid);
}

Result<FlatField> FlatFieldEstimator::Estimate() const {
  if (grids_.size() < 3) {
    return Error(StatusCode::kFailedPrecondition, "flat field: {} fields of view seen, at least 3 needed", grids_.size());
  }
  const uint32_t n = options_.blocks;
  const size_t blocks = size_t{n} * n;
  std::vector<double> values;
  // D. Over the fields, a block's values spread as F(p) times the scene's spread, whatever D
  // is; their typical value is F(p) times the scene's typical value, plus D. So a smooth
  // surface fitted to the spreads is F's shape free of D, and D is the intercept of the
  // typical values against that surface (no noise in the regressor, so no bias).
  double dark = options_.dark;
  if (dark < 0) {
    std::vector<Sample> spread;
    std::vector<double> typical(blocks, std::numeric_limits<double>::quiet_NaN());
    double least = std::numeric_limits<double>::infinity();
    for (uint32_t j = 0; j < n; ++j) {
      for (uint32_t i = 0; i < n; ++i) {
        const size_t b = size_t{j} * n + i;
        values.clear();
        for (const auto& g : grids_) {
          if (!std::isnan(g[b])) values.push_back(g[b]);
        }
        if (values.size() < 8) continue;
        std::sort(values.begin(), values.end());
        auto q = [&](double p) { return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))]; };
        least = std::min(least, q(kLowQuantile));
        spread.push_back({(i + 0.5) / n * 2 - 1, (j + 0.5) / n * 2 - 1, q(0.75) - q(0.25)});
        typical[b] = TrimmedMean(values, options_.trim);
      }
    }
    dark = 0;
    // Both as smooth surfaces (a block's content, left over in either, is not smooth), then
    // the one against the other over the blocks.
    std::vector<Sample> typical_samples;
    for (uint32_t j = 0; j < n; ++j) {
      for (uint32_t i = 0; i < n; ++i) {
        const double t = typical[size_t{j} * n + i];
        if (!std::isnan(t)) typical_samples.push_back({(i + 0.5) / n * 2 - 1, (j + 0.5) / n * 2 - 1, t});
      }
    }
    const auto spread_surface = FitSurface(spread, options_.degree);
    const auto typical_surface = FitSurface(typical_samples, options_.degree);
    if (spread_surface && typical_surface) {
      std::vector<double> xs, ys;
      for (uint32_t j = 0; j < n; ++j) {
        for (uint32_t i = 0; i < n; ++i) {
          const double u = (i + 0.5) / n * 2 - 1, v = (j + 0.5) / n * 2 - 1;
          xs.push_back(EvaluateSurface(*spread_surface, u, v, options_.degree));
          ys.push_back(EvaluateSurface(*typical_surface, u, v, options_.degree));
        }
      }
      const double nx = static_cast<double>(xs.size());
      const double mx = std::accumulate(xs.begin(), xs.end(), 0.0) / nx, my = std::accumulate(ys.begin(), ys.end(), 0.0) / nx;
      double sxx = 0, sxy = 0, syy = 0;
      for (size_t k = 0; k < xs.size(); ++k) {
        sxx += (xs[k] - mx) * (xs[k] - mx), sxy += (xs[k] - mx) * (ys[k] - my), syy += (ys[k] - my) * (ys[k] - my);
      }
      // Only where the spreads show the illumination (it varies across the field, and the
      // typical values follow it); else D is taken as 0, as BaSiC does without its dark field.
      const bool follows = sxx > 0 && syy > 0 && sxy * sxy / (sxx * syy) >= 0.8;
      if (mx > 0 && std::sqrt(sxx / nx) / mx >= 0.03 && sxy > 0 && follows) {
        dark = std::clamp(my - sxy / sxx * mx, 0.0, std::max(0.0, least));
      }
    }
  }
  // Each field's blocks less D over their mean; each block's trimmed mean over the fields.
  std::vector<double> shape(blocks, std::numeric_limits<double>::quiet_NaN());
  {
    std::vector<double> scale(grids_.size(), 0.0);
    for (size_t t = 0; t < grids_.size(); ++t) {
      double s = 0, c = 0;
      for (float v : grids_[t]) {
        if (!std::isnan(v)) s += v - dark, c += 1;
      }
      scale[t] = c > 0 ? s / c : 0;
    }
    for (size_t b = 0; b < blocks; ++b) {
      values.clear();
      for (size_t t = 0; t < grids_.size(); ++t) {
        if (scale[t] > 1e-3 && !std::isnan(grids_[t][b])) values.push_back((grids_[t][b] - dark) / scale[t]);
      }
      if (values.size() >= 3) shape[b] = TrimmedMean(values, options_.trim);
    }
  }
  // The smooth surface of F's shape.
  std::vector<Sample> samples;
  for (uint32_t j = 0; j < n; ++j) {
    for (uint32_t i = 0; i < n; ++i) {
      const double y = shape[size_t{j} * n + i];
      if (!std::isnan(y)) samples.push_back({(i + 0.5) / n * 2 - 1, (j + 0.5) / n * 2 - 1, y});
    }
  }
  const int degree = options_.degree;
  const auto coef = FitSurface(samples, degree);
  if (!coef) {
    return Error(StatusCode::kFailedPrecondition, "flat field: {} blocks with values, too few for a surface of degree {}",
                 samples.size(), degree);
  }
  FlatField f;
  f.width = width_;
  f.height = height_;
  f.grid_x = f.grid_y = kGridSamples;
  f.dark = dark;
  f.gain.resize(size_t{kGridSamples} * kGridSamples);
  double mean = 0;
  for (uint32_t j = 0; j < kGridSamples; ++j) {
    for (uint32_t i = 0; i < kGridSamples; ++i) {
      const double g = EvaluateSurface(*coef, (i + 0.5) / kGridSamples * 2 - 1, (j + 0.5) / kGridSamples * 2 - 1, degree);
      f.gain[size_t{j} * kGridSamples + i] = static_cast<float>(g);
      mean += g;
    }
  }
  mean /= static_cast<double>(f.gain.size());
  if (!(mean > 0)) return Error(StatusCode::kFailedPrecondition, "flat field: the fitted surface is not positive");
  for (float& g : f.gain) g = static_cast<float>(std::clamp(g / mean, kMinGain, 100.0));
  return f;
}

void ApplyFlatField(const FlatField& flat, const stitch::ImageView& in, int64_t x0, int64_t y0, uint32_t scale,
                    std::span<uint16_t> out, uint16_t max_value, double gain) {
  std::vector<double> inverse(static_cast<size_t>(in.width));
  const double s = scale;
  for (int64_t y = 0; y < in.height; ++y) {
    const double cy = static_cast<double>(y0) + (static_cast<double>(y) + 0.5) * s;
    for (int64_t x = 0; x < in.width; ++x) {
      inverse[static_cast<size_t>(x)] = 1.0 / gain / flat.At(static_cast<double>(x0) + (static_cast<double>(x) + 0.5) * s, cy);
    }
    uint16_t* dst = out.data() + y * in.width;
    for (int64_t x = 0; x < in.width; ++x) {
      const double v = (in.at(x, y) - flat.dark) * inverse[static_cast<size_t>(x)] + flat.dark;
      dst[x] = static_cast<uint16_t>(std::clamp(std::nearbyint(v), 0.0, static_cast<double>(max_value)));
    }
  }
}

}  // namespace tessera::correct
