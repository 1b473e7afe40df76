#include "common/storage/internal/direct_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tessera::storage::internal {
namespace {

uint64_t RoundUp(uint64_t v) { return (v + DirectWriter::kAlign - 1) / DirectWriter::kAlign * DirectWriter::kAlign; }

}  // namespace

std::unique_ptr<DirectWriter> DirectWriter::Open(const std::string& path, Buffered buffered) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return nullptr;
  std::unique_ptr<DirectWriter> d(new DirectWriter(fd, std::move(buffered)));
  if (d->free_.size() < kBlocks) return nullptr;  // no memory for its blocks: write buffered
  return d;
}

DirectWriter::DirectWriter(int fd, Buffered buffered) : fd_(fd), buffered_(std::move(buffered)) {
  for (int i = 0; i < kBlocks; ++i) {
    memory_.emplace_back(static_cast<uint8_t*>(std::aligned_alloc(kAlign, kBlock)), &std::free);
    if (memory_.back() != nullptr) free_.push_back(memory_.back().get());
  }
  thread_ = std::jthread([this](std::stop_token st) { Loop(st); });
}

DirectWriter::~DirectWriter() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return jobs_.empty() && !busy_; });
  }
  thread_.request_stop();
  cv_.notify_all();
  thread_.join();
  ::close(fd_);
}

int DirectWriter::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

uint64_t DirectWriter::direct_bytes() const {
  std::lock_guard lock(mu_);
  return direct_bytes_;
}

bool DirectWriter::Holds(uint64_t offset, uint64_t size) const {
  const uint64_t end = offset + size;
  return (open_ && offset < run_end_ && end > base_) || (offset < pending_hi_ && end > pending_lo_);
}

bool DirectWriter::Append(uint64_t offset, std::span<const uint8_t> bytes) {
  if (error() != 0) return false;
  if (!open_ || offset != run_end_) {
    if (!CloseRun()) return false;
    if (Holds(offset, bytes.size()) && !Wait()) return false;
    // The head, up to the first whole page, may share its page with bytes of others.
    const size_t head = std::min<uint64_t>(bytes.size(), RoundUp(offset) - offset);
    if (head > 0 && !buffered_(offset, bytes.first(head))) return false;
    high_ = std::max(high_, offset + head);
    bytes = bytes.subspan(head);
    if (bytes.empty()) return true;
    if ((cur_ = TakeBlock()) == nullptr) return false;
    open_ = true;
    base_ = run_end_ = offset + head;
  }
  while (!bytes.empty()) {
    const size_t fill = run_end_ - base_;
    const size_t n = std::min(kBlock - fill, bytes.size());
    std::memcpy(cur_ + fill, bytes.data(), n);
    run_end_ += n;
    bytes = bytes.subspan(n);
    if (run_end_ - base_ == kBlock) {
      Submit(cur_, base_, kBlock);
      base_ = run_end_;
      if ((cur_ = TakeBlock()) == nullptr) {
        open_ = false;
        return false;
      }
    }
  }
  high_ = std::max(high_, run_end_);
  return true;
}

bool DirectWriter::Drain() { return CloseRun() && Wait(); }

// The run's whole pages go to the I/O thread, its last partial page through the page cache.
bool DirectWriter::CloseRun() {
  if (!open_) return error() == 0;
  open_ = false;
  const size_t fill = run_end_ - base_;
  const size_t whole = fill / kAlign * kAlign;
  bool ok = true;
  if (fill > whole) ok = buffered_(base_ + whole, {cur_ + whole, fill - whole});
  if (whole > 0) {
    Submit(cur_, base_, whole);
  } else {
    std::lock_guard lock(mu_);
    free_.push_back(cur_);
    cv_.notify_all();
  }
  cur_ = nullptr;
  return ok && error() == 0;
}

bool DirectWriter::Wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return jobs_.empty() && !busy_; });
  pending_lo_ = UINT64_MAX;
  pending_hi_ = 0;
  return error_ == 0;
}

uint8_t* DirectWriter::TakeBlock() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !free_.empty(); });
  if (error_ != 0) return nullptr;
  uint8_t* b = free_.back();
  free_.pop_back();
  return b;
}

void DirectWriter::Submit(uint8_t* block, uint64_t offset, size_t size) {
  pending_lo_ = std::min(pending_lo_, offset);
  pending_hi_ = std::max(pending_hi_, offset + size);
  {
    std::lock_guard lock(mu_);
    jobs_.push_back({block, offset, size});
  }
  cv_.notify_all();
}

void DirectWriter::Loop(std::stop_token stop) {
  bool direct = true;
  while (true) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, stop, [this] { return !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopped
      job = jobs_.front();
      jobs_.pop_front();
      busy_ = true;
      if (error_ != 0) job.size = 0;  // after a failure nothing more is written
    }
    int err = 0;
    for (size_t done = 0; done < job.size;) {
      const ssize_t n = ::pwrite(fd_, job.block + done, job.size - done, static_cast<off_t>(job.offset + done));
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EINVAL && direct) {
        // A file system that opened with O_DIRECT but refuses these writes: write them buffered.
        direct = false;
        ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_DIRECT);
      } else {
        err = n < 0 ? errno : EIO;
        break;
      }
    }
    std::lock_guard lock(mu_);
    if (err != 0 && error_ == 0) error_ = err;
    if (err == 0 && direct) direct_bytes_ += job.size;
    free_.push_back(job.block);
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace tessera::storage::internal
