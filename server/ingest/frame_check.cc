#include "server/ingest/frame_check.h"

#include <algorithm>

#include "common/codec/codec.h"
#include "common/wire/wire.h"

namespace tessera::ingest {

Status CheckFrame(const ScanPlan& plan, const std::string& slide_id, const proto::Frame& frame,
                  const std::vector<zmq::message_t>& payload, Checksums checksums) {
  if (frame.slide_id() != slide_id) {
    return Error(StatusCode::kNotFound, "frame is for slide '{}', this is slide {}",
                 frame.slide_id(), slide_id);
  }
  TESSERA_RETURN_IF_ERROR(plan.CheckKey({frame.t(), frame.c(), frame.z()}));
  const size_t expected = plan.chunks_per_frame();
  if (static_cast<size_t>(frame.chunks_size()) != expected || payload.size() != expected) {
    return Error(StatusCode::kInvalidArgument,
                 "frame t={} c={} z={} has {} chunk headers and {} payload frames; the plan has {} "
                 "chunks per frame",
                 frame.t(), frame.c(), frame.z(), frame.chunks_size(), payload.size(), expected);
  }
  std::vector<bool> seen(expected, false);
  for (size_t i = 0; i < expected; ++i) {
    const proto::ChunkMeta& meta = frame.chunks(static_cast<int>(i));
    if (meta.cy() >= plan.chunks_y() || meta.cx() >= plan.chunks_x()) {
      return Error(StatusCode::kOutOfRange, "chunk ({}, {}) is outside the {}x{} chunk grid",
                   meta.cy(), meta.cx(), plan.chunks_y(), plan.chunks_x());
    }
    const size_t slot = size_t{meta.cy()} * plan.chunks_x() + meta.cx();
    if (seen[slot]) {
      return Error(StatusCode::kInvalidArgument, "chunk ({}, {}) appears twice in frame t={} c={} z={}",
                   meta.cy(), meta.cx(), frame.t(), frame.c(), frame.z());
    }
    seen[slot] = true;
    const auto bytes = wire::Bytes(payload[i]);
    if (checksums == Checksums::kVerify && codec::Checksum(bytes) != meta.xxh64()) {
      return Error(StatusCode::kDataLoss,
                   "checksum mismatch in chunk ({}, {}) of frame t={} c={} z={}: the bytes were "
                   "damaged in transit",
                   meta.cy(), meta.cx(), frame.t(), frame.c(), frame.z());
    }
    auto header = codec::Inspect(bytes);
    if (!header.ok()) {
      return Error(StatusCode::kDataLoss, "chunk ({}, {}) of frame t={} c={} z={}: {}", meta.cy(),
                   meta.cx(), frame.t(), frame.c(), frame.z(), header.status().message());
    }
    if (header->nbytes != plan.chunk_bytes() || header->typesize != DtypeSize(plan.dtype)) {
      return Error(StatusCode::kDataLoss,
                   "chunk ({}, {}) of frame t={} c={} z={} holds {} bytes of {}-byte elements; the "
                   "plan's chunks are {} bytes of {}",
                   meta.cy(), meta.cx(), frame.t(), frame.c(), frame.z(), header->nbytes,
                   header->typesize, plan.chunk_bytes(), DtypeName(plan.dtype));
    }
  }
  return OkStatus();
}

wire::Limits IngestLimits(const ScanPlan& plan, uint64_t window_bytes) {
  // A Blosc buffer is at most its contents plus a 16-byte header; a frame's header holds
  // ~20 bytes per chunk. The margin covers both.
  const uint64_t part = std::max<uint64_t>(plan.chunk_bytes() + 4096, 64 * uint64_t{plan.chunks_per_frame()} + 4096);
  const uint64_t queued = std::clamp<uint64_t>(window_bytes / std::max<uint64_t>(plan.chunk_bytes(), 1) + 64, 256, 1 << 20);
  return {.max_part_bytes = part, .max_parts = plan.chunks_per_frame(), .max_queued_parts = static_cast<int>(queued)};
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
