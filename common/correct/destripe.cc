#include "common/correct/destripe.h"

#include <emmintrin.h>
#include <fftw3.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <vector>

#include "common/correct/internal/wavelet.h"

// glibc's vector maths (libmvec, SSE2 and up, chosen at load time): log and exp two at a time,
// within 4 ulp.
extern "C" __m128d _ZGVbN2v_log(__m128d);
extern "C" __m128d _ZGVbN2v_exp(__m128d);

namespace tessera::correct {
namespace {

// out[i] = log(1 + in[i]) (add = 1) or exp(in[i]) - 1 (add = -1) over [i0, i1).
void LogOrExp(const double* in, double* out, size_t i0, size_t i1, bool log) {
  size_t i = i0;
  const __m128d one = _mm_set1_pd(1.0);
  for (; i + 2 <= i1; i += 2) {
    const __m128d v = _mm_loadu_pd(in + i);
    _mm_storeu_pd(out + i, log ? _ZGVbN2v_log(_mm_add_pd(v, one)) : _mm_sub_pd(_ZGVbN2v_exp(v), one));
  }
  for (; i < i1; ++i) out[i] = log ? std::log(1.0 + in[i]) : std::exp(in[i]) - 1.0;
}

using internal::Plane;

// FFTW plans of one length, made once per process (the planner is not thread-safe) and run on
// any rows (FFTW_UNALIGNED).
struct RowPlans {
  fftw_plan forward, inverse;
};

const RowPlans& PlansFor(int n) {
  static std::mutex mu;
  static std::map<int, RowPlans> plans;
  std::lock_guard lock(mu);
  if (auto it = plans.find(n); it != plans.end()) return it->second;
  std::vector<double> r(static_cast<size_t>(n));
  auto* c = fftw_alloc_complex(static_cast<size_t>(n / 2 + 1));
  RowPlans p{fftw_plan_dft_r2c_1d(n, r.data(), c, FFTW_ESTIMATE | FFTW_UNALIGNED),
             fftw_plan_dft_c2r_1d(n, c, r.data(), FFTW_ESTIMATE | FFTW_UNALIGNED)};
  fftw_free(c);
  return plans.emplace(n, p).first->second;
}

// Each row's real FFT (scipy.fftpack's packed order: X0, Re X1, Im X1, Re X2, ...) times the
// notch 1 - exp(-k^2 / 2 s^2) over the packed index k, and back.
void NotchRows(Plane& band, double s) {
  const auto n = static_cast<int>(band.width);
  if (n == 0) return;
  const RowPlans& p = PlansFor(n);
  std::vector<double> g(static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) g[k] = 1.0 - std::exp(-static_cast<double>(k) * k / (2 * s * s));
  internal::ParallelFor(band.height, [&](int64_t y0, int64_t y1) {
  std::vector<fftw_complex> spectrum(static_cast<size_t>(n / 2 + 1));
  for (int64_t y = y0; y < y1; ++y) {
    double* row = band.row(y);
    fftw_execute_dft_r2c(p.forward, row, spectrum.data());
    spectrum[0][0] *= g[0];
    spectrum[0][1] = 0;
    for (int k = 1; 2 * k - 1 < n; ++k) {
      spectrum[k][0] *= g[2 * k - 1];
      spectrum[k][1] = 2 * k < n ? spectrum[k][1] * g[2 * k] : 0.0;
    }
    fftw_execute_dft_c2r(p.inverse, spectrum.data(), row);
    const double scale = 1.0 / n;
    for (int k = 0; k < n; ++k) row[k] *= scale;
  }
  });
}

// pystripe's filter_subband: the band's plane filtered in the log domain.
Plane FilterSubband(const Plane& img, double sigma, int level, const internal::Wavelet& w) {
  Plane log(img.width, img.height);
  internal::ParallelFor(static_cast<int64_t>(img.v.size()), [&](int64_t i0, int64_t i1) {
    LogOrExp(img.v.data(), log.v.data(), static_cast<size_t>(i0), static_cast<size_t>(i1), true);
  });
  const int levels = level == 0 ? internal::MaxLevel(std::min(img.width, img.height), w.dec_lo.size()) : level;
  internal::Decomposition d = internal::Decompose(std::move(log), w, levels);
  const double width_frac = sigma / static_cast<double>(img.height);
  for (auto& b : d.details) NotchRows(b.h, static_cast<double>(b.h.height) * width_frac);
  Plane out = internal::Reconstruct(std::move(d), w);
  internal::ParallelFor(static_cast<int64_t>(out.v.size()), [&](int64_t i0, int64_t i1) {
    LogOrExp(out.v.data(), out.v.data(), static_cast<size_t>(i0), static_cast<size_t>(i1), false);
  });
  return out;
}

// scipy.ndimage.gaussian_filter(f, sigma=1): radius 4, mirrored edges, y then x.
Plane GaussianSigma1(const Plane& in) {
  constexpr int kRadius = 4;
  std::array<double, 2 * kRadius + 1> wts{};
  double sum = 0;
  for (int i = -kRadius; i <= kRadius; ++i) sum += wts[i + kRadius] = std::exp(-0.5 * i * i);
  for (double& v : wts) v /= sum;
  using internal::Mirror;
  Plane mid(in.width, in.height), out(in.width, in.height);
  for (int64_t y = 0; y < in.height; ++y) {
    double* dst = mid.row(y);
    for (int i = -kRadius; i <= kRadius; ++i) {
      const double* src = in.row(Mirror(y + i, in.height));
      const double c = wts[i + kRadius];
      for (int64_t x = 0; x < in.width; ++x) dst[x] += c * src[x];
    }
  }
  for (int64_t y = 0; y < in.height; ++y) {
    const double* src = mid.row(y);
    double* dst = out.row(y);
    for (int64_t x = 0; x < in.width; ++x) {
      double acc = 0;
      for (int i = -kRadius; i <= kRadius; ++i) acc += wts[i + kRadius] * src[Mirror(x + i, in.width)];
      dst[x] = acc;
    }
  }
  return out;
}

Plane Clipped(const Plane& in, double lo, double hi) {
  Plane out = in;
  for (double& v : out.v) v = std::clamp(v, lo, hi);
  return out;
}

// pystripe's filter_streaks on the (even-sized) plane; the result before its cast to uint16.
Result<Plane> FilterStreaks(const Plane& img, double threshold, const DestripeOptions& o) {
  TESSERA_ASSIGN_OR_RETURN(const internal::Wavelet w, internal::WaveletNamed(o.wavelet));
  const double s1 = o.sigma_foreground, s2 = o.sigma_background;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (s1 > 0 && s2 > 0 && s1 == s2) return FilterSubband(img, s1, o.level, w);
  if (s1 <= 0 && s2 <= 0) return img;
  Plane f(img.width, img.height);
  for (size_t i = 0; i < img.v.size(); ++i) f.v[i] = 1.0 / (1.0 + std::exp(-(img.v[i] - threshold) / o.crossover));
  f = GaussianSigma1(f);
  const Plane fg = s1 > 0 ? FilterSubband(Clipped(img, threshold, kInf), s1, o.level, w) : img;
  const Plane bg = s2 > 0 ? FilterSubband(Clipped(img, -kInf, threshold), s2, o.level, w) : img;
  Plane out(img.width, img.height);
  for (size_t i = 0; i < img.v.size(); ++i) out.v[i] = fg.v[i] * f.v[i] + bg.v[i] * (1 - f.v[i]);
  return out;
}

// numpy.percentile's linear interpolation over `values` (reordered).
double Percentile(std::vector<uint16_t>& values, double q) {
  if (values.empty()) return 0;
  const double at = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(lo), values.end());
  const double a = values[lo];
  const double b = hi == lo ? a : *std::min_element(values.begin() + static_cast<ptrdiff_t>(lo) + 1, values.end());
  const double t = at - static_cast<double>(lo), diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

// Sample centres of ClearMap's local functions along one axis: n // spacing of them, centred.
std::vector<int64_t> Centres(int64_t n, int64_t spacing) {
  const int64_t count = n / spacing, left = (n - (count - 1) * spacing) / 2;
  std::vector<int64_t> c(static_cast<size_t>(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) c[static_cast<size_t>(i)] = left + i * spacing;
  return c;
}

// scipy.ndimage.zoom(order=1) of `count` samples to `n` along one axis: the two neighbours and
// the weight of the second, per output position. A position that rounding puts past the last
// sample is outside, and scipy's constant mode gives it 0 there.
struct Lerp {
  int64_t i0, i1;
  double t;
  bool outside;
};
std::vector<Lerp> ZoomAxis(int64_t count, int64_t n) {
  std::vector<Lerp> out(static_cast<size_t>(n));
  const double zoom = n > 1 ? static_cast<double>(count - 1) / static_cast<double>(n - 1) : 1.0;
  for (int64_t i = 0; i < n; ++i) {
    const double c = static_cast<double>(i) * zoom;
    const auto i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(c)), count - 1);
    out[static_cast<size_t>(i)] = {i0, std::min(i0 + 1, count - 1), c - static_cast<double>(i0),
                                   c > static_cast<double>(count - 1)};
  }
  return out;
}

// pystripe's correct_lightsheet, in its types (the stripe estimate uint16, the background
// float32, the result float32 cast to uint16).
void CorrectLightsheet(const stitch::ImageView& in, const DestripeOptions& o, std::span<uint16_t> out) {
  const int64_t w = in.width, h = in.height;
  const int64_t length = std::min<int64_t>(o.artifact_length, w);
  // The stripes: a percentile over `length` pixels along x at each centre of each row,
  // truncated to uint16, zoomed back along x and rounded.
  const std::vector<int64_t> cx = Centres(w, length);
  const std::vector<Lerp> zx = ZoomAxis(static_cast<int64_t>(cx.size()), w);
  std::vector<uint16_t> values, line(cx.size());
  std::vector<uint16_t> stripes(static_cast<size_t>(w * h));
  const int64_t lo_half = length / 2, hi_half = length - lo_half;
  for (int64_t y = 0; y < h; ++y) {
    for (size_t i = 0; i < cx.size(); ++i) {
      const int64_t x0 = std::max<int64_t>(0, cx[i] - lo_half), x1 = std::min(cx[i] + hi_half, w);
      values.clear();
      for (int64_t x = x0; x < x1; ++x) values.push_back(in.at(x, y));
      line[i] = static_cast<uint16_t>(Percentile(values, o.percentile));
    }
    for (int64_t x = 0; x < w; ++x) {
      const Lerp& l = zx[static_cast<size_t>(x)];
      const double v = l.outside ? 0.0 : line[l.i0] * (1 - l.t) + line[l.i1] * l.t;
      stripes[static_cast<size_t>(y * w + x)] = static_cast<uint16_t>(std::min(65535.0, std::max(0.0, v) + 0.5));
    }
  }
  // The background: the percentile of every second pixel over a window around each point of a
  // 25-pixel grid, as float32, zoomed bilinearly.
  constexpr int64_t kSpacing = 25, kStep = 2;
  const int64_t win = o.background_window, blo = win / 2, bhi = win - blo;
  const std::vector<int64_t> gy = Centres(h, kSpacing), gx = Centres(w, kSpacing);
  std::vector<float> grid(gy.size() * gx.size());
  for (size_t j = 0; j < gy.size(); ++j) {
    const int64_t y0 = std::max<int64_t>(0, gy[j] - blo), y1 = std::min(gy[j] + bhi, h);
    for (size_t i = 0; i < gx.size(); ++i) {
      const int64_t x0 = std::max<int64_t>(0, gx[i] - blo), x1 = std::min(gx[i] + bhi, w);
      values.clear();
      for (int64_t y = y0; y < y1; y += kStep) {
        for (int64_t x = x0; x < x1; x += kStep) values.push_back(in.at(x, y));
      }
      grid[j * gx.size() + i] = static_cast<float>(Percentile(values, o.percentile));
    }
  }
  const bool have_grid = !gy.empty() && !gx.empty();
  const std::vector<Lerp> by = ZoomAxis(static_cast<int64_t>(gy.size()), h), bx = ZoomAxis(static_cast<int64_t>(gx.size()), w);
  const auto vs = static_cast<float>(o.lightsheet_vs_background);
  for (int64_t y = 0; y < h; ++y) {
    const Lerp& ly = by[static_cast<size_t>(y)];
    for (int64_t x = 0; x < w; ++x) {
      float b = 0;
      const Lerp& lx = bx[static_cast<size_t>(x)];
      if (have_grid && !lx.outside && !ly.outside) {
        auto at = [&](int64_t j, int64_t i) { return static_cast<double>(grid[static_cast<size_t>(j) * gx.size() + i]); };
        const double top = at(ly.i0, lx.i0) * (1 - lx.t) + at(ly.i0, lx.i1) * lx.t;
        const double bottom = at(ly.i1, lx.i0) * (1 - lx.t) + at(ly.i1, lx.i1) * lx.t;
        b = static_cast<float>(top * (1 - ly.t) + bottom * ly.t);
      }
      const float source = in.at(x, y);
      const float lb = std::min(static_cast<float>(stripes[static_cast<size_t>(y * w + x)]), vs * b);
      const float c = source - std::min(source, lb);
      out[static_cast<size_t>(y * w + x)] = static_cast<uint16_t>(std::clamp(c, 0.0f, 65535.0f));
    }
  }
}

}  // namespace

