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
//
// Stacks (light-sheet tiles, offset in z as well) are registered in 3-D in two such steps:
// x and y on the maximum projections over z of the two windows, then z on side views of
// their overlap at that offset (DepthOverlapOf): each stack's overlap projected (maximum)
// along the overlap's shorter in-plane axis, one row per plane (ProjectSide), registered as
// an image whose second axis is z. Both steps are verified by NCC; the link is reliable
// when both are. Two 2-D correlations of projections cost a fraction of a 3-D one over the
// overlap volume, and the projections are made plane by plane, so memory is two windows
// of one plane block whatever the stacks' depth.
#pragma once

#include <cstdint>
#include <span>
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
  double dz = 0, nominal_dz = 0;  ///< stacks registered in 3-D: b's first plane in a's planes
  double ncc_z = -1;             ///< of the side views at the z offset (-1: not registered in z)
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

/// Where two stacks registered at (dx, dy) overlap, for their side views: the overlap at the
/// offset rounded to the pixel, in each tile's pixels; the in-plane axis projected away (the
/// shorter one); the length of the one kept and b's sub-pixel origin along it in a's crop.
struct DepthOverlap {
  Rect a, b;
  bool along_x = false;  ///< x is projected away (the overlap is narrower in x than in y)
  int64_t length = 0;
  double residual = 0;
};
/// `sheared_x`: deskewed stacks, whose data's extent changes along x from plane to plane, are
/// projected along y whatever the overlap's shape, so that a side view's sample holds data of
/// every voxel it projects or of none (FillEmpty), in both stacks alike.
DepthOverlap DepthOverlapOf(int64_t aw, int64_t ah, int64_t bw, int64_t bh, double dx, double dy,
                            bool sheared_x = false);

/// One plane's crop of the overlap (DepthOverlap::a or b) projected along `along_x` (the
/// maximum over x, or else over y) into `row` (the kept axis' length).
void ProjectSide(const ImageView& crop, bool along_x, std::span<uint16_t> row);

/// Sets the 0 samples of `image` (no data: outside a deskewed stack's sheared extent) to the
/// median of the others, so that where the data ends is no feature for the registration (the
/// wedges of two deskewed stacks line up at a z offset of their own, not the true one).
void FillEmpty(std::span<uint16_t> image);

/// Fills link's z from side views (a row per plane, ProjectSide) of a and b: registered with
/// b's origin near (residual, nominal_dz) within options.max_shift planes. The link stays
/// reliable only if the side views' registration is.
Status RegisterDepth(const ImageView& side_a, const ImageView& side_b, const DepthOverlap& overlap, double nominal_dz,
                     const RegisterOptions& options, Link& link);

/// NCC of a and b over their overlap with b's origin at (dx, dy) in a's pixels; -1 when they
/// overlap by fewer than `min_pixels`.
double Ncc(const ImageView& a, const ImageView& b, int64_t dx, int64_t dy, int64_t min_pixels = 1);

}  // namespace tessera::stitch
