#include "server/writer/internal/level_builder.h"

#include <chrono>

#include "common/codec/codec.h"

namespace tessera::writer::internal {

LevelBuilder::LevelBuilder(ScanPlan plan, uint64_t max_bytes)
    : plan_(std::move(plan)), max_bytes_(max_bytes), thread_([this](std::stop_token st) { Loop(st); }) {}

LevelBuilder::~LevelBuilder() {
  thread_.request_stop();
  cv_.notify_all();
}

void LevelBuilder::Submit(uint64_t frame, std::vector<zmq::message_t> chunks) {
  uint64_t bytes = 0;
  for (const auto& c : chunks) bytes += c.size();
  {
    std::lock_guard lock(mu_);
    queued_bytes_ += bytes;
    ++in_flight_;
    queue_.emplace_back(frame, std::move(chunks));
  }
  cv_.notify_one();
}

bool LevelBuilder::Full() const {
  std::lock_guard lock(mu_);
  return queued_bytes_ >= max_bytes_;
}

void LevelBuilder::WaitForResults(int timeout_ms) {
  std::unique_lock lock(mu_);
  done_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return !done_.empty(); });
}

std::vector<LevelBuilder::Done> LevelBuilder::TakeResults() {
  std::lock_guard lock(mu_);
  in_flight_ -= done_.size();
  return std::exchange(done_, {});
}

size_t LevelBuilder::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

LevelBuilder::Done LevelBuilder::Build(uint64_t frame, const std::vector<zmq::message_t>& chunks) {
  if (plan_.level_count() < 2) return {frame, std::vector<pyramid::EncodedChunk>{}};
  const LevelShape level0 = plan_.Level(0);
  // Each chunk is decoded into a buffer that stays in the cache and halved straight into level 1:
  // the frame itself is never assembled. Chunks of odd size (rare: a frame narrower than its
  // chunk is one chunk across) are assembled into the frame first.
  const bool by_chunk = pyramid::HalvesByChunk(level0);
  pixels_.resize(by_chunk ? pyramid::LevelBytes(plan_.Level(1), plan_.dtype) : plan_.frame_bytes());
  chunk_.resize(plan_.chunk_bytes());
  for (uint32_t i = 0; i < chunks.size(); ++i) {
    const std::span<const uint8_t> packed(static_cast<const uint8_t*>(chunks[i].data()), chunks[i].size());
    if (Status s = codec::Decompress(packed, chunk_); !s.ok()) return {frame, s};
    const uint32_t cy = i / level0.chunks_x(), cx = i % level0.chunks_x();
    if (by_chunk) {
      pyramid::DownsampleChunk(chunk_, level0, plan_.dtype, cy, cx, pixels_);
    } else {
      pyramid::InsertChunk(chunk_, level0, DtypeSize(plan_.dtype), cy, cx, pixels_);
    }
  }
  const FrameKey key = plan_.KeyOf(frame);
  return {frame, by_chunk ? pyramid::EncodeLevelsFrom(key, 1, pixels_, plan_) : pyramid::EncodeLevels(key, pixels_, plan_)};
}

void LevelBuilder::Loop(std::stop_token stop) {
  while (true) {
    std::pair<uint64_t, std::vector<zmq::message_t>> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, stop, [this] { return !queue_.empty(); });
      if (stop.stop_requested()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    Done done = Build(job.first, job.second);
    std::lock_guard lock(mu_);
    for (const auto& c : job.second) queued_bytes_ -= c.size();
    done_.push_back(std::move(done));
    done_cv_.notify_all();
  }
}

}  // namespace tessera::writer::internal