Result<DestripeMethod> DestripeMethodNamed(const std::string& name) {
  if (name == "wavelet") return DestripeMethod::kWavelet;
  if (name == "lightsheet") return DestripeMethod::kLightsheet;
  return Error(StatusCode::kInvalidArgument, "destripe method '{}': wavelet or lightsheet", name);
}

const char* DestripeMethodName(DestripeMethod method) {
  return method == DestripeMethod::kWavelet ? "wavelet" : "lightsheet";
}

Status CheckDestripeOptions(const DestripeOptions& o) {
  auto bad = [](const char* what, auto value, const char* range) {
    return Error(StatusCode::kInvalidArgument, "destripe {} {}: must be {}", what, value, range);
  };
  constexpr double kMaxSigma = 1e6;
  if (!(o.sigma_foreground >= 0 && o.sigma_foreground <= kMaxSigma)) return bad("sigma_foreground", o.sigma_foreground, "in [0, 1e6] px");
  if (!(o.sigma_background >= 0 && o.sigma_background <= kMaxSigma)) return bad("sigma_background", o.sigma_background, "in [0, 1e6] px");
  if (o.level < 0 || o.level > 16) return bad("level", o.level, "in [0, 16] (0: as many as the plane allows)");
  if (!internal::WaveletNamed(o.wavelet).ok()) return internal::WaveletNamed(o.wavelet).status();
  if (!(o.threshold == -1 || (o.threshold >= 0 && o.threshold <= 65535))) return bad("threshold", o.threshold, "-1 (Otsu's) or a grey level");
  if (!(o.crossover > 0 && o.crossover <= 65535)) return bad("crossover", o.crossover, "in (0, 65535] grey levels");
  if (o.artifact_length < 1 || o.artifact_length > 65536) return bad("artifact_length", o.artifact_length, "in [1, 65536] px");
  if (o.background_window < 1 || o.background_window > 65536) return bad("background_window", o.background_window, "in [1, 65536] px");
  if (!(o.percentile >= 0 && o.percentile <= 1)) return bad("percentile", o.percentile, "in [0, 1]");
  if (!(o.lightsheet_vs_background >= 0 && o.lightsheet_vs_background <= 1e6)) {
    return bad("lightsheet_vs_background", o.lightsheet_vs_background, "in [0, 1e6]");
  }
  return OkStatus();
}

