// Mosaic: where the fields of view of a slide lie, at every zoom level, and which stored
// chunks compose any box of the mosaic.
//
// A tile (field of view) of W x H level-0 pixels sits at level-0 position (x, y) (stage
// or solved, sub-pixel). At level L it is ceil(W / 2^L) x ceil(H / 2^L) pixels placed at
// (round(x / 2^L), round(y / 2^L)), round = floor(v + 0.5). Where tiles overlap, the
// higher tile index (the later acquired) is on top, so every pixel of the mosaic has one
// owner tile or none.
//
//   MosaicIndex index(positions, {.width = 2048, .height = 2048});
//   Box box = Intersect({0, 0, 4096, 4096}, index.Bounds(/*level=*/0));
//   for (const ChunkCopy& c : PlanRegion(index, 0, box, 512, 512)) ...read chunk, copy...
//
// Pure computation; a const MosaicIndex is safe to share between threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace tessera::mosaic {

/// [x, x + w) x [y, y + h) in one level's pixels.
struct Box {
  int64_t x = 0, y = 0, w = 0, h = 0;
  bool empty() const { return w <= 0 || h <= 0; }
  bool operator==(const Box&) const = default;
};

/// The common part of two boxes (empty if none).
Box Intersect(const Box& a, const Box& b);

struct TileGeometry {
  uint32_t width = 0, height = 0;  ///< level 0
};

/// A visible part of a tile, in absolute level pixels.
struct Piece {
  uint32_t tile = 0;
  Box box;
};

/// One copy from a stored chunk into a region: chunk (cy, cx) of `tile` at the level,
/// the rectangle (sx, sy, w, h) inside the chunk, and its place (dx, dy) in the region.
struct ChunkCopy {
  uint32_t tile = 0, cy = 0, cx = 0;
  uint32_t sx = 0, sy = 0, w = 0, h = 0;
  uint32_t dx = 0, dy = 0;
};

class MosaicIndex {
 public:
  /// `positions`: level-0 (x, y) of each tile's top-left corner; index = tile index.
  MosaicIndex(std::vector<std::array<double, 2>> positions, TileGeometry tile);
  ~MosaicIndex();
  MosaicIndex(MosaicIndex&&) noexcept;
  MosaicIndex& operator=(MosaicIndex&&) noexcept;

  size_t size() const;
  /// A tile's footprint at `level`.
  Box Footprint(uint32_t tile, int level) const;
  /// The bounding box of every tile at `level` (may start at negative coordinates).
  Box Bounds(int level) const;
  /// Tiles whose footprint at `level` intersects `box`, ascending. An R-tree query: the
  /// cost follows the tiles near the box, not the size of the mosaic.
  std::vector<uint32_t> Query(int level, const Box& box) const;
  /// The visible parts of `box`: disjoint rectangles that together cover exactly the part
  /// of the box some tile covers, each owned by the highest-index tile there.
  std::vector<Piece> Visible(int level, const Box& box) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The copies that compose `region` at `level` from chunks of chunk_h x chunk_w pixels
/// (counted from each tile's top-left; edge chunks partial). Copies never overlap; all
/// copies of one chunk are adjacent, ordered by tile, then chunk row, then column.
std::vector<ChunkCopy> PlanRegion(const MosaicIndex& index, int level, const Box& region,
                                  uint32_t chunk_h, uint32_t chunk_w);

}  // namespace tessera::mosaic
