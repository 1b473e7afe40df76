#include "common/stitch/register.h"

#include <gtest/gtest.h>

#include <array>

#include <cmath>
#include <random>

#include "common/imageio/tiff.h"
#include "common/imageio/tile_config.h"
#include "common/stitch/solve.h"
#include "common/synth/synthetic_mosaic.h"

namespace tessera::stitch {
namespace {

struct Tile {
  std::vector<uint16_t> pixels;
  int64_t width = 0, height = 0;
  double x = 0, y = 0;  // stage position
  ImageView view() const { return {pixels.data(), width, height, 0}; }
};

std::vector<Tile> LoadMist() {
  auto config = imageio::ReadTileConfig("../shared/data/mist-5x5/TileConfiguration.txt");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  std::vector<Tile> tiles;
  for (const auto& e : config->entries) {
    auto img = imageio::ReadTiff(e.path);
    EXPECT_TRUE(img.ok());
    Tile t{std::vector<uint16_t>(img->width * img->height), img->width, img->height, e.x, e.y};
    std::memcpy(t.pixels.data(), img->pixels.data(), img->pixels.size());
    tiles.push_back(std::move(t));
  }
  return tiles;
}

// The exact offset: the tiles are crops of one image, so their true overlap is identical.
std::optional<std::pair<int64_t, int64_t>> ExactOffset(const Tile& a, const Tile& b, int64_t ndx, int64_t ndy) {
  for (int64_t dy = ndy - 20; dy <= ndy + 20; ++dy) {
    for (int64_t dx = ndx - 20; dx <= ndx + 20; ++dx) {
      if (Ncc(a.view(), b.view(), dx, dy, 400) > 0.999999) return std::make_pair(dx, dy);
    }
  }
  return std::nullopt;
}

TEST(Register, MistNeighboursAreFoundExactlyOrFlagged) {
  const auto tiles = LoadMist();
  ASSERT_EQ(tiles.size(), 25u);
  int pairs = 0, reliable = 0, exact = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    for (size_t j = 0; j < tiles.size(); ++j) {
      const double ndx = tiles[j].x - tiles[i].x, ndy = tiles[j].y - tiles[i].y;
      const bool right = ndx > 0 && ndx < 240 && ndy == 0, below = ndy > 0 && ndy < 180 && ndx == 0;
      if (!right && !below) continue;
      ++pairs;
      auto link = RegisterPair(tiles[i].view(), tiles[j].view(), ndx, ndy, {.max_shift = 15});
      ASSERT_TRUE(link.ok()) << link.status().ToString();
      auto truth = ExactOffset(tiles[i], tiles[j], std::llround(ndx), std::llround(ndy));
      if (!truth) continue;
      ++exact;
      if (link->reliable) {
        ++reliable;
        EXPECT_NEAR(link->dx, static_cast<double>(truth->first), 0.5) << i << "-" << j;
        EXPECT_NEAR(link->dy, static_cast<double>(truth->second), 0.5) << i << "-" << j;
      } else {
        ADD_FAILURE() << i << "-" << j << " flagged: " << link->reason << " ncc " << link->ncc;
      }
    }
  }
  EXPECT_EQ(pairs, 40);
  EXPECT_GE(exact, 35);
  EXPECT_EQ(reliable, exact);
}

// The whole of it on mist-5x5: every pair registered, the positions solved; each tile within
// 0.5 px of the truth the identical overlaps give (MIST itself: 23 of 25 exact, max 3.6 px).
TEST(Register, MistTilesSolveToWithinHalfAPixelOfTruth) {
  const auto tiles = LoadMist();
  std::vector<std::array<double, 2>> stage;
  for (const Tile& t : tiles) stage.push_back({t.x, t.y});
  std::vector<TileLink> links, exact;
  for (uint32_t i = 0; i < tiles.size(); ++i) {
    for (uint32_t j = 0; j < tiles.size(); ++j) {
      const double ndx = stage[j][0] - stage[i][0], ndy = stage[j][1] - stage[i][1];
      if (!((ndx > 0 && ndx < 240 && ndy == 0) || (ndy > 0 && ndy < 180 && ndx == 0))) continue;
      auto link = RegisterPair(tiles[i].view(), tiles[j].view(), ndx, ndy, {.max_shift = 15});
      ASSERT_TRUE(link.ok());
      links.push_back({i, j, link->dx, link->dy, std::max(0.01, link->ncc), link->reliable});
      if (auto t = ExactOffset(tiles[i], tiles[j], std::llround(ndx), std::llround(ndy))) {
        exact.push_back({i, j, static_cast<double>(t->first), static_cast<double>(t->second), 1, true});
      }
    }
  }
  auto truth = SolvePositions(stage, exact, {});  // exact offsets agree: the truth, up to a shift
  auto solved = SolvePositions(stage, links, {});
  ASSERT_TRUE(truth.ok() && solved.ok());
  EXPECT_EQ(std::count(truth->group.begin(), truth->group.end(), 0), 25);
  const double sx = solved->positions[0][0] - truth->positions[0][0], sy = solved->positions[0][1] - truth->positions[0][1];
  for (size_t i = 0; i < tiles.size(); ++i) {
    EXPECT_NEAR(solved->positions[i][0] - sx, truth->positions[i][0], 0.5) << "tile " << i;
    EXPECT_NEAR(solved->positions[i][1] - sy, truth->positions[i][1], 0.5) << "tile " << i;
  }
}

// A synthetic textured image and crops of it at known offsets, with noise.
TEST(Register, SubPixelFreeCropsWithNoiseAndAPeriodicPatternIsFlagged) {
  std::mt19937 rng(3);
  const int64_t W = 600, H = 400;
  std::vector<uint16_t> big(static_cast<size_t>(W * H));
  std::normal_distribution<double> blob(0, 1);
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      big[static_cast<size_t>(y * W + x)] = static_cast<uint16_t>(
          1000 + 400 * std::sin(static_cast<double>(x) * 0.07 + std::sin(static_cast<double>(y) * 0.05) * 3) *
                     std::cos(static_cast<double>(y) * 0.045 + static_cast<double>(x * x) * 1e-4));
    }
  }
  auto crop = [&](int64_t x0, int64_t y0, int64_t w, int64_t h, double noise) {
    std::vector<uint16_t> out(static_cast<size_t>(w * h));
    std::normal_distribution<double> n(0, noise);
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        out[static_cast<size_t>(y * w + x)] = static_cast<uint16_t>(big[static_cast<size_t>((y0 + y) * W + x0 + x)] + n(rng));
      }
    }
    return out;
  };
  const auto a = crop(10, 10, 300, 300, 20), b = crop(10 + 263, 10 + 7, 300, 300, 20);
  auto link = RegisterPair({a.data(), 300, 300}, {b.data(), 300, 300}, 270, 0, {.max_shift = 12});
  ASSERT_TRUE(link.ok());
  EXPECT_TRUE(link->reliable) << link->reason;
  EXPECT_NEAR(link->dx, 263, 0.5);
  EXPECT_NEAR(link->dy, 7, 0.5);

  // The true offset beyond the maximum shift: the best match lies on the search's edge and
  // is not trusted (it would be the slope of the peak outside).
  auto beyond = RegisterPair({a.data(), 300, 300}, {b.data(), 300, 300}, 280, 0, {.max_shift = 12});
  ASSERT_TRUE(beyond.ok());
  EXPECT_FALSE(beyond->reliable);
  EXPECT_NE(beyond->reason.find("edge of the search"), std::string::npos) << beyond->reason;

  // A ruled grid with a 9-pixel period: shifts of 9 look alike.
  std::vector<uint16_t> stripes(300 * 300);
  for (int64_t y = 0; y < 300; ++y) {
    for (int64_t x = 0; x < 300; ++x) stripes[static_cast<size_t>(y * 300 + x)] = x % 9 < 2 || y % 9 < 2 ? 3000 : 500;
  }
  auto periodic = RegisterPair({stripes.data(), 300, 300}, {stripes.data(), 300, 300}, 270, 0, {.max_shift = 12});
  ASSERT_TRUE(periodic.ok());
  EXPECT_FALSE(periodic->reliable);
  EXPECT_NE(periodic->reason.find("ambiguous"), std::string::npos) << periodic->reason;

  // Flat: nothing to see.
  std::vector<uint16_t> flat(300 * 300, 700);
  auto blank = RegisterPair({flat.data(), 300, 300}, {flat.data(), 300, 300}, 270, 0, {});
  ASSERT_TRUE(blank.ok());
  EXPECT_FALSE(blank->reliable);
  EXPECT_NE(blank->reason.find("texture"), std::string::npos) << blank->reason;

  EXPECT_FALSE(RegisterPair({flat.data(), 300, 300}, {flat.data(), 300, 300}, 400, 0, {.max_shift = 20}).ok());
}

