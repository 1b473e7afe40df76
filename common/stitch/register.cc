#include "common/stitch/register.h"

#include <fftw3.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <optional>
#include <vector>

namespace tessera::stitch {
namespace {

// The smallest n' >= n whose only prime factors are 2, 3, 5 and 7: sizes FFTW is fast at.
int64_t GoodFftSize(int64_t n) {
  for (int64_t m = std::max<int64_t>(n, 1);; ++m) {
    int64_t r = m;
    for (int64_t p : {2, 3, 5, 7}) {
      while (r % p == 0) r /= p;
    }
    if (r == 1) return m;
  }
}

template <typename T>
struct FftwFree {
  void operator()(T* p) const { fftwf_free(p); }
};
using RealBuffer = std::unique_ptr<float[], FftwFree<float>>;
using ComplexBuffer = std::unique_ptr<fftwf_complex[], FftwFree<fftwf_complex>>;

RealBuffer Reals(size_t n) { return RealBuffer(fftwf_alloc_real(n)); }
ComplexBuffer Complexes(size_t n) { return ComplexBuffer(fftwf_alloc_complex(n)); }

// Forward and inverse plans per size, made once (FFTW's planner is not thread-safe; executing
// a plan on other arrays of the same alignment is).
struct Plans {
  fftwf_plan forward, inverse;
};

Plans PlansFor(int64_t ny, int64_t nx) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, int64_t>, Plans> plans;
  std::lock_guard lock(mu);
  auto it = plans.find({ny, nx});
  if (it != plans.end()) return it->second;
  const size_t real_n = static_cast<size_t>(ny * nx), complex_n = static_cast<size_t>(ny * (nx / 2 + 1));
  RealBuffer r = Reals(real_n);
  ComplexBuffer c = Complexes(complex_n);
  Plans p{fftwf_plan_dft_r2c_2d(static_cast<int>(ny), static_cast<int>(nx), r.get(), c.get(), FFTW_MEASURE),
          fftwf_plan_dft_c2r_2d(static_cast<int>(ny), static_cast<int>(nx), c.get(), r.get(), FFTW_MEASURE)};
  plans.emplace(std::make_pair(ny, nx), p);
  return p;
}

Rect Intersect(Rect a, Rect b) {
  return {std::max(a.x0, b.x0), std::max(a.y0, b.y0), std::min(a.x1, b.x1), std::min(a.y1, b.y1)};
}

// `r` of `img` (in img's pixels), averaged over bin x bin blocks, minus its mean, times a
// Tukey window, into the top-left of an ny x nx zero buffer.
void LoadWindowed(const ImageView& img, Rect r, int64_t bin, int64_t ny, int64_t nx, float* out) {
  std::fill(out, out + ny * nx, 0.0f);
  const int64_t h = r.height() / bin, w = r.width() / bin, stride = img.stride ? img.stride : img.width;
  std::vector<float> block(static_cast<size_t>(h * w), 0.0f);
  for (int64_t y = 0; y < h * bin; ++y) {
    float* row = block.data() + (y / bin) * w;
    const uint16_t* src = img.data + (r.y0 + y) * stride + r.x0;
    if (bin == 2) {
      for (int64_t x = 0; x < w; ++x) row[x] += static_cast<float>(src[2 * x] + src[2 * x + 1]);
    } else if (bin == 4) {
      for (int64_t x = 0; x < w; ++x) {
        row[x] += static_cast<float>(src[4 * x] + src[4 * x + 1] + src[4 * x + 2] + src[4 * x + 3]);
      }
    } else {
      for (int64_t x = 0; x < w; ++x) row[x] += static_cast<float>(src[x]);
    }
  }
  double sum = 0;
  for (float v : block) sum += v;
  const double mean = sum / static_cast<double>(std::max<int64_t>(1, h * w));
  // Tukey window: flat inside, a cosine taper over the outer 2 pixels of each side. The overlap
  // two tiles truly share may lie at the very edge of the widened crops (on mist-5x5 a 13-pixel
  // overlap with 7 pixels of stage error): a Hann window, or a taper of 4 or more, hides it
  // (mist-5x5 pairs found: taper 0-2 all 40, 4: 38, 8: 36, Hann: 29).
  auto tukey = [](int64_t n) {
    const int64_t taper = std::min<int64_t>(2, n / 4);
    std::vector<float> wt(static_cast<size_t>(n), 1.0f);
    for (int64_t i = 0; i < taper; ++i) {
      const float v = static_cast<float>(0.5 - 0.5 * std::cos(std::numbers::pi * (static_cast<double>(i) + 0.5) / static_cast<double>(taper)));
      wt[static_cast<size_t>(i)] = wt[static_cast<size_t>(n - 1 - i)] = v;
    }
    return wt;
  };
  const auto wx = tukey(w), wy = tukey(h);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      out[y * nx + x] = static_cast<float>(block[static_cast<size_t>(y * w + x)] - mean) * wx[static_cast<size_t>(x)] *
                        wy[static_cast<size_t>(y)];
    }
  }
}

