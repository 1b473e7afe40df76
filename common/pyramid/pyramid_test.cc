#include "common/pyramid/pyramid.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>

#include "common/codec/codec.h"

namespace tessera::pyramid {
namespace {

std::vector<uint8_t> AsBytes(const std::vector<uint16_t>& v) {
  std::vector<uint8_t> b(v.size() * 2);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

uint16_t At(const std::vector<uint8_t>& bytes, size_t i) {
  uint16_t v;
  std::memcpy(&v, bytes.data() + 2 * i, 2);
  return v;
}

TEST(PyramidTest, MeanOfTwoByTwoRoundsHalfUp) {
  // (1 + 2 + 3 + 5 + 2) >> 2 = 3; (65535 * 4 + 2) >> 2 = 65535 without overflow.
  const std::vector<uint16_t> src = {1, 2, 65535, 65535, 3, 5, 65535, 65535};
  std::vector<uint8_t> dst(2 * 2);
  Downsample2x(AsBytes(src), {.width = 4, .height = 2}, Dtype::kUint16, dst);
  EXPECT_EQ(At(dst, 0), 3);
  EXPECT_EQ(At(dst, 1), 65535);
}

TEST(PyramidTest, TwoByTwoByTwoMeanRoundsHalfUpAndReplicatesOddEdges) {
  // 3 x 1 planes a, b: (1+2 + 3+4 ... ) the 2x2x2 mean of each pair of columns, rows replicated.
  const std::vector<uint16_t> a = {1, 2, 9}, b = {3, 5, 65535};
  std::vector<uint8_t> dst(2 * 2);
  Downsample2x2x2(AsBytes(a), AsBytes(b), {.width = 3, .height = 1}, Dtype::kUint16, dst);
  EXPECT_EQ(At(dst, 0), (2 * (1 + 2 + 3 + 5) + 4) >> 3);  // 3
  EXPECT_EQ(At(dst, 1), (4 * 9 + 4 * 65535 + 4) >> 3);    // the last column with itself, no overflow
  // An odd depth's last plane pairs with itself: the 2x2 mean of that plane.
  const std::vector<uint8_t> c = {10, 11, 12, 14};
  std::vector<uint8_t> one(1);
  Downsample2x2x2(c, c, {.width = 2, .height = 2}, Dtype::kUint8, one);
  EXPECT_EQ(one[0], (2 * (10 + 11 + 12 + 14) + 4) >> 3);
}

TEST(PyramidTest, OddEdgesReplicateTheLastRowAndColumn) {
  // 3 x 3 uint8: the last column pairs with itself, as does the last row.
  const std::vector<uint8_t> src = {10, 20, 31,  //
                                    30, 40, 50,  //
                                    7, 9, 200};
  std::vector<uint8_t> dst(4);
  Downsample2x(src, {.width = 3, .height = 3}, Dtype::kUint8, dst);
  EXPECT_EQ(dst[0], (10 + 20 + 30 + 40 + 2) >> 2);
  EXPECT_EQ(dst[1], (31 + 31 + 50 + 50 + 2) >> 2);
  EXPECT_EQ(dst[2], (7 + 9 + 7 + 9 + 2) >> 2);
  EXPECT_EQ(dst[3], (200 * 4 + 2) >> 2);
}

TEST(PyramidTest, ExtractThenInsertRebuildsTheImageAndPadsEdgesWithZero) {
  const LevelShape s{.width = 70, .height = 45, .chunk_y = 32, .chunk_x = 32};
  std::vector<uint8_t> image(s.pixels() * 2), rebuilt(image.size(), 0), chunk(s.chunk_pixels() * 2);
  std::mt19937 rng(3);
  for (auto& b : image) b = static_cast<uint8_t>(rng() | 1);  // never zero
  for (uint32_t cy = 0; cy < s.chunks_y(); ++cy) {
    for (uint32_t cx = 0; cx < s.chunks_x(); ++cx) {
      ExtractChunk(image, s, 2, cy, cx, chunk);
      if (cy == 1 && cx == 2) {
        // Rows 13.. and columns 6.. of this edge chunk lie outside the image.
        EXPECT_EQ(chunk[(13 * 32 + 0) * 2], 0);
        EXPECT_EQ(chunk[(0 * 32 + 6) * 2], 0);
        EXPECT_NE(chunk[(12 * 32 + 5) * 2], 0);
      }
      InsertChunk(chunk, s, 2, cy, cx, rebuilt);
    }
  }
  EXPECT_EQ(rebuilt, image);
}

TEST(PyramidTest, EncodeLevelsRefusesAVolumeView) {
  ScanPlan plan;
  plan.width = plan.height = 64;
  plan.z_planes = 8;
  plan.chunk_z = 4;
  plan.tiles.push_back({.name = "t"});
  std::vector<uint8_t> frame(plan.frame_bytes());
  EXPECT_EQ(EncodeLevels({0, 0, 0}, frame, plan).status().code(), StatusCode::kInvalidArgument);
}

TEST(PyramidTest, EncodeLevelsStoresEveryLevelAsTheMeanOfTheOneBelow) {
  ScanPlan plan;
  plan.width = 100;
  plan.height = 70;
  plan.chunk_y = plan.chunk_x = 32;
  plan.tiles.push_back({.name = "t0"});
  std::vector<uint8_t> frame(plan.frame_bytes());
  std::mt19937 rng(7);
  for (auto& b : frame) b = static_cast<uint8_t>(rng());
  auto chunks = EncodeLevels({0, 0, 0}, frame, plan);
  ASSERT_TRUE(chunks.ok()) << chunks.status().ToString();
  ASSERT_EQ(plan.level_count(), 3u);  // 100 -> 50 -> 25
  size_t expected_chunks = 0;
  for (uint32_t l = 1; l < plan.level_count(); ++l) expected_chunks += plan.Level(l).chunks_per_frame();
  ASSERT_EQ(chunks->size(), expected_chunks);

  // Decode level 1 from its chunks and compare with Downsample2x of level 0.
  const LevelShape l1 = plan.Level(1);
  std::vector<uint8_t> want(LevelBytes(l1, plan.dtype)), got(want.size()), chunk(l1.chunk_pixels() * 2);
  Downsample2x(frame, plan.Level(0), plan.dtype, want);
  for (const auto& c : *chunks) {
    EXPECT_EQ(c.xxh64, codec::Checksum(c.blosc));
    if (c.key.level != 1) continue;
    ASSERT_TRUE(codec::Decompress(c.blosc, chunk).ok());
    InsertChunk(chunk, l1, 2, c.key.cy, c.key.cx, got);
  }
  EXPECT_EQ(got, want);
  EXPECT_FALSE(EncodeLevels({0, 0, 0}, std::span(frame).first(10), plan).ok());
}

// The 2 x 2 mean by its definition, one pixel at a time, the last row and column replicated.
template <typename T>
std::vector<T> Reference(const std::vector<T>& src, uint32_t w, uint32_t h) {
  std::vector<T> out(size_t{(w + 1) / 2} * ((h + 1) / 2));
  for (uint32_t oy = 0; oy < (h + 1) / 2; ++oy) {
    for (uint32_t ox = 0; ox < (w + 1) / 2; ++ox) {
      const uint32_t x0 = 2 * ox, x1 = std::min(x0 + 1, w - 1), y0 = 2 * oy, y1 = std::min(y0 + 1, h - 1);
      const uint32_t sum = uint32_t{src[y0 * w + x0]} + src[y0 * w + x1] + src[y1 * w + x0] + src[y1 * w + x1];
      out[oy * ((w + 1) / 2) + ox] = static_cast<T>((sum + 2) >> 2);
    }
  }
  return out;
}

template <typename T>
void ExpectEveryWidthMatches(Dtype dtype) {
  std::mt19937 rng(11);
  for (uint32_t w = 1; w <= 75; ++w) {  // the vector body, its scalar tail and odd edges
    for (uint32_t h = 1; h <= 4; ++h) {
      std::vector<T> src(size_t{w} * h);
      for (auto& v : src) v = rng() % 3 == 0 ? std::numeric_limits<T>::max() : static_cast<T>(rng());
      std::vector<uint8_t> bytes(src.size() * sizeof(T)), dst(Reference(src, w, h).size() * sizeof(T));
      std::memcpy(bytes.data(), src.data(), bytes.size());
      Downsample2x(bytes, {.width = w, .height = h}, dtype, dst);
      std::vector<T> got(dst.size() / sizeof(T));
      std::memcpy(got.data(), dst.data(), dst.size());
      ASSERT_EQ(got, Reference(src, w, h)) << w << " x " << h;
    }
  }
}

TEST(PyramidTest, MeansOfEveryWidthEqualTheFormula) {
  ExpectEveryWidthMatches<uint8_t>(Dtype::kUint8);
  ExpectEveryWidthMatches<uint16_t>(Dtype::kUint16);
}

TEST(PyramidTest, HalvingChunkByChunkEqualsHalvingTheAssembledLevel) {
  struct Case {
    LevelShape shape;
    Dtype dtype;
  };
  const Case cases[] = {
      {{.width = 100, .height = 70, .chunk_y = 32, .chunk_x = 32}, Dtype::kUint16},
      {{.width = 97, .height = 61, .chunk_y = 16, .chunk_x = 48}, Dtype::kUint8},  // odd edges
      {{.width = 21, .height = 35, .chunk_y = 18, .chunk_x = 21}, Dtype::kUint16},  // one odd chunk across
  };
  std::mt19937 rng(5);
  for (const auto& [s, dtype] : cases) {
    ASSERT_TRUE(HalvesByChunk(s));
    const size_t elem = DtypeSize(dtype);
    std::vector<uint8_t> level(LevelBytes(s, dtype)), chunk(s.chunk_pixels() * elem);
    for (auto& b : level) b = static_cast<uint8_t>(rng());
    const LevelShape half_shape{.width = (s.width + 1) / 2, .height = (s.height + 1) / 2};
    std::vector<uint8_t> want(LevelBytes(half_shape, dtype)), got(want.size(), 0xAB);
    Downsample2x(level, s, dtype, want);
    for (uint32_t cy = 0; cy < s.chunks_y(); ++cy) {
      for (uint32_t cx = 0; cx < s.chunks_x(); ++cx) {
        ExtractChunk(level, s, elem, cy, cx, chunk);
        DownsampleChunk(chunk, s, dtype, cy, cx, got);
      }
    }
    EXPECT_EQ(got, want) << s.width << " x " << s.height;
  }
  // A chunk of odd size that does not span the level starts on odd columns: not by chunk.
  EXPECT_FALSE(HalvesByChunk({.width = 100, .height = 64, .chunk_y = 32, .chunk_x = 33}));
  EXPECT_FALSE(HalvesByChunk({.width = 64, .height = 100, .chunk_y = 33, .chunk_x = 32}));
}

TEST(PyramidTest, EncodeLevelsFromLevelOneEqualsEncodeLevelsFromTheFrame) {
  ScanPlan plan;
  plan.width = 130;
  plan.height = 90;
  plan.chunk_y = plan.chunk_x = 32;
  plan.tiles.push_back({.name = "t0"});
  std::vector<uint8_t> frame(plan.frame_bytes()), half(LevelBytes(plan.Level(1), plan.dtype));
  std::mt19937 rng(9);
  for (auto& b : frame) b = static_cast<uint8_t>(rng());
  Downsample2x(frame, plan.Level(0), plan.dtype, half);
  auto whole = EncodeLevels({0, 0, 0}, frame, plan);
  auto from = EncodeLevelsFrom({0, 0, 0}, 1, half, plan);
  ASSERT_TRUE(whole.ok() && from.ok());
  ASSERT_EQ(whole->size(), from->size());
  for (size_t i = 0; i < whole->size(); ++i) {
    EXPECT_EQ((*whole)[i].key, (*from)[i].key);
    EXPECT_EQ((*whole)[i].blosc, (*from)[i].blosc);
  }
  EXPECT_FALSE(EncodeLevelsFrom({0, 0, 0}, 0, frame, plan).ok());              // level 0 is not made here
  EXPECT_FALSE(EncodeLevelsFrom({0, 0, 0}, 1, frame, plan).ok());              // not level 1's size
  EXPECT_FALSE(EncodeLevelsFrom({0, 0, 0}, plan.level_count(), half, plan).ok());  // no such level
}

}  // namespace
}  // namespace tessera::pyramid