// Smooth content (wide blobs) has a wide NCC peak: the readings on its flanks are not rivals,
// and a link is found reliable and sub-pixel; large windows go through the half-resolution
// correlation.
TEST(Register, SmoothContentIsNotAmbiguousAndLargeWindowsAreExact) {
  const int64_t W = 1400, H = 900;
  std::vector<uint16_t> big(static_cast<size_t>(W * H));
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::array<double, 3>> blobs;
  for (int i = 0; i < 60; ++i) blobs.push_back({u(rng) * W, u(rng) * H, 8 + 20 * u(rng)});
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      double v = 200;
      for (const auto& [bx, by, r] : blobs) {
        const double d2 = (static_cast<double>(x) - bx) * (static_cast<double>(x) - bx) +
                          (static_cast<double>(y) - by) * (static_cast<double>(y) - by);
        if (d2 < 16 * r * r) v += 3000 * std::exp(-d2 / (2 * r * r));
      }
      big[static_cast<size_t>(y * W + x)] = static_cast<uint16_t>(std::min(v, 65535.0));
    }
  }
  auto crop = [&](int64_t x0, int64_t y0) {
    std::vector<uint16_t> out(800 * 800);
    for (int64_t y = 0; y < 800; ++y)
      for (int64_t x = 0; x < 800; ++x) out[static_cast<size_t>(y * 800 + x)] = big[static_cast<size_t>((y0 + y) * W + x0 + x)];
    return out;
  };
  const auto a = crop(20, 30), b = crop(20 + 583, 30 + 9);  // nominal 600, 0: off by (-17, 9)
  auto link = RegisterPair({a.data(), 800, 800}, {b.data(), 800, 800}, 600, 0, {.max_shift = 20});
  ASSERT_TRUE(link.ok());
  EXPECT_TRUE(link->reliable) << link->reason;
  EXPECT_NEAR(link->dx, 583, 0.25);
  EXPECT_NEAR(link->dy, 9, 0.25);
  EXPECT_GT(link->ncc, 0.999);
}

