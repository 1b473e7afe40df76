// OME-TIFF: a pyramidal, tiled OME-TIFF written plane by plane, tile row by tile row, for the
// readers of the field (tifffile, Bio-Formats and the tools on it: Fiji, QuPath, OMERO).
//
//   OmeTiffLayout layout{.sizes = {{20000, 15000}, {10000, 7500}, ...}, .channels = 2, ...};
//   auto w = imageio::OmeTiffWriter::Create("slide.ome.tif", layout);
//   while (auto want = w->Next()) {            // plane, level and box of pixels wanted next
//     read want->width x want->height pixels of plane want->plane at level want->level ...
//     w->Write(pixels);
//   }
//   w->Close();
//
// The file, as the OME-TIFF specification's pyramids are: one main IFD per plane in XYCZT order
// (channel fastest), the full resolution, each with SubIFDs holding its reduced resolutions
// (NewSubfileType 1), the OME-XML in the first IFD's ImageDescription (sizes, physical sizes in
// micrometres, channel names and colours, TiffData). Tiles of `tile` x `tile` pixels, Deflate
// with the horizontal predictor (lossless; what every TIFF reader decodes), compressed on every
// core; BigTIFF when the pixels exceed 2 GiB. Memory: one batch of tiles, whatever the image's
// size. Not thread-safe: one writer per thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::imageio {

struct OmeChannel {
  std::string name;
  uint8_t r = 255, g = 255, b = 255;
};

struct OmeTiffLayout {
  /// Width and height of the full resolution, then of each reduced one (at most kMaxFrameEdge
  /// * 64 a side, each no larger than the one before).
  std::vector<std::array<uint32_t, 2>> sizes;
  uint32_t planes = 1;  ///< z planes
  Dtype dtype = Dtype::kUint16;
  std::vector<OmeChannel> channels = {OmeChannel{}};
  std::array<double, 3> voxel_um{};  ///< x, y, z of the full resolution (0: unknown, left out)
  std::string name;                  ///< the OME Image's name
  uint32_t tile = 512;               ///< a multiple of 16
  uint32_t batch_tiles = 16;         ///< tiles asked for at once (one tile row, at most this wide)
};

class OmeTiffWriter {
 public:
  /// INVALID_ARGUMENT for a layout out of bounds (naming it); the file's errors otherwise.
  static Result<OmeTiffWriter> Create(const std::string& path, OmeTiffLayout layout);
  OmeTiffWriter(OmeTiffWriter&&) noexcept;
  OmeTiffWriter& operator=(OmeTiffWriter&&) noexcept;
  ~OmeTiffWriter();  ///< an unclosed file is left incomplete

  /// What Write takes next, in file order: every plane (channel fastest, then z) at its full
  /// resolution then each reduced one, each image tile row by tile row, left to right.
  struct Want {
    uint32_t channel = 0, z = 0, level = 0;  ///< level: 0 the full resolution, 1.. the reduced
    uint32_t x = 0, y = 0, width = 0, height = 0;  ///< in that level's pixels
  };
  /// nullopt when every pixel is written.
  std::optional<Want> Next() const;
  /// The pixels of Next()'s box: height x width, row-major, native byte order.
  Status Write(std::span<const uint8_t> pixels);
  /// Writes the last directory and closes; FAILED_PRECONDITION when Next() still wants pixels.
  Status Close();

  /// Bytes of tiles written so far (compressed), and of pixels taken.
  uint64_t bytes_written() const;
  uint64_t pixel_bytes() const;
  /// Tiles in the whole file, and written so far.
  uint64_t tiles_total() const;
  uint64_t tiles_done() const;

 private:
  struct Impl;
  explicit OmeTiffWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The OME-XML of `layout` (the first IFD's ImageDescription).
std::string OmeXml(const OmeTiffLayout& layout);

}  // namespace tessera::imageio
