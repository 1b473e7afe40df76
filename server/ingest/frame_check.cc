#include "server/ingest/frame_check.h"

#include <algorithm>

#include "common/codec/codec.h"
#include "common/wire/wire.h"

namespace tessera::ingest {

uint32_t ChunksWithLevels(const ScanPlan& plan) {
  uint32_t n = 0;
  for (uint32_t l = 0; l < plan.level_count(); ++l) n += plan.Level(l).chunks_per_frame();
  return n;
}

bool CarriesLevels(const ScanPlan& plan, const proto::Frame& frame) {
  return plan.level_count() > 1 && static_cast<size_t>(frame.chunks_size()) > plan.chunks_per_frame();
}

Status CheckFrame(const ScanPlan& plan, const std::string& slide_id, const proto::Frame& frame,
                  const std::vector<zmq::message_t>& payload, Checksums checksums) {
  if (frame.slide_id() != slide_id) {
    return Error(StatusCode::kNotFound, "frame is for slide '{}', this is slide {}",
                 frame.slide_id(), slide_id);
  }
  TESSERA_RETURN_IF_ERROR(plan.CheckKey({frame.t(), frame.c(), frame.z()}));
  const size_t level0 = plan.chunks_per_frame(), all = ChunksWithLevels(plan);
  const auto n = static_cast<size_t>(frame.chunks_size());
  if ((n != level0 && n != all) || payload.size() != n) {
    return Error(StatusCode::kInvalidArgument,
                 "frame t={} c={} z={} has {} chunk headers and {} payload frames; the plan has {} "
                 "chunks per frame ({} with its zoom levels)",
                 frame.t(), frame.c(), frame.z(), frame.chunks_size(), payload.size(), level0, all);
  }
  // Each level's chunks take the slots after the levels below: n == all and no slot twice
  // means every chunk of every level came.
  std::vector<size_t> first(plan.level_count() + 1, 0);
  for (uint32_t l = 0; l < plan.level_count(); ++l) first[l + 1] = first[l] + plan.Level(l).chunks_per_frame();
  const uint32_t levels = n == level0 ? 1 : plan.level_count();
  const size_t elem = DtypeSize(plan.dtype);
  std::vector<bool> seen(n, false);
  for (size_t i = 0; i < n; ++i) {
    const proto::ChunkMeta& meta = frame.chunks(static_cast<int>(i));
    if (meta.level() >= levels) {
      return Error(n == level0 ? StatusCode::kInvalidArgument : StatusCode::kOutOfRange,
                   "chunk ({}, {}) of level {} in frame t={} c={} z={}: {}", meta.cy(), meta.cx(), meta.level(),
                   frame.t(), frame.c(), frame.z(),
                   n == level0 ? "a frame carries every chunk of its zoom levels or none"
                               : fmt::format("the slide has levels 0..{}", plan.level_count() - 1));
    }
    const LevelShape shape = plan.Level(meta.level());
    if (meta.cy() >= shape.chunks_y() || meta.cx() >= shape.chunks_x()) {
      return Error(StatusCode::kOutOfRange, "chunk ({}, {}) is outside the {}x{} chunk grid of level {}", meta.cy(),
                   meta.cx(), shape.chunks_y(), shape.chunks_x(), meta.level());
    }
    const size_t slot = first[meta.level()] + size_t{meta.cy()} * shape.chunks_x() + meta.cx();
    if (seen[slot]) {
      return Error(StatusCode::kInvalidArgument, "chunk ({}, {}) of level {} appears twice in frame t={} c={} z={}",
                   meta.cy(), meta.cx(), meta.level(), frame.t(), frame.c(), frame.z());
    }
    seen[slot] = true;
    const auto bytes = wire::Bytes(payload[i]);
    if (checksums == Checksums::kVerify && codec::Checksum(bytes) != meta.xxh64()) {
      return Error(StatusCode::kDataLoss,
                   "checksum mismatch in chunk ({}, {}) of level {} of frame t={} c={} z={}: the bytes were "
                   "damaged in transit",
                   meta.cy(), meta.cx(), meta.level(), frame.t(), frame.c(), frame.z());
    }
    auto header = codec::Inspect(bytes);
    if (!header.ok()) {
      return Error(StatusCode::kDataLoss, "chunk ({}, {}) of level {} of frame t={} c={} z={}: {}", meta.cy(),
                   meta.cx(), meta.level(), frame.t(), frame.c(), frame.z(), header.status().message());
    }
    if (header->nbytes != shape.chunk_pixels() * elem || header->typesize != elem) {
      return Error(StatusCode::kDataLoss,
                   "chunk ({}, {}) of level {} of frame t={} c={} z={} holds {} bytes of {}-byte elements; the "
                   "plan's chunks are {} bytes of {} at that level",
                   meta.cy(), meta.cx(), meta.level(), frame.t(), frame.c(), frame.z(), header->nbytes,
                   header->typesize, shape.chunk_pixels() * elem, DtypeName(plan.dtype));
    }
  }
  return OkStatus();
}

wire::Limits IngestLimits(const ScanPlan& plan, uint64_t window_bytes) {
  // A Blosc buffer is at most its contents plus a 16-byte header; a frame's header holds
  // ~20 bytes per chunk. The margin covers both. A frame may carry its zoom levels' chunks.
  const uint32_t parts = ChunksWithLevels(plan);
  const uint64_t part = std::max<uint64_t>(plan.chunk_bytes() + 4096, 64 * uint64_t{parts} + 4096);
  const uint64_t queued = std::clamp<uint64_t>(window_bytes / std::max<uint64_t>(plan.chunk_bytes(), 1) + 64, 256, 1 << 20);
  return {.max_part_bytes = part, .max_parts = parts, .max_queued_parts = static_cast<int>(queued)};
}

uint64_t PayloadBytes(const std::vector<zmq::message_t>& payload) {
  uint64_t n = 0;
  for (const auto& m : payload) n += m.size();
  return n;
}

void Refuse(const Status& status, proto::IngestMessage* reply) { *reply = MakeFault(status, false, nullptr); }

proto::IngestMessage MakeFault(const Status& status, bool fatal, const uint64_t* frame_index) {
  proto::IngestMessage m;
  m.set_version(wire::kProtocolVersion);
  auto* f = m.mutable_fault();
  wire::ToProto(status, f->mutable_status());
  f->set_fatal(fatal);
  if (frame_index != nullptr) {
    f->set_has_frame(true);
    f->set_frame_index(*frame_index);
  }
  return m;
}

}  // namespace tessera::ingest