double OtsuThreshold(const stitch::ImageView& in) {
  std::vector<int64_t> hist(65536, 0);
  uint16_t lo = 65535, hi = 0;
  for (int64_t y = 0; y < in.height; ++y) {
    for (int64_t x = 0; x < in.width; ++x) {
      const uint16_t v = in.at(x, y);
      ++hist[v];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (in.width * in.height == 0) return 0;
  if (lo == hi) return lo;
  const size_t n = size_t{hi} - lo + 1u;
  std::vector<int64_t> w1(n), w2(n), m1(n), m2(n);
  int64_t cw = 0, cm = 0;
  for (size_t i = 0; i < n; ++i) {
    cw += hist[lo + i];
    cm += hist[lo + i] * static_cast<int64_t>(lo + i);
    w1[i] = cw;
    m1[i] = cm;
  }
  cw = cm = 0;
  for (size_t i = n; i-- > 0;) {
    cw += hist[lo + i];
    cm += hist[lo + i] * static_cast<int64_t>(lo + i);
    w2[i] = cw;
    m2[i] = cm;
  }
  size_t best = 0;
  double best_v = -1;
  for (size_t i = 0; i + 1 < n; ++i) {
    const double mean1 = static_cast<double>(m1[i]) / static_cast<double>(w1[i]);
    const double mean2 = static_cast<double>(m2[i + 1]) / static_cast<double>(w2[i + 1]);
    const double v = static_cast<double>(w1[i] * w2[i + 1]) * (mean1 - mean2) * (mean1 - mean2);
    if (v > best_v) {
      best_v = v;
      best = i;
    }
  }
  return static_cast<double>(lo + best);
}

Status Destripe(const stitch::ImageView& src, const DestripeOptions& o, std::span<uint16_t> out) {
  TESSERA_RETURN_IF_ERROR(CheckDestripeOptions(o));
  if (src.width <= 0 || src.height <= 0 || out.size() != static_cast<size_t>(src.width * src.height)) {
    return Error(StatusCode::kInvalidArgument, "destripe: a plane of {} x {} into {} samples", src.width, src.height,
                 out.size());
  }
  // Stripes down the columns: the plane turned, destriped along its rows, turned back.
  std::vector<uint16_t> turned, turned_out;
  stitch::ImageView in = src;
  std::span<uint16_t> dst = out;
  if (o.along_y) {
    turned.resize(out.size());
    turned_out.resize(out.size());
    for (int64_t y = 0; y < src.height; ++y) {
      for (int64_t x = 0; x < src.width; ++x) turned[static_cast<size_t>(x * src.height + y)] = src.at(x, y);
    }
    in = {turned.data(), src.height, src.width, 0};
    dst = turned_out;
  }
  if (o.method == DestripeMethod::kLightsheet) {
    CorrectLightsheet(in, o, dst);
  } else {
    const double threshold = o.threshold == -1 ? OtsuThreshold(in) : o.threshold;
    // Even sizes, the last row and column repeated (pystripe pads so).
    const int64_t w = in.width + in.width % 2, h = in.height + in.height % 2;
    Plane img(w, h);
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) img.row(y)[x] = in.at(std::min(x, in.width - 1), std::min(y, in.height - 1));
    }
    TESSERA_ASSIGN_OR_RETURN(const Plane f, FilterStreaks(img, threshold, o));
    for (int64_t y = 0; y < in.height; ++y) {
      for (int64_t x = 0; x < in.width; ++x) {
        const double v = f.row(y)[x];
        dst[static_cast<size_t>(y * in.width + x)] = static_cast<uint16_t>(v >= 0 ? std::min(v, 65535.0) : 0.0);
      }
    }
  }
  if (o.along_y) {
    for (int64_t y = 0; y < src.height; ++y) {
      for (int64_t x = 0; x < src.width; ++x) out[static_cast<size_t>(y * src.width + x)] = turned_out[static_cast<size_t>(x * src.height + y)];
    }
  }
  return OkStatus();
}

}  // namespace tessera::correct
