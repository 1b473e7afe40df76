// Pyramid: the zoom levels of a field of view, and moving chunks in and out of images.
//
// Level L + 1 is the 2x2 mean of level L, rounded as (a + b + c + d + 2) >> 2. A level of
// odd width or height gets ceil(n / 2) pixels; its last column (row) is the mean of the
// last column (row) below with itself, i.e. the edge is replicated (docs/format.md). A volume
// view's level that halves z is the 2x2x2 mean, rounded as (sum + 4) >> 3, alike at its edges.
//
//   std::vector<uint8_t> half(pyramid::LevelBytes(plan.Level(1), plan.dtype));
//   pyramid::Downsample2x(frame, plan.Level(0), plan.dtype, half);
//   auto chunks = pyramid::EncodeLevels(key, frame, plan);   // levels 1.. as Blosc chunks
//   // or, from level 0's chunks one at a time, never assembling the frame:
//   pyramid::DownsampleChunk(chunk, plan.Level(0), plan.dtype, cy, cx, half);  // every chunk
//   auto same = pyramid::EncodeLevelsFrom(key, 1, half, plan);
//
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::pyramid {

/// Bytes of one whole level image (height x width elements).
size_t LevelBytes(const LevelShape& shape, Dtype dtype);

/// Halves `src` (src_shape.height x src_shape.width elements of `dtype`) into `dst`,
/// which holds ceil(h / 2) x ceil(w / 2) elements.
void Downsample2x(std::span<const uint8_t> src, const LevelShape& src_shape, Dtype dtype,
                  std::span<uint8_t> dst);

/// Halves two planes `a` and `b` (shape.height x shape.width each) into one plane of `dst`
/// (ceil(h / 2) x ceil(w / 2)): the 2 x 2 x 2 mean, rounded as (sum + 4) >> 3, edges
/// replicated as Downsample2x does; the last plane of an odd depth passes itself as `b`.
/// A volume view's level that halves z is made of these (LevelShape::z_shift).
void Downsample2x2x2(std::span<const uint8_t> a, std::span<const uint8_t> b, const LevelShape& shape, Dtype dtype,
                     std::span<uint8_t> dst);

/// Whether a level's chunks all start on even rows and columns, so that DownsampleChunk can
/// halve it chunk by chunk (even chunk edges, or a single chunk across).
bool HalvesByChunk(const LevelShape& shape);

/// Halves the in-image part of chunk (cy, cx) of a level of `shape` (chunk_y x chunk_x elements
/// of `dtype`) into its place in `half`, the whole next level: once every chunk is in, `half`
/// equals Downsample2x of the assembled level, without the level ever being assembled. Needs
/// HalvesByChunk(shape).
void DownsampleChunk(std::span<const uint8_t> chunk, const LevelShape& shape, Dtype dtype, uint32_t cy,
                     uint32_t cx, std::span<uint8_t> half);

/// Copies chunk (cy, cx) out of a level image into `chunk` (chunk_y x chunk_x elements);
/// the part beyond the image's edge is zero, as HDF5 stores edge chunks.
void ExtractChunk(std::span<const uint8_t> image, const LevelShape& shape, size_t elem,
                  uint32_t cy, uint32_t cx, std::span<uint8_t> chunk);

/// The inverse: copies the in-image part of `chunk` into `image`.
void InsertChunk(std::span<const uint8_t> chunk, const LevelShape& shape, size_t elem,
                 uint32_t cy, uint32_t cx, std::span<uint8_t> image);

/// One stored chunk: its key, its Blosc bytes and their xxHash64.
struct EncodedChunk {
  ChunkKey key;
  std::vector<uint8_t> blosc;
  uint64_t xxh64 = 0;
};

/// Levels 1 .. plan.level_count() - 1 of frame `key` from its level-0 pixels, each cut
/// into the level's chunks and compressed with the plan's codec. In level, then row-major
/// chunk order. INVALID_ARGUMENT when `level0` is not a whole frame.
Result<std::vector<EncodedChunk>> EncodeLevels(const FrameKey& key,
                                               std::span<const uint8_t> level0,
                                               const ScanPlan& plan);

/// The same from level `first` (>= 1) on, given that level's whole image (as DownsampleChunk
/// makes level 1 from level 0's chunks): levels first .. plan.level_count() - 1.
Result<std::vector<EncodedChunk>> EncodeLevelsFrom(const FrameKey& key, uint32_t first,
                                                   std::span<const uint8_t> image, const ScanPlan& plan);

}  // namespace tessera::pyramid
