// Zarr: a slide as OME-Zarr for the readers of the field (zarr-python, zarrita, Neuroglancer,
// TensorStore, napari): the metadata of its images in Zarr v2 / OME-Zarr 0.4 and Zarr v3 /
// OME-Zarr 0.5, and the parse of the keys readers ask for. The gateway serves them under
// /zarr/{id}/ and /zarr3/{id}/ (docs/protocol.md): a field of view's chunks are the stored
// HDF5 chunks byte for byte (a Blosc frame is a Zarr Blosc chunk), the mosaic's are composed.
//
//   zarr::Image field = zarr::FieldImage(plan, levels, positions[t], styles);
//   auto key = zarr::ParseKey(field, zarr::Version::kV2, "2/0/0/3/1");  // level 2, chunk c0 z0 y3 x1
//   if (key->kind == zarr::Key::kArray) body = zarr::ArrayMetadata(field, zarr::Version::kV2, key->level);
//
// Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"
#include "server/gateway/render.h"

namespace tessera::gateway::zarr {

enum class Version { kV2, kV3 };

/// One array of a multiscale image: axes c, z, y, x.
struct Array {
  std::array<uint64_t, 4> shape{};
  std::array<uint64_t, 4> chunks{};       ///< 1, planes, rows, columns per chunk
  std::array<double, 4> scale{};          ///< 1, then micrometres per voxel in z, y, x
  std::array<double, 4> translation{};    ///< 0, then the voxel (0, 0, 0)'s centre, micrometres
  std::array<uint64_t, 4> chunk_grid() const;  ///< chunks along each axis
};

/// A multiscale image: its levels from the finest down.
struct Image {
  Dtype dtype = Dtype::kUint16;
  codec::BloscParams codec;
  std::vector<Array> levels;
  std::vector<ChannelStyle> channels;  ///< names, colours and windows (OME "omero")
};

/// Field of view t as stored: the plan's levels, placed at `position` (x, y, z in level-0
/// pixels: the solved position once stitched).
Image FieldImage(const ScanPlan& plan, uint32_t level_count, const std::array<double, 3>& position,
                 std::vector<ChannelStyle> channels);

/// The mosaic at every level: `extents` holds each level's width and height (the end of its
/// tiles as the dealer places them there), `depth` its level-0 planes; chunks of the plan's
/// edges but at least 512 (one plane per chunk for a slide; a volume view's chunk_z planes).
Image MosaicImage(const ScanPlan& plan, const std::vector<std::array<uint64_t, 2>>& extents, int64_t depth,
                  std::vector<ChannelStyle> channels);

/// Each level's width and height of the mosaic of tiles at `positions` (level-0 pixels): the
/// end of the tiles as the dealer places them at that level (mosaic::MosaicIndex::Bounds).
std::vector<std::array<uint64_t, 2>> MosaicExtents(const ScanPlan& plan, const std::vector<std::array<double, 3>>& positions,
                                                   uint32_t level_count);

/// A box of the mosaic at one of its levels: x, y, width, height in the level's pixels, planes
/// [z_begin, z_end) of the level.
struct Box {
  uint64_t x = 0, y = 0, width = 1, height = 1, z_begin = 0, z_end = 1;
};

/// A box of the mosaic from slide level `first` down: image level k is slide level first + k,
/// cut to `boxes[k]` and placed where that box lies (the translation of its first voxel);
/// chunks as MosaicImage's.
Image RegionImage(const ScanPlan& plan, uint32_t first, const std::vector<Box>& boxes,
                  std::vector<ChannelStyle> channels);

/// The part of the array that chunk (c, z, y, x) covers: x, y, width, height, planes (the
/// chunk's part inside the array; edge chunks are partial).
Box ChunkBox(const Array& level, const std::array<uint64_t, 4>& chunk);

/// A chunk of `level` made from the pixels it covers: `pixels` holds `shape` (planes, rows,
/// columns: the chunk's part inside the array, native byte order), padded with zeros to the
/// chunk's shape and compressed as the image's chunks are (Blosc, one thread).
Result<std::vector<uint8_t>> EncodeChunk(const Image& image, uint32_t level, std::span<const uint8_t> pixels,
                                         const std::array<uint64_t, 3>& shape);

/// What a key (the path below an image's root) names.
struct Key {
  enum Kind {
    kGroup,        ///< .zgroup (v2) / zarr.json (v3) of the image
    kAttributes,   ///< .zattrs of the image (v2)
    kConsolidated, ///< .zmetadata (v2)
    kArray,        ///< {level}/.zarray (v2) / {level}/zarr.json (v3)
    kArrayAttributes,  ///< {level}/.zattrs (v2): {}
    kChunk,        ///< {level}/{c}/{z}/{y}/{x} (v2) / {level}/c/{c}/{z}/{y}/{x} (v3)
  } kind = kGroup;
  uint32_t level = 0;
  std::array<uint64_t, 4> chunk{};  ///< c, z, y, x chunk indices
};

/// NOT_FOUND for a key the image does not have (a level or chunk index beyond its grid
/// included), naming what it has.
Result<Key> ParseKey(const Image& image, Version version, std::string_view key);

/// The image group's metadata: v2 .zgroup or .zattrs (OME multiscales and omero), or v3 zarr.json
/// (the OME attributes, and every array's metadata inline as consolidated metadata).
std::string GroupMetadata(const Image& image, Version version, Key::Kind kind = Key::kGroup);
/// An array's: v2 .zarray, v3 zarr.json (Blosc, `dimension_names`).
std::string ArrayMetadata(const Image& image, Version version, uint32_t level);
/// v2 .zmetadata: the group's and every array's metadata in one document (zarr-python's
/// open_consolidated; HTTP has no listing).
std::string ConsolidatedV2(const Image& image);

/// The attributes of the `fields/` group: `{"tessera": {"fields": [{path, name, position_px}]}}`,
/// one per tile of `plan` (position_px null for a tile without a position), and `slide` when given.
std::string FieldsAttributes(const ScanPlan& plan, const std::vector<std::array<double, 3>>& positions,
                             std::string_view slide = "");

/// A plain group holding images (the `fields/` folder): v2 .zgroup, v3 zarr.json; `attributes`
/// is a JSON object.
std::string PlainGroup(Version version, std::string_view attributes = "{}");

}  // namespace tessera::gateway::zarr