struct Peak {
  int64_t y, x;
  float value;
};

// The `count` highest local maxima (3 x 3, circular) of an ny x nx surface among the
// positions `feasible` accepts.
template <typename Feasible>
std::vector<Peak> TopPeaks(const float* s, int64_t ny, int64_t nx, int count, Feasible feasible) {
  std::vector<Peak> peaks;
  for (int64_t y = 0; y < ny; ++y) {
    for (int64_t x = 0; x < nx; ++x) {
      if (!feasible(y, x)) continue;
      const float v = s[y * nx + x];
      bool highest = true;
      for (int64_t dy = -1; dy <= 1 && highest; ++dy) {
        for (int64_t dx = -1; dx <= 1; ++dx) {
          if ((dx || dy) && s[((y + dy + ny) % ny) * nx + (x + dx + nx) % nx] > v) {
            highest = false;
            break;
          }
        }
      }
      if (highest) peaks.push_back({y, x, v});
    }
  }
  const auto keep = std::min(peaks.size(), static_cast<size_t>(count));
  std::partial_sort(peaks.begin(), peaks.begin() + static_cast<std::ptrdiff_t>(keep), peaks.end(),
                    [](const Peak& a, const Peak& b) { return a.value > b.value; });
  peaks.resize(keep);
  return peaks;
}

// Sum of a[i] * b[i] in float, sixteen lanes at a time (vectorised; AVX2 or AVX-512 where
// the CPU has it, chosen at run time), then in double.
__attribute__((target_clones("avx512f", "avx2", "default"))) double Dot(const float* a, const float* b, int64_t n) {
  float lanes[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 16; ++k) lanes[k] += a[i + k] * b[i + k];
  }
  double sum = 0;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

// NCC of a and b at any offset within the stage's error, each for one dot product: both
// windows RegisterPair reads (every overlap within the error lies inside them) as floats
// less a constant near their mean (for the dot product's precision), with exact integer
// summed-area tables of the values and of their squares. Offsets asked again are answered
// from memory. Equal to Ncc() up to float rounding.
__extension__ using Int128 = __int128;  // n * sum of squares: exact past 64 bits

