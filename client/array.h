// Array: a typed N-d block of pixels read from a slide, with where it came from.
//
//   auto a = client.ReadRegion({.slide = "s000001", .level = 2, .x = 0, .y = 0,
//                               .width = 1024, .height = 1024});
//   auto px = a->values<uint16_t>();            // C x Z x Y x X, row-major
//   uint16_t v = px[a->index(/*c=*/0, /*z=*/0, /*y=*/10, /*x=*/20)];
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/plan/scan_plan.h"

namespace tessera {

struct Array {
  Dtype dtype = Dtype::kUint16;
  std::array<int64_t, 4> shape{};      ///< channels, z planes, height, width
  int64_t x = 0, y = 0;                ///< top-left in the level's pixels: of the mosaic (a region), of the tile (a tile)
  uint32_t level = 0;
  std::array<double, 3> pixel_size_um{};  ///< x, y, z at this level
  std::vector<uint32_t> channels;      ///< the plan's channel index of each channel plane
  uint32_t z_begin = 0;                ///< the first z plane
  bool clipped = false;                ///< the request reached outside the mosaic: this is the part inside
  uint64_t missing_chunks = 0;         ///< chunks not stored yet (a live slide): their pixels are 0
  uint64_t chunks_read = 0;            ///< stored chunks fetched and decoded to make this
  bool local = false;                  ///< read from the slide's file on this host, not through the dealer
  std::vector<uint8_t> data;           ///< native byte order, row-major

  size_t elements() const { return static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]); }
  size_t index(int64_t c, int64_t z, int64_t y, int64_t x) const {
    return static_cast<size_t>(((c * shape[1] + z) * shape[2] + y) * shape[3] + x);
  }
  /// The pixels as `T` (uint8_t or uint16_t, matching `dtype`).
  template <typename T>
  std::span<const T> values() const {
    assert(sizeof(T) == DtypeSize(dtype));
    return {reinterpret_cast<const T*>(data.data()), elements()};
  }
};

/// A box of the mosaic at one level; channels and z planes to read.
struct RegionRequest {
  std::string slide;
  uint32_t level = 0;
  int64_t x = 0, y = 0, width = 0, height = 0;  ///< in the level's pixels
  std::vector<uint32_t> channels;               ///< empty: every channel
  uint32_t z_begin = 0, z_end = 0;              ///< planes [z_begin, z_end); z_end 0: to the last
  bool corrected = false;  ///< each field's pixels with the slide's corrections (flat field, tile gains) applied
  // (planes of the level too: a volume view's levels halve z where its voxel allows, LevelShape)
};

/// A stored field of view at one level, or a window of it: a viewer's 512x512 tile aligned
/// to the slide's chunks reads exactly one stored chunk per plane.
struct TileRequest {
  std::string slide;
  uint32_t tile = 0;
  uint32_t level = 0;
  std::vector<uint32_t> channels;
  uint32_t z_begin = 0, z_end = 0;
  int64_t x = 0, y = 0, width = 0, height = 0;  ///< window in the tile's pixels at `level`; width 0: all of it
  bool corrected = false;  ///< the slide's corrections applied (flat field, tile gains); none stored: the raw values
};

}  // namespace tessera
