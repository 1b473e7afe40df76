// BufferPool: byte buffers kept for reuse, so that a reader's stored chunks land in memory
// already faulted in instead of fresh pages the kernel clears for every chunk. Private to
// client/.
//
//   BufferPool pool(64);
//   std::shared_ptr<std::vector<uint8_t>> b = pool.Get();  // back in the pool when let go
//   file.ReadChunk(key, *b);
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tessera::internal {

class BufferPool {
 public:
  /// Keeps at most `idle` buffers between uses; the rest are freed.
  explicit BufferPool(size_t idle) : idle_(idle) {}

  /// A buffer with the capacity it had at its last use (empty the first time). It returns
  /// to the pool when its last holder lets go, which must happen while the pool lives.
  std::shared_ptr<std::vector<uint8_t>> Get() {
    std::unique_ptr<std::vector<uint8_t>> b;
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        b = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!b) b = std::make_unique<std::vector<uint8_t>>();
    return {b.release(), [this](std::vector<uint8_t>* p) { Put(p); }};
  }

 private:
  void Put(std::vector<uint8_t>* p) {
    std::unique_ptr<std::vector<uint8_t>> b(p);
    std::lock_guard lock(mu_);
    if (free_.size() < idle_) free_.push_back(std::move(b));
  }

  const size_t idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> free_;
};

}  // namespace tessera::internal