class NccField {
 public:
  /// Offsets within `max_shift` (and one more pixel) of (ndx, ndy) are served from the
  /// windows; others the plain way.
  NccField(const ImageView& a, Rect ra, const ImageView& b, Rect rb, int64_t ndx, int64_t ndy, int64_t max_shift,
           int64_t min_pixels)
      : a_(a), b_(b), min_pixels_(min_pixels) {
    // Where the overlap's edges can fall, in each tile's pixels.
    std::vector<int64_t> ax, ay, bx, by;
    for (int64_t e = -max_shift - 1; e <= max_shift + 1; ++e) {
      const int64_t dx = ndx + e, dy = ndy + e;
      for (int64_t x : {std::clamp<int64_t>(dx, 0, a.width), std::clamp<int64_t>(dx + b.width, 0, a.width)}) {
        ax.push_back(x);
        bx.push_back(x - dx);
      }
      for (int64_t y : {std::clamp<int64_t>(dy, 0, a.height), std::clamp<int64_t>(dy + b.height, 0, a.height)}) {
        ay.push_back(y);
        by.push_back(y - dy);
      }
    }
    wa_.emplace(a, ra, ax, ay);
    wb_.emplace(b, rb, bx, by);
  }

  double operator()(int64_t dx, int64_t dy) {
    if (auto it = memo_.find({dx, dy}); it != memo_.end()) return it->second;
    const Rect r = Intersect({0, 0, a_.width, a_.height}, {dx, dy, dx + b_.width, dy + b_.height});
    const Rect rb{r.x0 - dx, r.y0 - dy, r.x1 - dx, r.y1 - dy};
    double v;
    std::optional<std::pair<uint64_t, uint64_t>> sums_a, sums_b;
    if (!r.empty()) {
      sums_a = wa_->Sums(r);
      sums_b = wb_->Sums(rb);
    }
    if (r.empty() || r.width() * r.height() < std::max<int64_t>(min_pixels_, 2)) {
      v = -1;
    } else if (!sums_a || !sums_b) {
      v = Ncc(a_, b_, dx, dy, min_pixels_);  // outside the windows: the plain way
    } else {
      double dot = 0;  // of the values less the offsets
      for (int64_t y = 0; y < r.height(); ++y) {
        dot += Dot(wa_->Row(r.y0 + y) + (r.x0 - wa_->r.x0), wb_->Row(rb.y0 + y) + (rb.x0 - wb_->r.x0), r.width());
      }
      const int64_t n = r.width() * r.height();
      const auto [sa, saa] = *sums_a;
      const auto [sb, sbb] = *sums_b;
      // n^2 variances, exactly; the covariance from the offset dot product.
      const auto var_a = static_cast<double>(static_cast<Int128>(n) * saa - static_cast<Int128>(sa) * sa);
      const auto var_b = static_cast<double>(static_cast<Int128>(n) * sbb - static_cast<Int128>(sb) * sb);
      const double nd = static_cast<double>(n);
      const double da = static_cast<double>(sa) - nd * wa_->offset, db = static_cast<double>(sb) - nd * wb_->offset;
      const double cov = nd * dot - da * db;  // n^2 covariance
      if (var_a <= 0 || var_b <= 0) {
        v = var_a == var_b && sa == sb ? 1 : 0;  // flat: identical or not
      } else {
        v = std::clamp(cov / std::sqrt(var_a * var_b), -1.0, 1.0);
      }
    }
    memo_[{dx, dy}] = v;
    return v;
  }

 private:
  // A window of one tile: its pixels as floats, and the sums of values and of squares over
  // every rectangle whose edges are among the given columns and rows (a summed-area table
  // kept at those lines only: one pass over the pixels, a few kilobytes).
  struct Window {
    Rect r;
    int64_t w, h;
    double offset = 0;                  // about the mean: subtracted from the floats
    std::vector<float> v;               // h x w
    std::vector<int64_t> xs, ys;        // the lines kept, ascending, in the image's pixels
    std::vector<uint64_t> s, ss;        // ys.size() x xs.size()

