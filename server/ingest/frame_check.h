// Checks of an incoming frame against its slide's scan plan, shared by the slide proxy
// and the slide writer (each checks what it is handed: the proxy before it acknowledges
// holding a frame, the writer before it stores one).
//
// Includes generated protobuf and ZeroMQ headers: include from .cc files only.
//
//   Status s = ingest::CheckFrame(plan, slide_id, header.frame(), message.payload);  // verifies checksums
//   if (!s.ok()) ReplyFault(s);
#pragma once

#include <vector>

#include <zmq.hpp>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"
#include "common/wire/wire.h"
#include "proto/tessera.pb.h"

namespace tessera::ingest {

/// Whether CheckFrame reads every byte to compare the chunks' checksums. The writer, which
/// stores the bytes, does; the proxy checks the rest and leaves the bytes to the writer (a
/// damaged chunk is refused all the same, by the writer, and the proxy forwards the fault).
enum class Checksums { kVerify, kSkip };

/// Chunks of a frame with every zoom level: level 0's and those of levels 1.. .
uint32_t ChunksWithLevels(const ScanPlan& plan);
/// Whether a frame CheckFrame accepted carries its zoom levels (made by the scanner).
bool CarriesLevels(const ScanPlan& plan, const proto::Frame& frame);

/// OK when the frame belongs to `slide_id`, lies inside the plan, carries exactly the
/// plan's chunks of level 0, or of every level (each once), and every chunk's Blosc header
/// (its level's chunk size; and checksum, unless skipped) match. Otherwise the specific error: NOT_FOUND (other slide), OUT_OF_RANGE (frame or chunk
/// outside the plan), INVALID_ARGUMENT (chunk list), DATA_LOSS (checksum, Blosc header,
/// decompressed size or type size).
Status CheckFrame(const ScanPlan& plan, const std::string& slide_id, const proto::Frame& frame,
                  const std::vector<zmq::message_t>& payload, Checksums checksums = Checksums::kVerify);

/// What an ingest socket (the proxy's front, the writer's) takes from one peer: parts no
/// larger than a compressed chunk or a frame's header, a frame's chunks per message, and
/// about `window_bytes` queued (the scanner's credit), so that a hostile peer cannot make it
/// buffer more than a well-behaved one.
wire::Limits IngestLimits(const ScanPlan& plan, uint64_t window_bytes);

/// Total payload bytes of a frame.
uint64_t PayloadBytes(const std::vector<zmq::message_t>& payload);

/// Builds an IngestMessage carrying a Fault.
proto::IngestMessage MakeFault(const Status& status, bool fatal, const uint64_t* frame_index);

/// How an ingest endpoint answers a message it refused (wire::Server's Policy::refuse).
void Refuse(const Status& status, proto::IngestMessage* reply);

}  // namespace tessera::ingest
