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
#include <optional>
#include <string>
#include <vector>

#include "common/codec/codec.h"
#include "common/deskew/deskew.h"
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

/// One stored chunk: chunk (cy, cx) of frame `frame` at resolution `level`. In a plan whose
/// chunks hold several planes (chunk_z > 1), frame.z is the chunk's first plane among the
/// level's planes, a multiple of the level's chunk_z.
struct ChunkKey {
  FrameKey frame;
  uint32_t level = 0, cy = 0, cx = 0;
  bool operator==(const ChunkKey&) const = default;
};

/// A field of view's shape at one resolution level. Level 0 is the frame as acquired;
/// level L is ceil(width / 2^L) x ceil(height / 2^L), chunked like level 0 but never
/// larger than itself (docs/format.md). A volume view (chunk_z > 1) halves z too, where its
/// voxel is not already coarser in z than in x: level L then has ceil(z_planes / 2^z_shift)
/// planes, in chunks of chunk_z planes (never more than it has).
struct LevelShape {
  uint32_t width = 0, height = 0, chunk_y = 0, chunk_x = 0;
  uint32_t depth = 1, chunk_z = 1;  ///< the level's planes, planes per chunk
  uint32_t z_shift = 0;             ///< a level plane is 2^z_shift planes of level 0
  uint32_t chunks_y() const { return (height + chunk_y - 1) / chunk_y; }
  uint32_t chunks_x() const { return (width + chunk_x - 1) / chunk_x; }
  uint32_t chunks_z() const { return (depth + chunk_z - 1) / chunk_z; }
  uint32_t chunks_per_frame() const { return chunks_y() * chunks_x(); }
  /// Pixels of one plane of a chunk; a chunk holds chunk_z of them.
  size_t chunk_pixels() const { return size_t{chunk_y} * chunk_x; }
  size_t chunk_voxels() const { return chunk_pixels() * chunk_z; }
  size_t pixels() const { return size_t{width} * height; }
  /// How many level-0 planes one plane of the level spans (its voxel's z over level 0's).
  double z_scale() const { return static_cast<double>(uint64_t{1} << z_shift); }
  /// The level's planes under a level-0 extent of `planes` (a mosaic's, stacks placed in z).
  uint64_t DepthOf(uint64_t planes) const { return (planes + (uint64_t{1} << z_shift) - 1) >> z_shift; }
};

/// Levels stop once a field of view's longer edge is at most this many pixels.
inline constexpr uint32_t kCoarsestLevelEdge = 32;

// Bounds on a scan plan, which any client may send (Validate and PlanFromJson enforce them).
// Each is far above real microscopy (a light-sheet stack of thousands of 2048 x 2048 planes,
// a slide of 10,000 tiles) and keeps every size, index and product inside its integer type.
inline constexpr size_t kMaxPlanJsonBytes = size_t{128} << 20;  ///< the JSON document: 1M tiles at ~128 bytes
inline constexpr size_t kMaxJsonDepth = 64;                     ///< nesting of arrays/objects, header included
inline constexpr size_t kMaxHeaderJsonBytes = size_t{1} << 20;  ///< the free-form header, as JSON text
inline constexpr size_t kMaxNameBytes = 256;                    ///< plan, tile and channel names (UTF-8)
inline constexpr size_t kMaxTiles = 1'000'000;                  ///< fields of view: 100x a 10,000-tile slide
inline constexpr size_t kMaxChannels = 64;                      ///< channels per field of view
inline constexpr uint32_t kMaxZPlanes = 100'000;                ///< z planes per field of view
inline constexpr uint32_t kMaxFrameEdge = 65536;                ///< width and height of a frame, pixels
inline constexpr uint32_t kMaxChunkEdge = 8192;                 ///< chunk_y and chunk_x, pixels
inline constexpr uint32_t kMaxChunkPlanes = 256;                ///< chunk_z, planes
inline constexpr uint64_t kMaxChunkBytes = uint64_t{256} << 20;  ///< one chunk, uncompressed
inline constexpr uint64_t kMaxChunksPerFrame = 65536;           ///< e.g. a 65536^2 frame in 256^2 chunks
inline constexpr uint64_t kMaxFrames = 100'000'000;             ///< tiles x channels x z planes
inline constexpr uint64_t kMaxSlideBytes = uint64_t{1} << 50;   ///< level 0 uncompressed: 1 PiB
inline constexpr double kMaxTilePosition = 1 << 30;             ///< |x|, |y|, |z| in pixels: extents fit a uint32
inline constexpr double kMinPixelSizeUm = 1e-6;                 ///< 1 pm: below any electron microscope's
inline constexpr double kMaxPixelSizeUm = 1e6;                  ///< 1 m

