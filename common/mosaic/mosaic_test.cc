#include "common/mosaic/mosaic.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>

namespace tessera::mosaic {
namespace {

// The owner of every pixel of `box` by brute force: the highest tile index covering it, -1 for none.
std::vector<int> OwnerMap(const MosaicIndex& index, int level, const Box& box) {
  std::vector<int> owner(static_cast<size_t>(box.w * box.h), -1);
  for (uint32_t t = 0; t < index.size(); ++t) {
    const Box f = Intersect(index.Footprint(t, level), box);
    for (int64_t y = f.y; y < f.y + f.h; ++y)
      for (int64_t x = f.x; x < f.x + f.w; ++x) owner[static_cast<size_t>((y - box.y) * box.w + (x - box.x))] = static_cast<int>(t);
  }
  return owner;
}

MosaicIndex RandomMosaic(std::mt19937& rng, int n, TileGeometry g) {
  std::uniform_real_distribution<double> pos(-40, 200);
  std::vector<std::array<double, 2>> p;
  for (int i = 0; i < n; ++i) p.push_back({pos(rng), pos(rng)});
  return MosaicIndex(std::move(p), g);
}

TEST(MosaicTest, FootprintsHalveWithCeilingAndRoundPositionsHalfUp) {
  MosaicIndex index({{101.0, -3.0}, {2.5, 0.49}}, {.width = 245, .height = 183});
  EXPECT_EQ(index.Footprint(0, 0), (Box{101, -3, 245, 183}));
  EXPECT_EQ(index.Footprint(0, 1), (Box{51, -1, 123, 92}));   // 50.5 -> 51, -1.5 -> -1
  EXPECT_EQ(index.Footprint(0, 3), (Box{13, 0, 31, 23}));     // 12.625 -> 13, -0.375 -> 0
  EXPECT_EQ(index.Footprint(1, 0), (Box{3, 0, 245, 183}));    // 2.5 -> 3, 0.49 -> 0
  EXPECT_EQ(index.Bounds(0), (Box{3, -3, 343, 186}));
}

TEST(MosaicTest, QueryFindsExactlyTheTilesABruteForceScanFinds) {
  std::vector<std::array<double, 2>> p;
  for (int r = 0; r < 100; ++r)
    for (int c = 0; c < 100; ++c) p.push_back({c * 1843.2 + (r % 3), r * 1843.2 - (c % 5)});
  // Odd tile sizes: rounding at coarse levels reaches a pixel past the level-0 footprint.
  MosaicIndex index(std::move(p), {.width = 2047, .height = 2045});
  std::mt19937 rng(1);
  std::uniform_int_distribution<int64_t> at(-5000, 190000), size(1, 9000);
  for (int i = 0; i < 200; ++i) {
    const int level = i % 5;
    const Box box{at(rng) >> level, at(rng) >> level, size(rng), size(rng)};
    std::vector<uint32_t> want;
    for (uint32_t t = 0; t < index.size(); ++t)
      if (!Intersect(index.Footprint(t, level), box).empty()) want.push_back(t);
    ASSERT_EQ(index.Query(level, box), want) << "level " << level << " box " << box.x << "," << box.y;
  }
  for (int level = 0; level < 7; ++level) {  // Bounds equals the union of every footprint
    Box all = index.Footprint(0, level);
    for (uint32_t t = 1; t < index.size(); ++t) {
      const Box f = index.Footprint(t, level);
      const int64_t x1 = std::max(all.x + all.w, f.x + f.w), y1 = std::max(all.y + all.h, f.y + f.h);
      all.x = std::min(all.x, f.x), all.y = std::min(all.y, f.y);
      all.w = x1 - all.x, all.h = y1 - all.y;
    }
    ASSERT_EQ(index.Bounds(level), all) << "level " << level;
  }
}

TEST(MosaicTest, VisiblePiecesAreDisjointAndEachPixelBelongsToTheTopTile) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 50; ++trial) {
    MosaicIndex index = RandomMosaic(rng, 12, {.width = 70, .height = 50});
    const int level = trial % 3;
    const Box box{-20 >> level, 10 >> level, 260 >> level, 230 >> level};
    const auto want = OwnerMap(index, level, box);
    std::vector<int> got(want.size(), -1);
    for (const Piece& p : index.Visible(level, box)) {
      ASSERT_FALSE(p.box.empty());
      for (int64_t y = p.box.y; y < p.box.y + p.box.h; ++y)
        for (int64_t x = p.box.x; x < p.box.x + p.box.w; ++x) {
          auto& g = got[static_cast<size_t>((y - box.y) * box.w + (x - box.x))];
          ASSERT_EQ(g, -1) << "two pieces cover (" << x << ", " << y << ")";
          g = static_cast<int>(p.tile);
        }
    }
    ASSERT_EQ(got, want) << "trial " << trial;
  }
}

