// TIFF tiles: grayscale uint8 / uint16, one page per z plane, classic TIFF or BigTIFF,
// read and written with libtiff.
//
//   auto info = imageio::ProbeTiff("tile_001.tif");   // shape without the pixels
//   auto image = imageio::ReadTiff("tile_001.tif");   // planes x height x width
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::imageio {

struct Image {
  uint32_t width = 0, height = 0, planes = 1;
  Dtype dtype = Dtype::kUint16;
  std::vector<uint8_t> pixels;  ///< planes x height x width, native byte order, row-major
};

struct TiffInfo {
  uint32_t width = 0, height = 0, planes = 0;
  Dtype dtype = Dtype::kUint16;
};

/// Reads every page's header; all pages must share width, height and type (a z stack).
/// NOT_FOUND for a missing file, INVALID_ARGUMENT naming an unsupported property,
/// DATA_LOSS for a damaged file.
Result<TiffInfo> ProbeTiff(const std::string& path);

/// Reads every page: grayscale, 8 or 16 bits unsigned, strips or tiles, any compression
/// libtiff decodes.
Result<Image> ReadTiff(const std::string& path);

/// Writes a grayscale TIFF, one page per plane (BigTIFF when asked).
Status WriteTiff(const std::string& path, const Image& image, bool bigtiff = false);

/// The TIFF WriteTiff would write, as bytes (BigTIFF when over 4 GB).
Result<std::string> EncodeTiff(const Image& image);

}  // namespace tessera::imageio
