// TIFF tiles: grayscale uint8 / uint16, one page per z plane, classic TIFF or BigTIFF,
// read and written with libtiff.
//
//   auto info = imageio::ProbeTiff("tile_001.tif");   // shape without the pixels
//   auto image = imageio::ReadTiff("tile_001.tif");   // planes x height x width
//   auto same = imageio::DecodeTiff(bytes);           // the same, from memory
//
// Every file is taken as hostile: pages are at most kMaxFrameEdge a side and kMaxZPlanes
// deep, and the pixels at most kMaxTiffExpansion times the file's size (so a few bytes
// that claim a huge image are refused before any memory is set aside for it).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::imageio {

/// Decoded pixels may be at most this many times the file's bytes: far past what Deflate
/// or LZW reach on real images (~1000:1), far short of a crafted header's claims.
inline constexpr uint64_t kMaxTiffExpansion = uint64_t{1} << 16;

struct Image {
  uint32_t width = 0, height = 0, planes = 1;
  Dtype dtype = Dtype::kUint16;
  std::vector<uint8_t> pixels;  ///< planes x height x width, native byte order, row-major
  /// For writing: the planes are `channels` x planes / channels (channel slowest), and the
  /// voxel size in micrometres (x, y, z; 0: unknown). With a voxel size the file carries it as
  /// Fiji and tifffile read it (XResolution, YResolution, and an ImageJ description with the
  /// z spacing), and a several-channel stack is written as an ImageJ hyperstack (pages in
  /// z-major, channel-minor order).
  uint32_t channels = 1;
  std::array<double, 3> voxel_um{};
};

struct TiffInfo {
  uint32_t width = 0, height = 0, planes = 0;
  Dtype dtype = Dtype::kUint16;
};

/// Reads every page's header; all pages must share width, height and type (a z stack).
/// NOT_FOUND for a missing file, INVALID_ARGUMENT naming an unsupported property or a
/// bound passed, DATA_LOSS for a damaged file.
Result<TiffInfo> ProbeTiff(const std::string& path);

/// Reads every page: grayscale, 8 or 16 bits unsigned, strips or tiles, any compression
/// libtiff decodes. Errors as ProbeTiff's.
Result<Image> ReadTiff(const std::string& path);

/// A z stack read a page at a time (each page a plane): memory for one plane whatever the
/// stack's depth. Pages read in order cost one directory step each.
class TiffStack {
 public:
  /// ProbeTiff's checks and errors.
  static Result<TiffStack> Open(const std::string& path);
  TiffStack(TiffStack&&) noexcept;
  TiffStack& operator=(TiffStack&&) noexcept;
  ~TiffStack();

  const TiffInfo& info() const;
  /// Page z (height x width, native byte order) into `out`. INVALID_ARGUMENT for a page or a
  /// size that does not match, DATA_LOSS for a damaged page.
  Status ReadPlane(uint32_t z, std::span<uint8_t> out);

 private:
  struct Impl;
  explicit TiffStack(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// ReadTiff on a TIFF held in memory (`bytes` is only read during the call).
Result<Image> DecodeTiff(std::string_view bytes);

/// Writes a grayscale TIFF, one page per plane (BigTIFF when asked).
Status WriteTiff(const std::string& path, const Image& image, bool bigtiff = false);

/// The TIFF WriteTiff would write, as bytes (BigTIFF when over 4 GB).
Result<std::string> EncodeTiff(const Image& image);

}  // namespace tessera::imageio
