// FlatField: the illumination every field of view of a channel shares (vignetting, an uneven
// lamp or sheet), estimated from the fields themselves, and the correction that undoes it.
//
// The camera sees I(p) = F(p) S(p) + D: the scene S under the flat field F (mean 1 over the
// field) plus the dark level D (the camera's offset, which no illumination changes). Many
// fields of different content share F and D, so each field is binned into a grid of blocks
// (FlatFieldEstimator::Add, any zoom level of it), and then:
// - D is the intercept the blocks' low values (a low percentile over the fields) and their
//   typical values (a trimmed mean) share: both are F(p) s + D, for two values of s;
// - each field's blocks, less D, are divided by their own mean (so that bright and dim
//   fields, or fields of different exposure, count alike), and each block's trimmed mean
//   over the fields is F's shape up to the scene's average there;
// - a smooth surface (a polynomial in x and y, degree 4 by default) is fitted to the blocks
//   by least squares, blocks far off it dropped and the fit redone: illumination is smooth,
//   content left over in a block is not.
// Memory is one grid per field kept (at most `max_fields`, sampled evenly past that), not the
// fields. Chosen over BaSiC's low-rank + sparse decomposition (every field in memory, iterated
// SVDs) and spimstitch's per-pixel 95th percile + quadratic (a sparse sample's percentile is
// its brightest cells'): see docs/corrections.md.
//
//   FlatFieldEstimator e(2048, 2048);
//   for (each field t) e.Add(level3_view_of(t), 8);   // a 256 x 256 zoom level, 8 px each
//   Result<FlatField> f = e.Estimate();
//   ApplyFlatField(*f, window, x0, y0, 1, out);       // (I - D) / F + D, rounded
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status/status.h"
#include "common/stitch/register.h"

namespace tessera::correct {

struct FlatField {
  uint32_t width = 0, height = 0;  ///< the field of view's, level-0 px
  uint32_t grid_x = 0, grid_y = 0; ///< samples of F across and down (at the centres of equal cells)
  std::vector<float> gain;         ///< F at the samples, row-major, mean 1
  double dark = 0;                 ///< D, grey levels
  /// F at level-0 pixel (x, y) (its centre), interpolated between the samples.
  double At(double x, double y) const;
};

struct FlatFieldOptions {
  uint32_t blocks = 32;      ///< blocks across and down a field
  int degree = 4;            ///< of the fitted surface, 1..6
  double dark = -1;          ///< D if known (the camera's offset); -1: estimated
  uint32_t max_fields = 1024;
  double trim = 0.1;         ///< fraction of fields dropped at each end of a block's values
};

/// INVALID_ARGUMENT naming the option out of range.
Status CheckFlatFieldOptions(const FlatFieldOptions& options);
/// The same for a flat field that came from outside (a file, a message): sizes and values.
Status CheckFlatField(const FlatField& flat);

class FlatFieldEstimator {
 public:
  /// For fields of view of `width` x `height` level-0 pixels; `options` checked by the caller.
  FlatFieldEstimator(uint32_t width, uint32_t height, FlatFieldOptions options = {});
  /// One field, or a zoom level of it whose pixels each cover `scale` level-0 pixels
  /// across and down (1: level 0). Not thread-safe.
  void Add(const stitch::ImageView& field, uint32_t scale = 1);
  uint64_t fields() const { return seen_; }
  /// FAILED_PRECONDITION with fewer than 3 fields or a surface that cannot be fitted.
  Result<FlatField> Estimate() const;

 private:
  uint32_t width_, height_;
  FlatFieldOptions options_;
  uint64_t seen_ = 0;
  std::vector<std::vector<float>> grids_;  // per field kept: the blocks' means, row-major
};

/// `in` (a window of a field: its top-left at level-0 pixel (x0, y0), each pixel `scale`
/// level-0 pixels) corrected: (I - D) / (F gain) + D, rounded, clamped to `max_value`.
void ApplyFlatField(const FlatField& flat, const stitch::ImageView& in, int64_t x0, int64_t y0, uint32_t scale,
                    std::span<uint16_t> out, uint16_t max_value = 65535, double gain = 1);

}  // namespace tessera::correct
