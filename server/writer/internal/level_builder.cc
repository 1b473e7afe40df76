#include "server/writer/internal/level_builder.h"

#include <sys/resource.h>
#include <unistd.h>

#include "common/codec/codec.h"

namespace tessera::writer::internal {

LevelBuilder::LevelBuilder(ScanPlan plan, uint64_t max_bytes)
    : plan_(std::move(plan)), max_bytes_(max_bytes), thread_([this](std::stop_token st) { Loop(st); }) {}

LevelBuilder::~LevelBuilder() {
  thread_.request_stop();
  cv_.notify_all();
}

bool LevelBuilder::Submit(uint64_t frame, std::vector<zmq::message_t> chunks) {
  uint64_t bytes = 0;
  for (const auto& c : chunks) bytes += c.size();
  {
    std::lock_guard lock(mu_);
    if (queued_bytes_ > 0 && queued_bytes_ + bytes > max_bytes_) return false;
    queued_bytes_ += bytes;
    ++in_flight_;
    queue_.emplace_back(frame, std::move(chunks));
  }
  cv_.notify_one();
  return true;
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

LevelBuilder::Done LevelBuilder::Build(uint64_t frame, const std::vector<zmq::message_t>& chunks) const {
  const LevelShape level0 = plan_.Level(0);
  const size_t elem = DtypeSize(plan_.dtype);
  std::vector<uint8_t> pixels(plan_.frame_bytes()), chunk(plan_.chunk_bytes());
  for (uint32_t i = 0; i < chunks.size(); ++i) {
    const std::span<const uint8_t> packed(static_cast<const uint8_t*>(chunks[i].data()), chunks[i].size());
    if (Status s = codec::Decompress(packed, chunk); !s.ok()) return {frame, s};
    pyramid::InsertChunk(chunk, level0, elem, i / level0.chunks_x(), i % level0.chunks_x(), pixels);
  }
  return {frame, pyramid::EncodeLevels(plan_.KeyOf(frame), pixels, plan_)};
}

void LevelBuilder::Loop(std::stop_token stop) {
  // Levels wait; acknowledgements do not: this thread yields the CPU to the writer's.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
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
  }
}

}  // namespace tessera::writer::internal