    Window(const ImageView& img, Rect rect, std::vector<int64_t> cols, std::vector<int64_t> rows)
        : r(rect), w(rect.width()), h(rect.height()) {
      auto lines = [](std::vector<int64_t>& l, int64_t lo, int64_t hi) {
        std::erase_if(l, [&](int64_t x) { return x < lo || x > hi; });
        std::sort(l.begin(), l.end());
        l.erase(std::unique(l.begin(), l.end()), l.end());
      };
      lines(cols, r.x0, r.x1);
      lines(rows, r.y0, r.y1);
      xs = std::move(cols);
      ys = std::move(rows);
      const int64_t stride = img.stride ? img.stride : img.width;
      uint64_t sample = 0, count = 0;  // every 8th row is enough to centre the floats
      for (int64_t y = 0; y < h; y += 8) {
        const uint16_t* src = img.data + (r.y0 + y) * stride + r.x0;
        for (int64_t x = 0; x < w; ++x, ++count) sample += src[x];
      }
      offset = count ? static_cast<double>(sample) / static_cast<double>(count) : 0;
      const auto off = static_cast<float>(offset);
      v.resize(static_cast<size_t>(w * h));
      s.assign(xs.size() * ys.size(), 0);
      ss = s;
      // Running column sums at the kept columns, recorded at the kept rows.
      std::vector<uint64_t> col(xs.size(), 0), col2(xs.size(), 0);
      size_t next_row = 0;
      auto record = [&](int64_t y) {  // the sums of rows [r.y0, y)
        while (next_row < ys.size() && ys[next_row] == y) {
          std::copy(col.begin(), col.end(), s.begin() + static_cast<std::ptrdiff_t>(next_row * xs.size()));
          std::copy(col2.begin(), col2.end(), ss.begin() + static_cast<std::ptrdiff_t>(next_row * xs.size()));
          ++next_row;
        }
      };
      for (int64_t y = 0; y < h; ++y) {
        record(r.y0 + y);
        const uint16_t* src = img.data + (r.y0 + y) * stride + r.x0;
        float* dst = v.data() + y * w;
        uint64_t row = 0, row2 = 0;
        int64_t x = 0;
        for (size_t k = 0; k < xs.size(); ++k) {  // the row's prefix sums, up to each kept column
          for (const int64_t end = xs[k] - r.x0; x < end; ++x) {
            const uint64_t val = src[x];
            dst[x] = static_cast<float>(src[x]) - off;
            row += val;
            row2 += val * val;
          }
          col[k] += row;
          col2[k] += row2;
        }
        for (; x < w; ++x) dst[x] = static_cast<float>(src[x]) - off;
      }
      record(r.y1);
    }
    const float* Row(int64_t y) const { return v.data() + (y - r.y0) * w; }
    // Sums over q (in the image's pixels); nothing when q's edges are not kept lines.
    std::optional<std::pair<uint64_t, uint64_t>> Sums(const Rect& q) const {
      auto find = [](const std::vector<int64_t>& l, int64_t x) -> std::optional<size_t> {
        const auto it = std::lower_bound(l.begin(), l.end(), x);
        if (it == l.end() || *it != x) return std::nullopt;
        return static_cast<size_t>(it - l.begin());
      };
      const auto x0 = find(xs, q.x0), x1 = find(xs, q.x1), y0 = find(ys, q.y0), y1 = find(ys, q.y1);
      if (!x0 || !x1 || !y0 || !y1) return std::nullopt;
      auto sum = [&](const std::vector<uint64_t>& t) {
        const size_t n = xs.size();
        return t[*y1 * n + *x1] - t[*y0 * n + *x1] - t[*y1 * n + *x0] + t[*y0 * n + *x0];
      };
      return std::pair{sum(s), sum(ss)};
    }
  };
  const ImageView& a_;
  const ImageView& b_;
  std::optional<Window> wa_, wb_;
  int64_t min_pixels_;
  std::map<std::pair<int64_t, int64_t>, double> memo_;
};

// The vertex of the parabola through (-1, m), (0, c), (1, p), within half a pixel.
double ParabolaVertex(double m, double c, double p) {
  const double denom = m - 2 * c + p;
  if (!(denom < 0)) return 0;  // not a maximum (flat or NaN)
  return std::clamp(0.5 * (m - p) / denom, -0.5, 0.5);
}

}  // namespace

