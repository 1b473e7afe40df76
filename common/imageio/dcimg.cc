#include "common/imageio/dcimg.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "common/status/checked.h"

namespace tessera::imageio {
namespace {

constexpr uint32_t kOld = 0x7, kNew1 = 0x1000000, kNew2 = 0x2000000;
constexpr uint64_t kFileHeaderBytes = 0x48;
constexpr uint64_t kOldSessionHeaderBytes = 0x50, kNewSessionHeaderBytes = 0x80;
constexpr uint64_t kCropInfoAt = 712;          // new format: x0, xsize, y0, ysize (u16) after the session header
constexpr uint64_t kCamLinkFooterBytes = 32;   // progressive number, timestamp (2), 4 px (8 bytes), zeros (12)
constexpr uint64_t kCornerInFrameFooter = 12;  // the 8 bytes of the 4 px, after number and timestamp
constexpr uint64_t kSensorCornerRow = 1023;    // 0x1000000: the sensor's row whose 4 px are kept apart

uint32_t U32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t U64(const uint8_t* p) { return uint64_t{U32(p)} | uint64_t{U32(p + 4)} << 32; }
uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

Status Bad(std::string_view what) {
  return Error(StatusCode::kInvalidArgument, "not a DCIMG file Tessera understands: {}", what);
}

// OK when [offset, offset + n) lies within the file.
Status Inside(uint64_t offset, uint64_t n, uint64_t file_size, std::string_view what) {
  const auto end = CheckedSum({offset, n});
  if (!end || *end > file_size) {
    return Error(StatusCode::kDataLoss, "DCIMG {} at byte {} (+{}) lies beyond the file's {} bytes: is it truncated?",
                 what, offset, n, file_size);
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> ReadBytes(const ReadAt& read, uint64_t offset, uint64_t n, uint64_t file_size,
                                       std::string_view what) {
  TESSERA_RETURN_IF_ERROR(Inside(offset, n, file_size, what));
  std::vector<uint8_t> bytes(n);
  TESSERA_RETURN_IF_ERROR(read(offset, bytes));
  return bytes;
}

}  // namespace

Result<DcimgLayout> ParseDcimg(uint64_t file_size, const ReadAt& read) {
  TESSERA_ASSIGN_OR_RETURN(auto head, ReadBytes(read, 0, kFileHeaderBytes, file_size, "file header"));
  if (std::memcmp(head.data(), "DCIMG\0\0\0", 8) != 0) return Bad("it does not start with DCIMG");
  DcimgLayout l;
  l.version = U32(&head[0x08]);
  if (l.version != kOld && l.version != kNew1 && l.version != kNew2) {
    return Bad(fmt::format("format version 0x{:x} (known: 0x7, 0x1000000, 0x2000000)", l.version));
  }
  if (const uint32_t sessions = U32(&head[0x20]); sessions != 1) {
    return Bad(fmt::format("{} sessions (one is supported)", sessions));
  }
  const uint64_t session = U32(&head[0x28]);
  const bool old = l.version == kOld;
  TESSERA_ASSIGN_OR_RETURN(auto s, ReadBytes(read, session, old ? kOldSessionHeaderBytes : kNewSessionHeaderBytes,
                                             file_size, "session header"));
  uint32_t bytes_per_pixel = 0, bytes_per_image = 0, footer_bytes = 0;
  uint64_t offset_to_data = 0, session_data_size = 0;
  if (old) {
    l.frames = U32(&s[0x20]);
    bytes_per_pixel = U32(&s[0x24]);
    l.width = U32(&s[0x2C]);
    l.row_stride = U32(&s[0x30]);
    l.height = U32(&s[0x34]);
    bytes_per_image = U32(&s[0x38]);
    offset_to_data = U32(&s[0x44]);
    session_data_size = U64(&s[0x48]);
  } else {
    l.frames = U32(&s[0x3C]);
    bytes_per_pixel = U32(&s[0x40]);
    l.width = U32(&s[0x48]);
    l.height = U32(&s[0x4C]);
    l.row_stride = U32(&s[0x50]);
    bytes_per_image = U32(&s[0x54]);
    offset_to_data = U64(&s[0x60]);
    footer_bytes = U32(&s[0x7C]);
  }
  if (bytes_per_pixel != 1 && bytes_per_pixel != 2) {
    return Bad(fmt::format("{} bytes per pixel (1 or 2 are supported)", bytes_per_pixel));
  }
  l.dtype = bytes_per_pixel == 1 ? Dtype::kUint8 : Dtype::kUint16;
  if (l.width == 0 || l.height == 0 || l.width > kMaxFrameEdge || l.height > kMaxFrameEdge) {
    return Bad(fmt::format("frames of {}x{} pixels (1 to {} a side)", l.width, l.height, kMaxFrameEdge));
  }
  if (l.frames == 0 || l.frames > kMaxZPlanes) {
    return Bad(fmt::format("{} frames (1 to {})", l.frames, kMaxZPlanes));
  }
  if (l.row_stride < uint64_t{l.width} * bytes_per_pixel) {
    return Bad(fmt::format("{} bytes per row for {} pixels of {} bytes", l.row_stride, l.width, bytes_per_pixel));
  }
  if (bytes_per_image != l.row_stride * l.height) {
    return Bad(fmt::format("{} bytes per image for {} rows of {} bytes", bytes_per_image, l.height, l.row_stride));
  }
  const auto data_offset = CheckedSum({session, offset_to_data});
  if (!data_offset) return Bad("a data offset past 2^64");
  l.data_offset = *data_offset;
  l.frame_stride = uint64_t{bytes_per_image} + footer_bytes;
  const auto frames_bytes = CheckedProduct({l.frame_stride, l.frames});
  if (!frames_bytes) return Bad("frames past 2^64 bytes");
  // The last frame's footer holds its four pixels (new format): it must be there too.
  TESSERA_RETURN_IF_ERROR(Inside(l.data_offset, *frames_bytes, file_size, "frames"));

  const uint64_t corner_bytes = 8;  // four 16-bit pixels, or eight 8-bit ones
  if (old) {
    // The session footer follows the session's data; a second structure in it says where the
    // four pixels of every frame are, and in which row (as a byte offset into the frame).
    const auto footer = CheckedSum({session, session_data_size});
    if (!footer) return Bad("a session footer past 2^64");
    auto f = ReadBytes(read, *footer, 48, file_size, "session footer");
    if (!f.ok()) return l;  // no footer: frames without the fix
    const auto second = CheckedSum({*footer, U64(&(*f)[8])});
    if (!second) return Bad("a footer offset past 2^64");
    const uint32_t footer_size = U32(&(*f)[40]);
    TESSERA_ASSIGN_OR_RETURN(auto f2, ReadBytes(read, *second, 112, file_size, "second session footer"));
    const uint64_t offset_to_4px = U64(&f2[88]);
    const uint32_t in_frame = U32(&f2[100]);
    const auto expected = CheckedSum({corner_bytes * l.frames, offset_to_4px});
    const auto table = CheckedSum({*footer, offset_to_4px});
    if (expected && table && *expected == footer_size) {
      l.corner_offset = *table;
      TESSERA_RETURN_IF_ERROR(Inside(l.corner_offset, corner_bytes * l.frames, file_size, "four-pixel table"));
      l.corner_row = in_frame / l.row_stride;
      l.corner_stride = corner_bytes;
    }
  } else if (footer_bytes >= 512 || footer_bytes == kCamLinkFooterBytes) {
    // In each frame's footer, after its number and timestamp.
    l.corner_offset = l.data_offset + bytes_per_image + kCornerInFrameFooter;
    l.corner_stride = l.frame_stride;
    if (l.version == kNew2) {
      l.corner_row = 0;
    } else {
      TESSERA_ASSIGN_OR_RETURN(auto crop, ReadBytes(read, session + kCropInfoAt, 8, file_size, "crop information"));
      const uint64_t y0 = U16(&crop[4]), crop_height = U16(&crop[6]);
      const uint64_t binning = std::max<uint64_t>(1, crop_height / l.height);
      l.corner_row = y0 <= kSensorCornerRow ? static_cast<int64_t>((kSensorCornerRow - y0) / binning) : -1;
    }
  }
  if (l.corner_row >= static_cast<int64_t>(l.height)) l.corner_row = -1;  // cropped away
  return l;
}

Status ReadDcimgFrame(const DcimgLayout& l, uint32_t k, const ReadAt& read, std::span<uint8_t> out) {
  const size_t bpp = DtypeSize(l.dtype), row = size_t{l.width} * bpp;
  if (k >= l.frames || out.size() != row * l.height) {
    return Error(StatusCode::kInvalidArgument, "DCIMG frame {} of {} into {} bytes (frames are {}x{} x {} bytes)", k,
                 l.frames, out.size(), l.width, l.height, bpp);
  }
  const uint64_t at = l.data_offset + k * l.frame_stride;  // within the file: ParseDcimg checked
  if (l.row_stride == row) {
    TESSERA_RETURN_IF_ERROR(read(at, out));
  } else {
    std::vector<uint8_t> padded(l.row_stride * l.height);
    TESSERA_RETURN_IF_ERROR(read(at, padded));
    for (size_t y = 0; y < l.height; ++y) std::memcpy(out.data() + y * row, padded.data() + y * l.row_stride, row);
  }
  if (l.corner_row >= 0) {
    const size_t n = std::min<size_t>(8, row);
    TESSERA_RETURN_IF_ERROR(read(l.corner_offset + k * l.corner_stride,
                                 out.subspan(static_cast<size_t>(l.corner_row) * row, n)));
  }
  return OkStatus();
}

}  // namespace tessera::imageio
