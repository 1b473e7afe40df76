// Register: the true offset between two overlapping fields of view.
//
// Phase correlation on the overlap the stage positions predict, widened by the stage's
// error: both crops windowed (Hann) and the cross-power spectrum whitened (FFTW). The
// strongest peaks of the correlation surface, each with its wrap-around readings, are
// verified by normalised cross-correlation (NCC) over the whole overlap of the full tiles;
// the best one within `max_shift` of the stage's offset wins and is refined to sub-pixel by
// a parabola through its neighbours' NCC. A link reports how reliable it is: its NCC, how
// much better it is than the best other reading (a periodic pattern has several), and how
// much texture the overlap holds.
//
//   ImageView a{pixels_a, 2048, 2048}, b{pixels_b, 2048, 2048};
//   auto link = RegisterPair(a, b, /*nominal dx, dy (b's origin in a's pixels)=*/1843, 0, {});
//   if (link->reliable) use(link->dx, link->dy);
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "common/status/status.h"

namespace tessera::stitch {

/// A 2-D uint16 image (one plane of a tile), row-major with `stride` samples between rows.
struct ImageView {
  const uint16_t* data = nullptr;
  int64_t width = 0, height = 0;
  int64_t stride = 0;  ///< 0: width
  uint16_t at(int64_t x, int64_t y) const { return data[y * (stride ? stride : width) + x]; }
};

struct RegisterOptions {
  int max_shift = 20;          ///< pixels: the stage's error; no offset further from the nominal one is taken
  int peaks = 8;               ///< correlation peaks verified by NCC
  double min_ncc = 0.3;        ///< below: not reliable
  double min_margin = 0.02;    ///< the best reading's NCC must beat every other distinct one by this
  double min_texture = 1.0;    ///< the overlap's standard deviation, raw units, below which nothing can be seen
  int64_t min_overlap_px = 64; ///< readings overlapping less than this many pixels are not considered
};

struct Link {
  double dx = 0, dy = 0;         ///< b's origin in a's pixels, sub-pixel
  double nominal_dx = 0, nominal_dy = 0;
  double ncc = -1;               ///< of the best reading, at its integer offset
  double margin = 0;             ///< its NCC minus the best other distinct reading's (1 if none)
  double texture = 0;            ///< standard deviation of a's pixels in the overlap
  bool reliable = false;
  std::string reason;            ///< why not reliable ("low texture", "ambiguous: ...", ...)
};

/// [x0, x1) x [y0, y1) in an image's pixels.
struct Rect {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  int64_t width() const { return x1 - x0; }
  int64_t height() const { return y1 - y0; }
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};

/// The parts of a (aw x ah) and b (bw x bh), each in its own pixels, that can overlap when
/// b's origin lies within max_shift of (nominal_dx, nominal_dy) in a's pixels: all that
/// RegisterPair reads (a worker fetches only these). Empty when they cannot overlap.
std::pair<Rect, Rect> OverlapWindows(int64_t aw, int64_t ah, int64_t bw, int64_t bh, double nominal_dx,
                                     double nominal_dy, int max_shift);

/// Registers b against a. INVALID_ARGUMENT when the tiles cannot overlap at any offset within
/// max_shift of the nominal one.
Result<Link> RegisterPair(const ImageView& a, const ImageView& b, double nominal_dx, double nominal_dy,
                          const RegisterOptions& options);

/// NCC of a and b over their overlap with b's origin at (dx, dy) in a's pixels; -1 when they
/// overlap by fewer than `min_pixels`.
double Ncc(const ImageView& a, const ImageView& b, int64_t dx, int64_t dy, int64_t min_pixels = 1);

}  // namespace tessera::stitch
