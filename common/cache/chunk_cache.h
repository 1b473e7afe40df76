// ChunkCache: an LRU cache of chunks, bounded in bytes, thread-safe: the dealer's of stored
// (compressed) chunks, a client's of decoded ones (ClientOptions::decoded_cache_bytes).
//
//   ChunkCache cache(1 << 30);
//   cache.Put(key, bytes, xxh64);
//   if (auto hit = cache.Get(key)) Send(hit->bytes);
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/plan/scan_plan.h"

namespace tessera::cache {

struct CacheKey {
  std::string slide;
  ChunkKey chunk;
  bool operator==(const CacheKey&) const = default;
};

struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const;
};

using Bytes = std::shared_ptr<const std::vector<uint8_t>>;

struct CachedChunk {
  Bytes bytes;
  uint64_t xxh64 = 0;
};

class ChunkCache {
 public:
  explicit ChunkCache(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  /// The chunk if cached (and marks it most recently used).
  std::optional<CachedChunk> Get(const CacheKey& key);
  /// Whether the chunk is cached, without touching its recency.
  bool Contains(const CacheKey& key) const;
  /// Inserts or replaces; evicts least recently used chunks beyond the byte bound. A chunk
  /// larger than the whole bound is not kept.
  void Put(const CacheKey& key, CachedChunk chunk);
  /// Drops every chunk of `slide` (its file was replaced or reopened).
  void DropSlide(const std::string& slide);

  uint64_t bytes() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  using Entry = std::pair<CacheKey, CachedChunk>;
  const uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recent
  std::unordered_map<CacheKey, std::list<Entry>::iterator, CacheKeyHash> index_;
  uint64_t bytes_ = 0, hits_ = 0, misses_ = 0;
};

}  // namespace tessera::cache
