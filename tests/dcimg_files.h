// DCIMG files made from the layout the open readers document (../shared/design/LIGHTSHEET.md),
// for tests: versions 0x7, 0x1000000 and 0x2000000, rows padded, the four pixels of one row
// garbage in the frame and true where each version keeps them. Pixel (x, y) of frame k is
// Truth(k, y, x).
//
//   const std::string bytes = testing::Build({.version = 0x1000000, .width = 64, .height = 32});
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera::testing {

inline constexpr uint16_t kGarbage = 0xDEAD;

inline void Put32(std::string& b, size_t at, uint32_t v) {
  if (b.size() < at + 4) b.resize(at + 4);
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
}
inline void Put64(std::string& b, size_t at, uint64_t v) {
  Put32(b, at, static_cast<uint32_t>(v));
  Put32(b, at + 4, static_cast<uint32_t>(v >> 32));
}
inline void Put16(std::string& b, size_t at, uint16_t v) {
  if (b.size() < at + 2) b.resize(at + 2);
  b[at] = static_cast<char>(v);
  b[at + 1] = static_cast<char>(v >> 8);
}

inline uint16_t Truth(uint32_t k, uint32_t y, uint32_t x) { return static_cast<uint16_t>(k * 1000 + y * 37 + x); }

struct Spec {
  uint32_t version = 0x7;
  uint32_t width = 9, height = 5, frames = 3;
  uint32_t row_pad = 6;     // bytes after each row
  uint16_t y0 = 1020;       // 0x1000000: the crop's first sensor row (the corner row is 1023 - y0)
  uint32_t corner_row = 1;  // 0x7: the row the footer names
};

// The row whose first four pixels each version keeps apart.
inline uint32_t CornerRow(const Spec& s) {
  return s.version == 0x7 ? s.corner_row : s.version == 0x2000000 ? 0 : 1023u - s.y0;
}

inline std::string Build(const Spec& s) {
  const uint32_t bpr = s.width * 2 + s.row_pad, bpi = bpr * s.height;
  const size_t S = 0xA0;  // the session header
  std::string b(S, '\0');
  std::memcpy(b.data(), "DCIMG\0\0\0", 8);
  Put32(b, 0x08, s.version);
  Put32(b, 0x20, 1);
  Put32(b, 0x24, s.frames);
  Put32(b, 0x28, static_cast<uint32_t>(S));
  const bool old = s.version == 0x7;
  const uint64_t to_data = old ? 0x100 : 0x400;
  const uint32_t footer = old ? 0 : 32;
  if (old) {
    Put32(b, S + 0x20, s.frames);
    Put32(b, S + 0x24, 2);
    Put32(b, S + 0x2C, s.width);
    Put32(b, S + 0x30, bpr);
    Put32(b, S + 0x34, s.height);
    Put32(b, S + 0x38, bpi);
    Put32(b, S + 0x44, static_cast<uint32_t>(to_data));
    Put64(b, S + 0x48, to_data + uint64_t{bpi} * s.frames);
  } else {
    Put32(b, S + 0x3C, s.frames);
    Put32(b, S + 0x40, 2);
    Put32(b, S + 0x48, s.width);
    Put32(b, S + 0x4C, s.height);
    Put32(b, S + 0x50, bpr);
    Put32(b, S + 0x54, bpi);
    Put64(b, S + 0x60, to_data);
    Put32(b, S + 0x7C, footer);
    Put16(b, S + 712, 0);
    Put16(b, S + 714, static_cast<uint16_t>(s.width));
    Put16(b, S + 716, s.y0);
    Put16(b, S + 718, static_cast<uint16_t>(s.height));
  }
  const uint32_t corner = CornerRow(s);
  for (uint32_t k = 0; k < s.frames; ++k) {
    const size_t frame = S + to_data + size_t{k} * (bpi + footer);
    for (uint32_t y = 0; y < s.height; ++y) {
      for (uint32_t x = 0; x < s.width; ++x) {
        Put16(b, frame + y * bpr + x * 2, y == corner && x < 4 ? kGarbage : Truth(k, y, x));
      }
      for (uint32_t p = 0; p < s.row_pad; ++p) b.resize(std::max(b.size(), frame + y * bpr + s.width * 2 + p + 1), 'P');
    }
    if (!old) {  // the frame's footer: number, timestamp, the four true pixels, zeros
      Put32(b, frame + bpi, k);
      for (uint32_t x = 0; x < 4; ++x) Put16(b, frame + bpi + 12 + 2 * x, Truth(k, corner, x));
      Put32(b, frame + bpi + footer - 4, 0);
    }
  }
  if (old) {  // the session footer, its second structure and the four-pixel table
    const size_t F = b.size(), second = 64, table = 64 + 112;
    Put32(b, F, 0x7);
    Put64(b, F + 8, second);
    Put32(b, F + 40, static_cast<uint32_t>(table + 8 * s.frames));
    Put64(b, F + second + 88, table);
    Put32(b, F + second + 100, corner * bpr);
    for (uint32_t k = 0; k < s.frames; ++k) {
      for (uint32_t x = 0; x < 4; ++x) Put16(b, F + table + 8 * k + 2 * x, Truth(k, corner, x));
    }
  }
  Put64(b, 0x30, b.size());
  Put64(b, 0x40, b.size());
  return b;
}

}  // namespace tessera::testing
