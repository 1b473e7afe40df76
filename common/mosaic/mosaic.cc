#include "common/mosaic/mosaic.h"

#include <boost/geometry.hpp>
#include <boost/geometry/index/rtree.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace tessera::mosaic {
namespace {

namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;
using Point = bg::model::point<double, 2, bg::cs::cartesian>;
using RBox = bg::model::box<Point>;
using Value = std::pair<RBox, uint32_t>;

int64_t Scaled(double v, int level) { return static_cast<int64_t>(std::floor(std::ldexp(v, -level) + 0.5)); }

int64_t Ceil(uint32_t n, int level) { return (int64_t{n} + (int64_t{1} << level) - 1) >> level; }

// a minus b, as up to four disjoint boxes appended to `out`.
void Subtract(const Box& a, const Box& b, std::vector<Box>& out) {
  const Box i = Intersect(a, b);
  if (i.empty()) {
    out.push_back(a);
    return;
  }
  if (i.y > a.y) out.push_back({a.x, a.y, a.w, i.y - a.y});                              // above
  if (i.y + i.h < a.y + a.h) out.push_back({a.x, i.y + i.h, a.w, a.y + a.h - i.y - i.h});  // below
  if (i.x > a.x) out.push_back({a.x, i.y, i.x - a.x, i.h});                              // left
  if (i.x + i.w < a.x + a.w) out.push_back({i.x + i.w, i.y, a.x + a.w - i.x - i.w, i.h});  // right
}

}  // namespace

Box Intersect(const Box& a, const Box& b) {
  const int64_t x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int64_t x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  if (x1 <= x0 || y1 <= y0) return {};
  return {x0, y0, x1 - x0, y1 - y0};
}

struct MosaicIndex::Impl {
  std::vector<std::array<double, 2>> positions;
  TileGeometry tile;
  bgi::rtree<Value, bgi::rstar<16>> rtree;
  double min_x = 0, min_y = 0, max_x = 0, max_y = 0;  // of the level-0 positions
};

MosaicIndex::MosaicIndex(std::vector<std::array<double, 2>> positions, TileGeometry tile)
    : impl_(std::make_unique<Impl>()) {
  std::vector<Value> values;
  values.reserve(positions.size());
  for (uint32_t i = 0; i < positions.size(); ++i) {
    const auto [x, y] = positions[i];
    values.emplace_back(RBox(Point(x, y), Point(x + tile.width, y + tile.height)), i);
  }
  if (!positions.empty()) {
    impl_->min_x = impl_->max_x = positions[0][0];
    impl_->min_y = impl_->max_y = positions[0][1];
    for (const auto& [x, y] : positions) {
      impl_->min_x = std::min(impl_->min_x, x), impl_->max_x = std::max(impl_->max_x, x);
      impl_->min_y = std::min(impl_->min_y, y), impl_->max_y = std::max(impl_->max_y, y);
    }
  }
  impl_->positions = std::move(positions);
  impl_->tile = tile;
  impl_->rtree = bgi::rtree<Value, bgi::rstar<16>>(values.begin(), values.end());  // bulk load
}

MosaicIndex::~MosaicIndex() = default;
MosaicIndex::MosaicIndex(MosaicIndex&&) noexcept = default;
MosaicIndex& MosaicIndex::operator=(MosaicIndex&&) noexcept = default;

size_t MosaicIndex::size() const { return impl_->positions.size(); }

Box MosaicIndex::Footprint(uint32_t tile, int level) const {
  const auto [x, y] = impl_->positions[tile];
  return {Scaled(x, level), Scaled(y, level), Ceil(impl_->tile.width, level), Ceil(impl_->tile.height, level)};
}

Box MosaicIndex::Bounds(int level) const {
  if (impl_->positions.empty()) return {};
  // Rounding keeps order and every tile has one size: the extreme positions give the bounds.
  const int64_t x0 = Scaled(impl_->min_x, level), y0 = Scaled(impl_->min_y, level);
  const int64_t x1 = Scaled(impl_->max_x, level) + Ceil(impl_->tile.width, level);
  const int64_t y1 = Scaled(impl_->max_y, level) + Ceil(impl_->tile.height, level);
  return {x0, y0, x1 - x0, y1 - y0};
}

std::vector<uint32_t> MosaicIndex::Query(int level, const Box& box) const {
  std::vector<uint32_t> out;
  if (box.empty()) return out;
  // The level-0 box that holds every candidate, widened by one level pixel for rounding;
  // the exact test is on the level's footprints.
  const double s = std::ldexp(1.0, level);
  const RBox query(Point((static_cast<double>(box.x) - 1) * s, (static_cast<double>(box.y) - 1) * s),
                   Point((static_cast<double>(box.x + box.w) + 1) * s, (static_cast<double>(box.y + box.h) + 1) * s));
  std::vector<Value> hits;
  impl_->rtree.query(bgi::intersects(query), std::back_inserter(hits));
  for (const auto& [r, tile] : hits) {
    if (!Intersect(Footprint(tile, level), box).empty()) out.push_back(tile);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Piece> MosaicIndex::Visible(int level, const Box& box) const {
  std::vector<Piece> out;
  std::vector<Box> parts, next;
  for (uint32_t tile : Query(level, box)) {
    parts.assign({Intersect(Footprint(tile, level), box)});
    for (uint32_t above : Query(level, parts[0])) {
      if (above <= tile) continue;
      const Box cover = Footprint(above, level);
      next.clear();
      for (const Box& p : parts) Subtract(p, cover, next);
      parts.swap(next);
      if (parts.empty()) break;
    }
    for (const Box& p : parts) out.push_back({tile, p});
  }
  return out;
}

std::vector<ChunkCopy> PlanRegion(const MosaicIndex& index, int level, const Box& region,
                                  uint32_t chunk_h, uint32_t chunk_w) {
  std::vector<ChunkCopy> out;
  for (const Piece& piece : index.Visible(level, region)) {
    const Box f = index.Footprint(piece.tile, level);
    // The piece relative to its tile's top-left.
    const int64_t rx0 = piece.box.x - f.x, ry0 = piece.box.y - f.y;
    const int64_t rx1 = rx0 + piece.box.w, ry1 = ry0 + piece.box.h;
    for (int64_t cy = ry0 / chunk_h; cy * chunk_h < ry1; ++cy) {
      for (int64_t cx = rx0 / chunk_w; cx * chunk_w < rx1; ++cx) {
        const int64_t y0 = std::max(ry0, cy * chunk_h), y1 = std::min(ry1, (cy + 1) * chunk_h);
        const int64_t x0 = std::max(rx0, cx * chunk_w), x1 = std::min(rx1, (cx + 1) * chunk_w);
        out.push_back({piece.tile, static_cast<uint32_t>(cy), static_cast<uint32_t>(cx),
                       static_cast<uint32_t>(x0 - cx * chunk_w), static_cast<uint32_t>(y0 - cy * chunk_h),
                       static_cast<uint32_t>(x1 - x0), static_cast<uint32_t>(y1 - y0),
                       static_cast<uint32_t>(f.x + x0 - region.x), static_cast<uint32_t>(f.y + y0 - region.y)});
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const ChunkCopy& a, const ChunkCopy& b) {
    return std::tie(a.tile, a.cy, a.cx) < std::tie(b.tile, b.cy, b.cx);
  });
  return out;
}

}  // namespace tessera::mosaic