// One stack of a synthetic light-sheet mosaic, every plane, as uint16.
struct Stack3 {
  std::vector<uint16_t> voxels;
  int64_t width = 0, height = 0, depth = 0;
  ImageView plane(int64_t z) const { return {voxels.data() + z * width * height, width, height, 0}; }
};

Stack3 RenderStack(const synth::SyntheticMosaic& m, uint32_t t) {
  const ScanPlan& p = m.plan();
  Stack3 s{std::vector<uint16_t>(size_t{p.width} * p.height * p.z_planes), p.width, p.height, p.z_planes};
  for (uint32_t z = 0; z < p.z_planes; ++z) {
    m.RenderFrame({t, 0, z}, {reinterpret_cast<uint8_t*>(s.voxels.data() + size_t{z} * p.width * p.height),
                              p.frame_bytes()});
  }
  return s;
}

// Registers b against a in 3-D as a worker does: x, y on the projections over z, then z on the
// side views of the overlap.
Link Register3(const Stack3& a, const Stack3& b, double ndx, double ndy, double ndz) {
  auto project = [](const Stack3& s) {
    std::vector<uint16_t> p(static_cast<size_t>(s.width * s.height), 0);
    for (int64_t z = 0; z < s.depth; ++z) {
      for (size_t i = 0; i < p.size(); ++i) p[i] = std::max(p[i], s.voxels[static_cast<size_t>(z * s.width * s.height) + i]);
    }
    return p;
  };
  const auto pa = project(a), pb = project(b);
  auto link = RegisterPair({pa.data(), a.width, a.height, 0}, {pb.data(), b.width, b.height, 0}, ndx, ndy, {});
  EXPECT_TRUE(link.ok());
  if (!link.ok()) return {};
  const DepthOverlap d = DepthOverlapOf(a.width, a.height, b.width, b.height, link->dx, link->dy);
  auto side = [&](const Stack3& s, const Rect& r) {
    std::vector<uint16_t> rows(static_cast<size_t>(d.length * s.depth));
    for (int64_t z = 0; z < s.depth; ++z) {
      const ImageView crop{s.voxels.data() + z * s.width * s.height + r.y0 * s.width + r.x0, r.width(), r.height(),
                           s.width};
      ProjectSide(crop, d.along_x, std::span(rows).subspan(static_cast<size_t>(z * d.length), static_cast<size_t>(d.length)));
    }
    return rows;
  };
  const auto sa = side(a, d.a), sb = side(b, d.b);
  EXPECT_TRUE(RegisterDepth({sa.data(), d.length, a.depth, 0}, {sb.data(), d.length, b.depth, 0}, d, ndz,
                            {.max_shift = 8}, *link).ok());
  return *link;
}

// Light-sheet stacks offset by a known error in x, y and z: every pair within half a voxel.
TEST(Register, LightSheetStacksRegisterInThreeDimensionsWithinHalfAVoxel) {
  for (uint64_t seed : {1u, 2u}) {
    synth::SyntheticOptions o;
    o.cols = o.rows = 2;
    o.width = o.height = 192;
    o.channels = 1;
    o.z_planes = 40;
    o.light_sheet = true;
    o.z_error_planes = 3;
    o.position_error_px = 5;
    o.seed = seed;
    const synth::SyntheticMosaic m(o);
    std::vector<Stack3> stacks;
    for (uint32_t t = 0; t < 4; ++t) stacks.push_back(RenderStack(m, t));
    for (auto [a, b] : {std::pair{0u, 1u}, {0u, 2u}, {1u, 3u}, {2u, 3u}}) {
      const auto& ta = m.plan().tiles[a];
      const auto& tb = m.plan().tiles[b];
      const Link l = Register3(stacks[a], stacks[b], tb.x - ta.x, tb.y - ta.y, 0);
      EXPECT_TRUE(l.reliable) << l.reason;
      EXPECT_NEAR(l.dx, m.TruePosition(b)[0] - m.TruePosition(a)[0], 0.5) << "seed " << seed << " " << a << "-" << b;
      EXPECT_NEAR(l.dy, m.TruePosition(b)[1] - m.TruePosition(a)[1], 0.5) << "seed " << seed << " " << a << "-" << b;
      EXPECT_NEAR(l.dz, m.TrueZ(b) - m.TrueZ(a), 0.5) << "seed " << seed << " " << a << "-" << b;
      EXPECT_GT(l.ncc_z, 0.5);
    }
  }
}

}  // namespace
}  // namespace tessera::stitch
