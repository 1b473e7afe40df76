// LevelBuilder: computes the zoom levels of stored frames on a thread of its own, off the
// writer's acknowledgement path. Its queue is bounded by bytes: while it is full the writer
// takes no new frames, so that levels keep pace with the scan (every frame's levels are
// servable moments after its acknowledgement) and the scanner is slowed by credit, not by an
// ever longer wait for its levels. Private to the slide writer.
//
//   LevelBuilder levels(plan, /*max_bytes=*/32 << 20);
//   levels.Submit(frame_index, std::move(chunks));
//   if (levels.Full()) levels.WaitForResults(10);   // instead of taking the next frame
//   for (auto& done : levels.TakeResults()) ...write done.chunks...
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "common/plan/scan_plan.h"
#include "common/pyramid/pyramid.h"
#include "common/status/status.h"

namespace tessera::writer::internal {

class LevelBuilder {
 public:
  struct Done {
    uint64_t frame = 0;
    Result<std::vector<pyramid::EncodedChunk>> chunks = std::vector<pyramid::EncodedChunk>{};
  };

  LevelBuilder(ScanPlan plan, uint64_t max_bytes);
  ~LevelBuilder();  ///< drops what is queued and joins the thread

  /// Queues frame `frame` given its level-0 Blosc chunks in row-major chunk order.
  void Submit(uint64_t frame, std::vector<zmq::message_t> chunks);
  /// Whether the queue holds `max_bytes` or more: take no more frames until it drains.
  bool Full() const;
  /// Waits up to `timeout_ms` for a frame's levels to be done (returns at once if some are).
  void WaitForResults(int timeout_ms);
  /// The frames whose levels are computed since the last call.
  std::vector<Done> TakeResults();
  /// Frames submitted and not yet taken back.
  size_t in_flight() const;

 private:
  void Loop(std::stop_token stop);
  Done Build(uint64_t frame, const std::vector<zmq::message_t>& chunks);

  const ScanPlan plan_;
  const uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::pair<uint64_t, std::vector<zmq::message_t>>> queue_;
  uint64_t queued_bytes_ = 0;
  size_t in_flight_ = 0;
  std::vector<Done> done_;
  std::condition_variable done_cv_;
  std::vector<uint8_t> pixels_, chunk_;  // level 1 (or the frame) and a chunk, kept from frame to frame
  std::jthread thread_;
};

}  // namespace tessera::writer::internal
