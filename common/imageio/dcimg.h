// Hamamatsu DCIMG stacks, read natively: the layout documented by the open readers
// (lens-biophotonics/dcimg, python-microscopy, Bio-Formats) as summarised in
// ../shared/design/LIGHTSHEET.md. Little-endian; one session; versions 0x7 (old) and
// 0x1000000 / 0x2000000 (new). Rows may be padded (bytes per row is the row stride). Four
// pixels (8 bytes) of one row of each frame hold garbage; their true values are stored
// elsewhere (old: in the session footer; 0x1000000: in each frame's footer, for the sensor's
// row 1023; 0x2000000: row 0): ReadDcimgFrame puts them back.
//
//   auto layout = imageio::ParseDcimg(file_size, read_at);   // every offset checked
//   imageio::ReadDcimgFrame(*layout, k, read_at, plane);      // height x width, native order
//
// Every number in the file is taken as hostile: sizes are bounded (kMaxFrameEdge,
// kMaxZPlanes), every offset and product is checked against the file's size, and what the
// reader does not understand is INVALID_ARGUMENT naming it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::imageio {

/// Reads exactly out.size() bytes at `offset` of the file, or fails (DATA_LOSS for a short read).
using ReadAt = std::function<Status(uint64_t offset, std::span<uint8_t> out)>;

struct DcimgLayout {
  uint32_t version = 0;  ///< 0x7, 0x1000000 or 0x2000000
  uint32_t width = 0, height = 0, frames = 0;
  Dtype dtype = Dtype::kUint16;
  uint64_t data_offset = 0;   ///< frame 0's first row
  uint64_t frame_stride = 0;  ///< bytes from one frame to the next (image + frame footer)
  uint64_t row_stride = 0;    ///< bytes per row, padding included
  /// The four-pixel fix: row `corner_row` (-1: none) of frame k starts with the 8 bytes at
  /// corner_offset + k * corner_stride.
  int64_t corner_row = -1;
  uint64_t corner_offset = 0, corner_stride = 0;
};

/// The layout of a DCIMG file of `file_size` bytes. INVALID_ARGUMENT naming what is not a
/// DCIMG file or not understood (another version, several sessions, a pixel depth other than
/// 1 or 2 bytes, rows shorter than the width) or a bound passed; DATA_LOSS when a frame or
/// footer would lie beyond the file's end (a truncated file).
Result<DcimgLayout> ParseDcimg(uint64_t file_size, const ReadAt& read);

/// Frame k (height x width, rows unpadded, native byte order) into `out`, its four pixels
/// restored. INVALID_ARGUMENT for k or out's size not matching the layout.
Status ReadDcimgFrame(const DcimgLayout& layout, uint32_t k, const ReadAt& read, std::span<uint8_t> out);

}  // namespace tessera::imageio
