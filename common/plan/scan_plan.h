// ScanPlan: what a scanner will acquire, agreed before the first frame.
//
// A slide holds T fields of view (tiles) x C channels x Z planes; each frame is one
// (t, c, z) image of height x width pixels, split into chunk_y x chunk_x chunks
// (edge chunks padded with zeros to the full chunk shape, as HDF5 stores them).
//
//   ScanPlan plan;
//   plan.width = 2048; plan.height = 2048; plan.channels = {"DAPI", "GFP"};
//   plan.tiles.push_back({.name = "t0", .x = 0, .y = 0});
//   if (Status s = plan.Validate(); !s.ok()) ...
//   uint64_t f = plan.FrameIndex({.t = 0, .c = 1, .z = 0});
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/codec/codec.h"
#include "common/status/status.h"

namespace tessera {

enum class Dtype { kUint8, kUint16 };

/// 1 or 2.
size_t DtypeSize(Dtype d);
std::string_view DtypeName(Dtype d);  ///< "uint8" / "uint16"
Result<Dtype> ParseDtype(std::string_view name);

/// One field of view: its nominal stage position in level-0 pixels of the mosaic.
struct TilePlacement {
  std::string name;
  double x = 0, y = 0, z = 0;
  int row = -1, col = -1;  ///< grid indices when the plan has a grid, else -1
};

struct FrameKey {
  uint32_t t = 0, c = 0, z = 0;
  bool operator==(const FrameKey&) const = default;
};

/// One stored chunk: chunk (cy, cx) of frame `frame` at resolution `level`.
struct ChunkKey {
  FrameKey frame;
  uint32_t level = 0, cy = 0, cx = 0;
  bool operator==(const ChunkKey&) const = default;
};

/// A field of view's shape at one resolution level. Level 0 is the frame as acquired;
/// level L is ceil(width / 2^L) x ceil(height / 2^L), chunked like level 0 but never
/// larger than itself (docs/format.md).
struct LevelShape {
  uint32_t width = 0, height = 0, chunk_y = 0, chunk_x = 0;
  uint32_t chunks_y() const { return (height + chunk_y - 1) / chunk_y; }
  uint32_t chunks_x() const { return (width + chunk_x - 1) / chunk_x; }
  uint32_t chunks_per_frame() const { return chunks_y() * chunks_x(); }
  size_t chunk_pixels() const { return size_t{chunk_y} * chunk_x; }
  size_t pixels() const { return size_t{width} * height; }
};

/// Levels stop once a field of view's longer edge is at most this many pixels.
inline constexpr uint32_t kCoarsestLevelEdge = 32;

struct ScanPlan {
  std::string name;
  std::vector<TilePlacement> tiles;
  uint32_t width = 0, height = 0;
  std::vector<std::string> channels = {"ch0"};
  uint32_t z_planes = 1;
  Dtype dtype = Dtype::kUint16;
  std::array<double, 3> pixel_size_um = {1.0, 1.0, 1.0};  ///< x, y, z
  std::string header_json = "{}";                          ///< free-form, must parse as JSON
  uint32_t chunk_y = 512, chunk_x = 512;
  codec::BloscParams codec;
  bool stitch = true;  ///< stitch by itself once the scan closes (when the stack has workers)

  /// INVALID_ARGUMENT naming the first thing wrong.
  Status Validate() const;
  /// HDF5 needs chunks no larger than the frame: shrinks chunk_y/chunk_x to fit.
  /// The slide manager applies it when it opens a slide.
  void ClampChunks();

  uint64_t frame_count() const { return uint64_t{tiles.size()} * channels.size() * z_planes; }
  uint32_t chunks_y() const { return (height + chunk_y - 1) / chunk_y; }
  uint32_t chunks_x() const { return (width + chunk_x - 1) / chunk_x; }
  uint32_t chunks_per_frame() const { return chunks_y() * chunks_x(); }
  size_t chunk_bytes() const { return size_t{chunk_y} * chunk_x * DtypeSize(dtype); }
  size_t frame_bytes() const { return size_t{width} * height * DtypeSize(dtype); }

  /// Resolution levels stored per frame, level 0 included: halving until the longer edge
  /// is at most kCoarsestLevelEdge.
  uint32_t level_count() const;
  /// The shape of level `level` (< level_count()).
  LevelShape Level(uint32_t level) const;

  /// Frames are numbered in scan order: t slowest, then c, then z.
  uint64_t FrameIndex(const FrameKey& k) const {
    return (uint64_t{k.t} * channels.size() + k.c) * z_planes + k.z;
  }
  FrameKey KeyOf(uint64_t index) const;
  /// OUT_OF_RANGE when the key lies outside the plan.
  Status CheckKey(const FrameKey& k) const;
};

/// JSON form of a plan (the catalog keeps it; `tessera info --json` shows it).
std::string PlanToJson(const ScanPlan& plan);
Result<ScanPlan> PlanFromJson(std::string_view json);

/// A plan stored as JSON in a file (the manager hands one to each slide's proxy and writer).
Result<ScanPlan> ReadPlanFile(const std::string& path);
Status WritePlanFile(const std::string& path, const ScanPlan& plan);

}  // namespace tessera