TEST(MosaicTest, PlanRegionComposesWhatAPerPixelCompositionGives) {
  std::mt19937 rng(3);
  const TileGeometry g{.width = 45, .height = 38};
  const uint32_t ch = 16, cw = 12;  // edge chunks are partial
  for (int trial = 0; trial < 30; ++trial) {
    MosaicIndex index = RandomMosaic(rng, 10, g);
    const Box region{-7, 5, 180, 160};
    // Tile t's pixel (x, y) has value t * 10000 + y * 100 + x; the plan reads it through chunks.
    std::vector<int> out(static_cast<size_t>(region.w * region.h), -1);
    std::map<std::tuple<uint32_t, uint32_t, uint32_t>, int> chunk_runs;
    std::tuple<uint32_t, uint32_t, uint32_t> last{~0u, 0, 0};
    for (const ChunkCopy& c : PlanRegion(index, 0, region, ch, cw)) {
      const auto key = std::make_tuple(c.tile, c.cy, c.cx);
      if (key != last) ++chunk_runs[key];  // each chunk in one run of adjacent copies
      last = key;
      ASSERT_LE(c.sx + c.w, cw);
      ASSERT_LE(c.sy + c.h, ch);
      for (uint32_t y = 0; y < c.h; ++y)
        for (uint32_t x = 0; x < c.w; ++x) {
          const uint32_t ty = c.cy * ch + c.sy + y, tx = c.cx * cw + c.sx + x;
          ASSERT_LT(tx, g.width);
          ASSERT_LT(ty, g.height);
          auto& px = out[(size_t{c.dy} + y) * static_cast<size_t>(region.w) + c.dx + x];
          ASSERT_EQ(px, -1) << "copies overlap";
          px = static_cast<int>(c.tile * 10000 + ty * 100 + tx);
        }
    }
    for (const auto& [key, runs] : chunk_runs) ASSERT_EQ(runs, 1);
    const auto owner = OwnerMap(index, 0, region);
    for (int64_t y = 0; y < region.h; ++y)
      for (int64_t x = 0; x < region.w; ++x) {
        const int t = owner[static_cast<size_t>(y * region.w + x)];
        const Box f = index.Footprint(static_cast<uint32_t>(std::max(t, 0)), 0);
        const int want = t < 0 ? -1 : static_cast<int>(t * 10000 + (region.y + y - f.y) * 100 + (region.x + x - f.x));
        ASSERT_EQ(out[static_cast<size_t>(y * region.w + x)], want) << "trial " << trial << " at " << x << "," << y;
      }
  }
}

TEST(MosaicTest, BoxesOutsideTheMosaicHaveNoPieces) {
  MosaicIndex index({{0, 0}, {90, 0}}, {.width = 100, .height = 100});
  EXPECT_TRUE(index.Visible(0, {500, 500, 10, 10}).empty());
  EXPECT_TRUE(PlanRegion(index, 0, {-50, -50, 40, 40}, 32, 32).empty());
  // Partly outside: only the covered part has pieces.
  int64_t area = 0;
  for (const Piece& p : index.Visible(0, {150, -20, 100, 50})) area += p.box.w * p.box.h;
  EXPECT_EQ(area, 40 * 30);
}

}  // namespace
}  // namespace tessera::mosaic
