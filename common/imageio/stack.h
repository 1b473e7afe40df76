// StackReader: a z stack of one tile read a plane at a time, from a multi-page (Big)TIFF
// (each page a plane) or a Hamamatsu .dcimg file (dcimg.h), told apart by their first bytes.
// Memory holds one plane whatever the stack's depth.
//
//   auto stack = imageio::StackReader::Open("tile_000.dcimg");
//   std::vector<uint8_t> plane((*stack)->plane_bytes());
//   for (uint32_t z = 0; z < (*stack)->info().planes; ++z) (*stack)->ReadPlane(z, plane);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/imageio/tiff.h"
#include "common/status/status.h"

namespace tessera::imageio {

class StackReader {
 public:
  /// NOT_FOUND for a missing file; INVALID_ARGUMENT naming what is not understood (neither
  /// TIFF nor DCIMG, an unsupported property); DATA_LOSS for a damaged or truncated file.
  static Result<std::unique_ptr<StackReader>> Open(const std::string& path);
  virtual ~StackReader() = default;

  /// width, height, planes, dtype.
  virtual const TiffInfo& info() const = 0;
  size_t plane_bytes() const { return size_t{info().width} * info().height * DtypeSize(info().dtype); }
  /// Plane z (height x width, native byte order) into `out` (plane_bytes()).
  virtual Status ReadPlane(uint32_t z, std::span<uint8_t> out) = 0;
  /// "TIFF" or "DCIMG 0x1000000", for messages.
  virtual std::string format() const = 0;
};

}  // namespace tessera::imageio