/// A stage-scan oblique light-sheet acquisition (../shared/design/LIGHTSHEET.md): each tile's
/// planes are sheared and get a deskewed view. The camera pixel is pixel_size_um[0].
struct ObliqueScan {
  double angle_deg = 0;      ///< between the sheet and the stage plane, (0, 90)
  double stage_step_um = 0;  ///< stage travel between planes
  int scan_direction = 1;    ///< +1 or -1
  int rotate_90 = 0;         ///< quarter turns clockwise of each raw frame before the deskew
  bool flip_ud = false;      ///< then an up-down flip
  bool operator==(const ObliqueScan&) const = default;
};

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
  /// Planes per chunk: 1 for a scan (each frame stored as it arrives); more for a volume view
  /// written by Tessera (a fused volume), whose levels then halve z as well (LevelShape).
  uint32_t chunk_z = 1;
  codec::BloscParams codec;
  bool stitch = true;  ///< stitch by itself once the scan closes (when the stack has workers)
  std::optional<ObliqueScan> oblique;  ///< set for an oblique light-sheet scan

  /// INVALID_ARGUMENT naming the first thing wrong (the field, and the limit above when it
  /// is one): empty or out-of-bound sizes, counts whose products overflow, numbers that are
  /// not finite, over-long or non-UTF-8 names, a header that is not JSON.
  Status Validate() const;
  /// HDF5 needs chunks no larger than the frame: shrinks chunk_y/chunk_x/chunk_z to fit.
  /// The slide manager applies it when it opens a slide.
  void ClampChunks();

  uint64_t frame_count() const { return uint64_t{tiles.size()} * channels.size() * z_planes; }
  uint32_t chunks_y() const { return (height + chunk_y - 1) / chunk_y; }
  uint32_t chunks_x() const { return (width + chunk_x - 1) / chunk_x; }
  uint32_t chunks_per_frame() const { return chunks_y() * chunks_x(); }
  size_t chunk_bytes() const { return size_t{chunk_z} * chunk_y * chunk_x * DtypeSize(dtype); }
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

/// The deskew of an oblique scan's tiles (plan.oblique with the camera pixel pixel_size_um[0]).
deskew::Params DeskewParamsOf(const ScanPlan& plan);
/// The plan of an oblique scan's deskewed view (`ID:deskewed`, docs/format.md): the same
/// tiles at the same positions, channels, planes, type, chunks and codec, each frame the
/// deskewed plane (deskew::Geometry's width x height) and the voxel size of the deskew.
/// FAILED_PRECONDITION when the plan is not an oblique scan.
Result<ScanPlan> DeskewedPlanOf(const ScanPlan& raw);

/// OK when `name` may name a plan, tile or channel: at most kMaxNameBytes of UTF-8, no
/// control characters. Otherwise INVALID_ARGUMENT, `what` ("tile 3's name") naming it.
Status ValidateName(std::string_view what, std::string_view name);

/// OK when `v`, tile `tile`'s coordinate `axis` ("x") in pixels, is finite and within
/// kMaxTilePosition of the origin; INVALID_ARGUMENT naming the tile, the axis and the limit.
/// For every position from outside: a plan's stage positions, a stitch's solved ones.
Status CheckPosition(size_t tile, std::string_view axis, double v);

/// JSON form of a plan (the catalog keeps it; `tessera info --json` shows it).
std::string PlanToJson(const ScanPlan& plan);
/// The one door for plans from outside: the document is bounded (kMaxPlanJsonBytes,
/// kMaxJsonDepth), every field must have its JSON type (whole numbers in their range,
/// never cast from floats or negatives), and the plan must pass Validate.
/// INVALID_ARGUMENT naming the field otherwise.
Result<ScanPlan> PlanFromJson(std::string_view json);

/// A plan stored as JSON in a file (the manager hands one to each slide's proxy and writer).
Result<ScanPlan> ReadPlanFile(const std::string& path);
Status WritePlanFile(const std::string& path, const ScanPlan& plan);

}  // namespace tessera