double Ncc(const ImageView& a, const ImageView& b, int64_t dx, int64_t dy, int64_t min_pixels) {
  const Rect r = Intersect({0, 0, a.width, a.height}, {dx, dy, dx + b.width, dy + b.height});
  if (r.empty() || r.width() * r.height() < std::max<int64_t>(min_pixels, 2)) return -1;
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (int64_t y = r.y0; y < r.y1; ++y) {
    for (int64_t x = r.x0; x < r.x1; ++x) {
      const double va = a.at(x, y), vb = b.at(x - dx, y - dy);
      sa += va;
      sb += vb;
      saa += va * va;
      sbb += vb * vb;
      sab += va * vb;
    }
  }
  const double n = static_cast<double>(r.width() * r.height());
  const double cov = sab - sa * sb / n, var_a = saa - sa * sa / n, var_b = sbb - sb * sb / n;
  if (var_a <= 0 || var_b <= 0) return var_a == var_b && sa == sb ? 1 : 0;  // flat: identical or not
  return cov / std::sqrt(var_a * var_b);
}

std::pair<Rect, Rect> OverlapWindows(int64_t aw, int64_t ah, int64_t bw, int64_t bh, double nominal_dx,
                                     double nominal_dy, int max_shift) {
  const int64_t ndx = std::llround(nominal_dx), ndy = std::llround(nominal_dy), m = max_shift;
  // The overlap the stage predicts, widened by its error, in a's pixels; then each tile's part of it.
  const Rect overlap = Intersect({0, 0, aw, ah}, {ndx, ndy, ndx + bw, ndy + bh});
  const Rect wide{overlap.x0 - m, overlap.y0 - m, overlap.x1 + m, overlap.y1 + m};
  const Rect ra = Intersect(wide, {0, 0, aw, ah});
  const Rect rb = Intersect(wide, {ndx, ndy, ndx + bw, ndy + bh});
  return {ra, {rb.x0 - ndx, rb.y0 - ndy, rb.x1 - ndx, rb.y1 - ndy}};
}

