// Deskew of stage-scan oblique light-sheet stacks, in the convention of
// ../shared/design/LIGHTSHEET.md (binding: tests and users depend on it).
//
// The raw stack D[k][y][u] (plane k, camera row y, camera column u along the sheet's tilt)
// becomes O[k][y][x] by a shear of s = step * cos(theta) / p pixels per plane along x:
// x = u + shift(k), shift(k) = k * s (scan direction +1) or (K - 1 - k) * s (-1). Each output
// plane depends on its own raw plane only, so planes are deskewed as they land, in any order.
// Where s is whole the deskew is a copy (bit-exact); otherwise each voxel is the linear
// interpolation along x of the two raw samples around q = x - shift(k), rounded half up to
// the input's type, and 0 where q lies outside [0, U - 1]. Each raw frame may first be turned
// 90 degrees clockwise `rotate_90` times and then flipped up-down (Orient).
//
//   deskew::Params p{.angle_deg = 45, .stage_step_um = 1.414, .pixel_size_um = 1.0};
//   auto g = deskew::Plan(p, /*frame width*/ 2048, /*height*/ 256, /*planes*/ 5000);
//   std::vector<uint16_t> plane(size_t{g->height} * g->width);
//   deskew::DeskewPlane<uint16_t>(*g, k, oriented_raw_plane, plane);
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "common/status/status.h"

namespace tessera::deskew {

/// A shear, or a plane's shift, within this much of an integer is that integer (cos 60 degrees
/// is not exactly 0.5 in floating point): a whole shear makes the deskew a copy, and a plane
/// whose shift is whole keeps its edge voxels.
inline constexpr double kWholeShearTolerance = 1e-9;

struct Params {
  double angle_deg = 0;      ///< theta: between the sheet and the stage plane, (0, 90)
  double stage_step_um = 0;  ///< stage travel between planes
  double pixel_size_um = 0;  ///< camera pixel, in the sample
  int scan_direction = 1;    ///< +1 or -1
  int rotate_90 = 0;         ///< quarter turns clockwise of each raw frame, 0..3
  bool flip_ud = false;      ///< then an up-down flip
};

/// INVALID_ARGUMENT naming the parameter: finite, angle in (0, 90) degrees, step and pixel
/// size in [1e-6, 1e6] um, direction +-1, rotation 0..3.
Status Validate(const Params& p);

/// What a deskew of one stack makes.
struct Geometry {
  Params params;
  uint32_t raw_width = 0, raw_height = 0;  ///< U, Y: a raw frame once oriented
  uint32_t planes = 0;                     ///< K
  double shear = 0;                        ///< s, pixels per plane (an integer when `copy`)
  bool copy = false;                       ///< s is whole: every plane a shifted copy
  uint32_t width = 0, height = 0;          ///< X = U + ceil((K - 1) s), Y
  std::array<double, 3> voxel_um{};        ///< x p, y p, between planes step * sin(theta)

  /// shift(k), in pixels along x (whole within kWholeShearTolerance is whole).
  double Shift(uint32_t k) const;
};

/// The geometry of deskewing `planes` raw frames of `frame_width` x `frame_height` (as the
/// camera gives them, before Orient). INVALID_ARGUMENT for bad parameters, and OUT_OF_RANGE
/// when the deskewed plane would be wider than 2^20 pixels.
Result<Geometry> Plan(const Params& p, uint32_t frame_width, uint32_t frame_height, uint32_t planes);

/// The raw frame (`height` rows of `width`) turned and flipped as `p` asks, into `out`
/// (raw_height x raw_width of the geometry). INVALID_ARGUMENT when a size does not match.
template <typename T>
Status Orient(const Params& p, std::span<const T> frame, uint32_t width, uint32_t height, std::span<T> out);

/// Deskewed plane k (height x width of `g`) from raw plane k once oriented (raw_height x
/// raw_width). INVALID_ARGUMENT when a size does not match or k is not a plane of `g`.
template <typename T>
Status DeskewPlane(const Geometry& g, uint32_t k, std::span<const T> oriented, std::span<T> out);

}  // namespace tessera::deskew
