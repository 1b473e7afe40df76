#include "common/cache/chunk_cache.h"

#include <gtest/gtest.h>

namespace tessera::cache {
namespace {

CacheKey Key(const std::string& slide, uint32_t t) { return {slide, ChunkKey{{t, 0, 0}, 0, 0, 0}}; }

CachedChunk Chunk(size_t size, uint8_t fill) {
  return {std::make_shared<const std::vector<uint8_t>>(size, fill), fill};
}

TEST(ChunkCacheTest, EvictsLeastRecentlyUsedBeyondItsByteBound) {
  ChunkCache cache(300);
  cache.Put(Key("a", 0), Chunk(100, 0));
  cache.Put(Key("a", 1), Chunk(100, 1));
  cache.Put(Key("a", 2), Chunk(100, 2));
  ASSERT_TRUE(cache.Get(Key("a", 0)));  // 0 is now the most recent; 1 the least
  cache.Put(Key("a", 3), Chunk(100, 3));
  EXPECT_FALSE(cache.Contains(Key("a", 1)));
  EXPECT_TRUE(cache.Contains(Key("a", 0)));
  EXPECT_TRUE(cache.Contains(Key("a", 3)));
  EXPECT_EQ(cache.bytes(), 300u);
  EXPECT_EQ(cache.Get(Key("a", 3))->xxh64, 3u);
}

TEST(ChunkCacheTest, ReplacingAKeyKeepsTheByteCountExact) {
  ChunkCache cache(1000);
  cache.Put(Key("a", 0), Chunk(100, 0));
  cache.Put(Key("a", 0), Chunk(40, 9));
  EXPECT_EQ(cache.bytes(), 40u);
  EXPECT_EQ(cache.Get(Key("a", 0))->bytes->size(), 40u);
}

TEST(ChunkCacheTest, AChunkLargerThanTheBoundIsNotKept) {
  ChunkCache cache(50);
  cache.Put(Key("a", 0), Chunk(51, 0));
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_FALSE(cache.Get(Key("a", 0)));
  EXPECT_EQ(cache.misses(), 1u);
}

TEST(ChunkCacheTest, DropSlideForgetsOnlyThatSlide) {
  ChunkCache cache(1000);
  cache.Put(Key("a", 0), Chunk(10, 0));
  cache.Put(Key("b", 0), Chunk(10, 0));
  cache.DropSlide("a");
  EXPECT_FALSE(cache.Contains(Key("a", 0)));
  EXPECT_TRUE(cache.Contains(Key("b", 0)));
  EXPECT_EQ(cache.bytes(), 10u);
}

}  // namespace
}  // namespace tessera::cache