Result<Link> RegisterPair(const ImageView& a, const ImageView& b, double nominal_dx, double nominal_dy,
                          const RegisterOptions& o) {
  Link link;
  link.nominal_dx = nominal_dx;
  link.nominal_dy = nominal_dy;
  const int64_t ndx = std::llround(nominal_dx), ndy = std::llround(nominal_dy), m = o.max_shift;
  const Rect overlap = Intersect({0, 0, a.width, a.height}, {ndx, ndy, ndx + b.width, ndy + b.height});
  const auto [ra, rb_own] = OverlapWindows(a.width, a.height, b.width, b.height, nominal_dx, nominal_dy, o.max_shift);
  const Rect rb{rb_own.x0 + ndx, rb_own.y0 + ndy, rb_own.x1 + ndx, rb_own.y1 + ndy};  // in a's pixels
  if (ra.empty() || rb.empty() || Intersect(ra, rb).empty()) {
    return Error(StatusCode::kInvalidArgument, "tiles at offset ({}, {}) do not overlap within {} px", nominal_dx,
                 nominal_dy, o.max_shift);
  }
  // Large windows are correlated at a quarter or half resolution (4 x 4 blocks from 192 pixels
  // across and 256 k pixels, 2 x 2 from 96 and 128 k: a sixteenth or a quarter of the FFT's
  // work; on 2048-pixel fields of view with 10 % overlap the 4 x 4 blocks register every pair
  // as well, 30 % faster: docs/benchmarks.md); the readings are then placed to the pixel by the
  // NCC climb at full resolution.
  const int64_t edge = std::min(ra.width(), ra.height()), area = ra.width() * ra.height();
  const int64_t bin = edge >= 192 && area >= (int64_t{1} << 18) ? 4 : edge >= 96 && area >= (int64_t{1} << 17) ? 2 : 1;
  const int64_t ny = GoodFftSize(std::max(ra.height(), rb.height()) / bin);
  const int64_t nx = GoodFftSize(std::max(ra.width(), rb.width()) / bin);
  const Plans plans = PlansFor(ny, nx);
  NccField ncc(a, ra, b, rb_own, ndx, ndy, m, o.min_overlap_px);
  const size_t real_n = static_cast<size_t>(ny * nx), complex_n = static_cast<size_t>(ny * (nx / 2 + 1));
  // This thread's buffers, kept for the next pair of the same size (no allocation, no page faults).
  thread_local struct {
    size_t real_n = 0, complex_n = 0;
    RealBuffer sa, sb;
    ComplexBuffer fa, fb;
  } buffers;
  if (buffers.real_n != real_n || buffers.complex_n != complex_n) {
    buffers = {real_n, complex_n, Reals(real_n), Reals(real_n), Complexes(complex_n), Complexes(complex_n)};
  }
  RealBuffer& sa = buffers.sa;
  RealBuffer& sb = buffers.sb;
  ComplexBuffer& fa = buffers.fa;
  ComplexBuffer& fb = buffers.fb;
  LoadWindowed(a, ra, bin, ny, nx, sa.get());
  LoadWindowed(b, {rb.x0 - ndx, rb.y0 - ndy, rb.x1 - ndx, rb.y1 - ndy}, bin, ny, nx, sb.get());
  fftwf_execute_dft_r2c(plans.forward, sa.get(), fa.get());
  fftwf_execute_dft_r2c(plans.forward, sb.get(), fb.get());
  // Whitened cross-power spectrum: only the phase difference is left.
  for (size_t i = 0; i < complex_n; ++i) {
    const std::complex<float> pa(fa[i][0], fa[i][1]), pb(fb[i][0], fb[i][1]);
    const std::complex<float> cross = pa * std::conj(pb);
    const float mag = std::sqrt(cross.real() * cross.real() + cross.imag() * cross.imag());
    const std::complex<float> w = mag > 1e-12f ? cross / mag : std::complex<float>(0, 0);
    fa[i][0] = w.real();
    fa[i][1] = w.imag();
  }
  fftwf_execute_dft_c2r(plans.inverse, fa.get(), sa.get());

  // Each peak read as a shift s of b's crop against a's, both ways round the circle; b's
  // origin is then s + ra's origin - rb's origin + the nominal offset.
  struct Reading {
    int64_t dx, dy;
    double ncc;
  };
  std::vector<Reading> readings;
  // Offsets from the nominal one of a shift read either way round: within the stage's error?
  auto within = [&](int64_t s, int64_t n, int64_t origin_gap) {
    return std::abs(s * bin + origin_gap) <= m + bin || std::abs((s - n) * bin + origin_gap) <= m + bin;
  };
  const int64_t gap_x = ra.x0 - rb.x0, gap_y = ra.y0 - rb.y0;
  auto feasible = [&](int64_t y, int64_t x) { return within(x, nx, gap_x) && within(y, ny, gap_y); };
  for (const Peak& p : TopPeaks(sa.get(), ny, nx, o.peaks, feasible)) {
    for (int64_t sy : {p.y, p.y - ny}) {
      for (int64_t sx : {p.x, p.x - nx}) {
        const int64_t ex = sx * bin + gap_x, ey = sy * bin + gap_y;  // from the nominal offset
        if (std::abs(ex) > m + bin || std::abs(ey) > m + bin) continue;
        const int64_t dx = ndx + std::clamp(ex, -m, m), dy = ndy + std::clamp(ey, -m, m);
        if (std::any_of(readings.begin(), readings.end(), [&](const Reading& r) { return r.dx == dx && r.dy == dy; })) {
          continue;
        }
        readings.push_back({dx, dy, ncc(dx, dy)});
      }
    }
  }
  // Texture: a's pixels in the predicted overlap.
  double s = 0, ss = 0;
  for (int64_t y = overlap.y0; y < overlap.y1; ++y) {
    for (int64_t x = overlap.x0; x < overlap.x1; ++x) {
      s += a.at(x, y);
      ss += static_cast<double>(a.at(x, y)) * a.at(x, y);
    }
  }
  const double n = std::max<double>(1, static_cast<double>(overlap.width() * overlap.height()));
  link.texture = std::sqrt(std::max(0.0, ss / n - (s / n) * (s / n)));
  if (readings.empty()) {
    link.dx = nominal_dx;
    link.dy = nominal_dy;
    link.reason = "no correlation peak within the stage's error";
    return link;
  }
  std::sort(readings.begin(), readings.end(), [](const Reading& x, const Reading& y) { return x.ncc > y.ncc; });
  // Uphill in NCC from a reading to its local maximum (a correlation peak of a smooth image,
  // or of half-resolution windows, may sit a pixel or two off).
  auto within_error = [&](int64_t dx, int64_t dy) { return std::abs(dx - ndx) <= m && std::abs(dy - ndy) <= m; };
  // `towards`: a known local maximum; a climb that comes next to it ends there, the step
  // towards it is tried first (on a flank it is the way up: one NCC a step), and a climb
  // still going after a few steps is on its flank too (a reading lies within a pixel or two of
  // the correlation peak it came from).
  auto climb = [&](Reading at, const Reading* towards) {
    constexpr int kFlankSteps = 4;
    for (int steps = 0;; ++steps) {
      if (towards && (steps >= kFlankSteps ||
                      std::max(std::abs(at.dx - towards->dx), std::abs(at.dy - towards->dy)) <= 1)) {
        return *towards;
      }
      if (towards) {
        const int64_t dx = at.dx + (towards->dx > at.dx) - (towards->dx < at.dx);
        const int64_t dy = at.dy + (towards->dy > at.dy) - (towards->dy < at.dy);
        if (within_error(dx, dy)) {
          if (const double v = ncc(dx, dy); v > at.ncc) {
            at = {dx, dy, v};
            continue;
          }
        }
      }
      Reading next = at;
      for (int64_t ey = -1; ey <= 1; ++ey) {
        for (int64_t ex = -1; ex <= 1; ++ex) {
          const int64_t dx = at.dx + ex, dy = at.dy + ey;
          if ((ex || ey) && within_error(dx, dy)) {
            const double v = ncc(dx, dy);
            if (v > next.ncc) next = {dx, dy, v};
          }
        }
      }
      if (next.dx == at.dx && next.dy == at.dy) return at;  // a local maximum
      at = next;
    }
  };
  Reading best = climb(readings[0], nullptr);
  // The rival: the best other local maximum of the NCC that a reading climbs to (periodic
  // patterns have several); a reading on the best peak's flank (a smooth image's peak is
  // wide) climbs to the best one and is no rival. The strongest few readings are tried.
  std::optional<Reading> rival;
  int tried = 0;
  for (const Reading& r : readings) {
    if (std::max(std::abs(r.dx - best.dx), std::abs(r.dy - best.dy)) <= 1) continue;
    if (++tried > 4) break;
    const Reading peak = climb(r, &best);
    if (peak.dx != best.dx || peak.dy != best.dy) {
      rival = peak;
      if (rival->ncc > best.ncc) std::swap(*rival, best);  // the strongest reading was not on the best peak
      break;
    }
  }
  link.ncc = best.ncc;
  link.margin = rival ? best.ncc - rival->ncc : 1;
  // A best match on the edge of the search may be the slope of a peak beyond it.
  const bool at_edge = std::abs(best.dx - ndx) == m || std::abs(best.dy - ndy) == m;
  // Sub-pixel: parabolas through the NCC of the neighbours.
  const double c = best.ncc;
  link.dx = static_cast<double>(best.dx) + ParabolaVertex(ncc(best.dx - 1, best.dy), c, ncc(best.dx + 1, best.dy));
  link.dy = static_cast<double>(best.dy) + ParabolaVertex(ncc(best.dx, best.dy - 1), c, ncc(best.dx, best.dy + 1));
  if (link.texture < o.min_texture) {
    link.reason = fmt::format("low texture (overlap standard deviation {:.2f})", link.texture);
  } else if (link.ncc < o.min_ncc) {
    link.reason = fmt::format("weak match (NCC {:.3f})", link.ncc);
  } else if (at_edge) {
    link.reason = fmt::format("best match at the edge of the search ({} px from the stage's offset): the stage's "
                              "error may be larger than the maximum shift",
                              std::max(std::abs(best.dx - ndx), std::abs(best.dy - ndy)));
  } else if (link.margin < o.min_margin) {
    link.reason = fmt::format("ambiguous: ({}, {}) matches almost as well (NCC {:.3f} vs {:.3f}); periodic pattern?",
                              rival->dx, rival->dy, rival->ncc, link.ncc);
  } else {
    link.reliable = true;
  }
  return link;
}

