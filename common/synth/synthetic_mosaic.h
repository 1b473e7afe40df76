// SyntheticMosaic: a realistic fluorescence mosaic for demos, tests and benchmarks.
//
// One scene in mosaic coordinates (cells as Gaussian blobs of varied size and brightness,
// different structures per channel, defocus away from the middle z plane; or, for light-sheet
// stacks, a 3-D scene whose planes the stack sections, optionally sheared as an oblique scan
// records it), seen by a
// camera at each tile's TRUE position: the nominal stage position plus a known,
// deterministic, sub-pixel error. Overlapping tiles therefore show the same content
// where they truly overlap, so a registration can recover the error. Each frame adds
// a camera offset, vignetting and shot + read noise, all deterministic.
//
//   synth::SyntheticOptions o;  o.cols = 4; o.rows = 3; o.channels = 2;
//   synth::SyntheticMosaic mosaic(o);
//   std::vector<uint8_t> frame(mosaic.plan().frame_bytes());
//   mosaic.RenderFrame({.t = 5, .c = 1, .z = 0}, frame);
#pragma once

#include <array>
#include <optional>
#include <cstdint>
#include <span>
#include <vector>

#include "common/deskew/deskew.h"
#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::synth {

struct SyntheticOptions {
  uint32_t cols = 4, rows = 3;          ///< grid of fields of view
  uint32_t width = 512, height = 512;   ///< tile size in pixels
  double overlap = 0.10;                ///< nominal overlap between neighbours, [0, 0.9)
  uint32_t channels = 2;                ///< 1..16
  uint32_t z_planes = 1;
  Dtype dtype = Dtype::kUint16;
  double position_error_px = 4.0;       ///< max |true - nominal| in x and in y
  uint64_t seed = 1;
  bool noise = true;                    ///< shot and read noise
  bool vignetting = true;               ///< illumination falling off towards the corners (Illumination)
  double background = 0;                ///< autofluorescence everywhere, in units of a cell's peak (0..1), under the illumination
  double gain_spread = 0;               ///< each tile's brightness times a known factor in [1 - s, 1 + s] (TrueGain), [0, 0.5]
  double stripes = 0;                   ///< light-sheet stripes: 1 row in 16 dimmed by up to this fraction from a column on, [0, 0.9]
  /// Light-sheet stacks: the planes of a tile are sections of one 3-D scene (cells as 3-D
  /// blobs), each tile offset by a known error in z too; otherwise z planes defocus one 2-D
  /// scene (a widefield z-stack).
  bool light_sheet = false;
  double z_error_planes = 2.0;          ///< max |true - nominal| in z, planes (light sheet)
  /// An oblique stage scan (implies light_sheet): raw frame k sees the scene's plane k shifted
  /// by the deskew's shift(k) along x, so that the deskew (common/deskew) recovers the scene.
  /// Frames are generated unrotated and unflipped; the camera pixel is pixel_size_um.
  std::optional<ObliqueScan> oblique;
  double pixel_size_um = 0.65;
};

/// INVALID_ARGUMENT naming the first bad option.
Status ValidateOptions(const SyntheticOptions& options);

class SyntheticMosaic {
 public:
  /// `options` must be valid (ValidateOptions).
  explicit SyntheticMosaic(const SyntheticOptions& options);

  /// Tiles row-major (t = row * cols + col), named "r{row:03}_c{col:03}", at nominal
  /// positions col * width * (1 - overlap), row * height * (1 - overlap).
  const ScanPlan& plan() const { return plan_; }

  /// The true (x, y) of tile t in mosaic pixels.
  std::array<double, 2> TruePosition(uint32_t t) const;
  /// Tile t's brightness factor (1 without gain_spread).
  double TrueGain(uint32_t t) const;
  /// The illumination at the centre of field pixel (x, y): 1 - 0.125 (fx^2 + fy^2), fx and fy
  /// running -1 to 1 across the field (1 without vignetting).
  double Illumination(uint32_t x, uint32_t y) const;
  /// The true z of tile t in planes (0 unless light_sheet).
  double TrueZ(uint32_t t) const { return true_z_[t]; }

  /// Renders frame `key` into `out` (plan().frame_bytes() bytes, native byte order).
  /// Deterministic across calls and runs; thread-safe.
  void RenderFrame(const FrameKey& key, std::span<uint8_t> out) const;

 private:
  struct Blob {
    float x, y, sigma, amplitude, z = 0;
  };
  SyntheticOptions options_;
  ScanPlan plan_;
  std::vector<std::array<double, 2>> true_positions_;
  std::vector<double> true_z_;
  double sigma_z_per_px_ = 1;  // a cell's depth in planes per pixel of its width
  std::optional<deskew::Geometry> shear_;  // an oblique scan's
  double cell_ = 64;  // side of the hashing grid that places blobs, in mosaic pixels
  void BlobsNear(uint32_t channel, double x0, double y0, double x1, double y1,
                 std::vector<Blob>& out) const;
  void BlobsNear3(uint32_t channel, double x0, double y0, double x1, double y1, double z, std::vector<Blob>& out) const;
};

}  // namespace tessera::synth
