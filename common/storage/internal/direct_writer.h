// DirectWriter: a slide writer's large raw-data writes, with O_DIRECT, behind the caller.
//
// A slide's chunks land one after another at the end of its file. Through the page cache
// each byte costs the kernel a copy into a fresh page, the page's accounting and later its
// writeback (0.35-2.7 core-seconds per GB on these machines, against 0.15-0.2 with O_DIRECT:
// docs/benchmarks.md). DirectWriter gathers consecutive writes into aligned blocks and writes
// each block with O_DIRECT on a thread of its own while the caller goes on; the unaligned ends
// of a run (pages it may share with HDF5's metadata) go through the caller's buffered path, so
// that a page is only ever written one way at a time. Drain() writes out everything it holds
// and waits for the disk. The recording driver drains before every flush, before every
// metadata write (no index reaches the file before the chunk it points to, which SWMR readers
// rely on) and before any read or write that overlaps what it holds. Private to common/storage.
//
//   auto d = DirectWriter::Open(path, [&](uint64_t at, std::span<const uint8_t> b) { ... });
//   if (d == nullptr) ...                      // the file system refuses O_DIRECT: write buffered
//   if (!d->Append(offset, bytes)) ...         // d->error() is the errno of the failure
//   if (d->Holds(offset, size)) d->Drain();
//
// Not thread-safe: one caller (HDF5 calls its driver under its global lock).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace tessera::storage::internal {

class DirectWriter {
 public:
  /// Writes bytes through the page cache (the file's own driver); false on failure.
  using Buffered = std::function<bool(uint64_t offset, std::span<const uint8_t> bytes)>;
  static constexpr size_t kAlign = 4096;            ///< offsets, lengths and memory of direct writes
  static constexpr size_t kBlock = size_t{4} << 20;  ///< bytes per direct write
  static constexpr int kBlocks = 4;                 ///< blocks in memory: one filling, the rest on the way

  /// Opens `path` (which exists) a second time with O_DIRECT; nullptr when that is refused
  /// (or its blocks cannot be allocated).
  static std::unique_ptr<DirectWriter> Open(const std::string& path, Buffered buffered);
  ~DirectWriter();  ///< waits for the writes under way; what is held and not drained is dropped
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  /// Takes `bytes` for `offset`: they continue the current run, or start a new one (after
  /// draining what they overlap). false once a write has failed.
  bool Append(uint64_t offset, std::span<const uint8_t> bytes);
  /// Writes everything held and waits until it is in the file. false once a write has failed.
  bool Drain();
  /// Whether [offset, offset + size) overlaps bytes held or under way (not yet in the file).
  bool Holds(uint64_t offset, uint64_t size) const;
  /// One past the highest byte taken so far.
  uint64_t end() const { return high_; }
  /// errno of the first failed write; 0 while none failed.
  int error() const;
  /// Bytes written with O_DIRECT so far (completed).
  uint64_t direct_bytes() const;

 private:
  struct Job {
    uint8_t* block;
    uint64_t offset;
    size_t size;
  };
  DirectWriter(int fd, Buffered buffered);
  bool CloseRun();
  bool Wait();
  uint8_t* TakeBlock();
  void Submit(uint8_t* block, uint64_t offset, size_t size);
  void Loop(std::stop_token stop);

  const int fd_;
  const Buffered buffered_;
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> memory_;

  // The caller's side.
  bool open_ = false;
  uint64_t base_ = 0, run_end_ = 0;  // the run fills block cur_ from base_ (aligned) to run_end_
  uint8_t* cur_ = nullptr;
  uint64_t pending_lo_ = UINT64_MAX, pending_hi_ = 0;  // submitted since the last Wait
  uint64_t high_ = 0;

  // Shared with the I/O thread.
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Job> jobs_;
  std::vector<uint8_t*> free_;
  bool busy_ = false;
  int error_ = 0;
  uint64_t direct_bytes_ = 0;
  std::jthread thread_;
};

}  // namespace tessera::storage::internal