DepthOverlap DepthOverlapOf(int64_t aw, int64_t ah, int64_t bw, int64_t bh, double dx, double dy, bool sheared_x) {
  const int64_t rdx = std::llround(dx), rdy = std::llround(dy);
  DepthOverlap d;
  d.a = Intersect({0, 0, aw, ah}, {rdx, rdy, rdx + bw, rdy + bh});
  d.b = {d.a.x0 - rdx, d.a.y0 - rdy, d.a.x1 - rdx, d.a.y1 - rdy};
  d.along_x = !sheared_x && d.a.width() <= d.a.height();
  d.length = d.a.empty() ? 0 : d.along_x ? d.a.height() : d.a.width();
  d.residual = d.along_x ? dy - static_cast<double>(rdy) : dx - static_cast<double>(rdx);
  return d;
}

void ProjectSide(const ImageView& crop, bool along_x, std::span<uint16_t> row) {
  std::fill(row.begin(), row.end(), uint16_t{0});
  for (int64_t y = 0; y < crop.height; ++y) {
    const uint16_t* in = crop.data + y * (crop.stride ? crop.stride : crop.width);
    if (along_x) {
      row[static_cast<size_t>(y)] = *std::max_element(in, in + crop.width);
    } else {
      for (int64_t x = 0; x < crop.width; ++x) row[static_cast<size_t>(x)] = std::max(row[static_cast<size_t>(x)], in[x]);
    }
  }
}

