#include "common/pyramid/pyramid.h"

#include <gtest/gtest.h>

#include <cstring>
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

}  // namespace
}  // namespace tessera::pyramid
