#include "common/cache/chunk_cache.h"

#include <functional>

namespace tessera::cache {

size_t CacheKeyHash::operator()(const CacheKey& k) const {
  const ChunkKey& c = k.chunk;
  uint64_t h = std::hash<std::string>{}(k.slide);
  for (uint64_t v : {uint64_t{c.frame.t}, uint64_t{c.frame.c}, uint64_t{c.frame.z}, uint64_t{c.level},
                     uint64_t{c.cy}, uint64_t{c.cx}}) {
    h = (h ^ v) * 0x100000001b3ull;
  }
  return static_cast<size_t>(h);
}

std::optional<CachedChunk> ChunkCache::Get(const CacheKey& key) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

bool ChunkCache::Contains(const CacheKey& key) const {
  std::lock_guard lock(mu_);
  return index_.contains(key);
}

void ChunkCache::Put(const CacheKey& key, CachedChunk chunk) {
  const uint64_t size = chunk.bytes->size();
  if (size > max_bytes_) return;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    bytes_ -= it->second->second.bytes->size();
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.emplace_front(key, std::move(chunk));
  index_.emplace(key, lru_.begin());
  bytes_ += size;
  while (bytes_ > max_bytes_) {
    auto& victim = lru_.back();
    bytes_ -= victim.second.bytes->size();
    index_.erase(victim.first);
    lru_.pop_back();
  }
}

void ChunkCache::DropSlide(const std::string& slide) {
  std::lock_guard lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->first.slide != slide) {
      ++it;
      continue;
    }
    bytes_ -= it->second.bytes->size();
    index_.erase(it->first);
    it = lru_.erase(it);
  }
}

uint64_t ChunkCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}
uint64_t ChunkCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}
uint64_t ChunkCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}

}  // namespace tessera::cache