void FillEmpty(std::span<uint16_t> image) {
  std::vector<uint16_t> data;
  data.reserve(image.size());
  for (uint16_t v : image) {
    if (v != 0) data.push_back(v);
  }
  if (data.empty() || data.size() == image.size()) return;
  std::nth_element(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(data.size() / 2), data.end());
  const uint16_t median = data[data.size() / 2];
  for (uint16_t& v : image) {
    if (v == 0) v = median;
  }
}

Status RegisterDepth(const ImageView& side_a, const ImageView& side_b, const DepthOverlap& overlap, double nominal_dz,
                     const RegisterOptions& options, Link& link) {
  link.nominal_dz = link.dz = nominal_dz;
  RegisterOptions o = options;
  o.min_overlap_px = std::min<int64_t>(o.min_overlap_px, side_a.width * std::max<int64_t>(1, side_a.height / 2));
  auto side = RegisterPair(side_a, side_b, overlap.residual, nominal_dz, o);
  if (!side.ok()) {
    link.reliable = false;
    link.reason = fmt::format("z: {}", side.status().message());
    return OkStatus();
  }
  link.dz = side->dy;
  link.ncc_z = side->ncc;
  if (!side->reliable && link.reliable) {
    link.reliable = false;
    link.reason = fmt::format("z: {}", side->reason);
  }
  return OkStatus();
}

}  // namespace tessera::stitch
