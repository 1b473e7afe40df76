// Wavelets: PyWavelets' discrete wavelet transform in 2-D, for destriping (destripe.h).
//
// The decimated transform in PyWavelets' "symmetric" mode (the signal mirrored about its
// edges, the edge sample repeated), so that its coefficients are PyWavelets' to rounding:
// along y first, then x; detail bands cH (detail along y), cV (along x), cD (both), as
// `pywt.wavedec2(..., mode='symmetric')` returns them; reconstruction trims an approximation
// one sample larger than the details below it, as `pywt.waverec2` does.
//
//   auto w = WaveletNamed("db3");
//   Decomposition d = Decompose(std::move(image), *w, MaxLevel(2048, w->dec_lo.size()));
//   ... filter d.details[k].h ...
//   Plane back = Reconstruct(std::move(d), *w);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/status/status.h"

namespace tessera::correct::internal {

struct Wavelet {
  std::vector<double> dec_lo, dec_hi, rec_lo, rec_hi;
};

/// haar, db1-db10, sym2-sym10, coif1-coif5; INVALID_ARGUMENT for any other name.
Result<Wavelet> WaveletNamed(std::string_view name);
/// The index of sample i of a signal of n samples mirrored about its edges, the edge sample
/// repeated (PyWavelets' "symmetric", scipy.ndimage's "reflect").
inline int64_t Mirror(int64_t i, int64_t n) {
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

/// pywt.dwt_max_level: the levels a signal of `length` samples allows.
int MaxLevel(int64_t length, size_t filter_length);

/// Large buffers kept per thread between planes (up to kPoolBytes), so that destriping plane
/// after plane faults no fresh pages in (a 2048 x 2048 plane's transform holds ~10 such arrays).
inline constexpr size_t kPoolBytes = size_t{512} << 20;
void* PoolAllocate(size_t bytes);
void PoolFree(void* p, size_t bytes);
template <typename T>
struct Pooled {
  using value_type = T;
  Pooled() = default;
  template <typename U>
  Pooled(const Pooled<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(PoolAllocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { PoolFree(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const Pooled<U>&) const { return true; }
};

/// `fn(begin, end)` over [0, n) split across the machine's cores (the caller's thread one of them).
void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

/// A row-major 2-D array of doubles.
struct Plane {
  int64_t width = 0, height = 0;
  std::vector<double, Pooled<double>> v;
  Plane() = default;
  Plane(int64_t w, int64_t h) : width(w), height(h), v(static_cast<size_t>(w * h), 0.0) {}
  double* row(int64_t y) { return v.data() + y * width; }
  const double* row(int64_t y) const { return v.data() + y * width; }
};

struct Bands {
  Plane h, v, d;  ///< pywt's (cH, cV, cD)
};

struct Decomposition {
  Plane approx;                ///< the coarsest approximation
  std::vector<Bands> details;  ///< coarsest first, as pywt.wavedec2 lists them
};

/// `levels` >= 1 levels of the 2-D transform of `image`.
Decomposition Decompose(Plane image, const Wavelet& w, int levels);
/// The inverse: an image of the size the finest details imply (even sizes come back as they were).
Plane Reconstruct(Decomposition d, const Wavelet& w);

}  // namespace tessera::correct::internal
