// libFuzzer target: what a scanner sends a slide proxy. The input is
//
//   byte 0        flags: bit 0 set = rewrite each chunk's checksum to match its payload,
//                 so that mutated payloads reach the Blosc header checks behind it
//   bytes 1..2    L, little-endian
//   L bytes       a proto::IngestMessage (the header frame)
//   the rest      payload frames, each a little-endian 2-byte length and its bytes
//
// When the message holds a Frame, ingest::CheckFrame judges it against a small fixed plan
// (slide "s-1": 2 tiles x 2 channels x 2 planes of 64 x 48 uint16 in 32 x 32 chunks, so 4
// chunks a frame). tests/fuzz/fuzz_seeds.cc writes seeds in this layout.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <google/protobuf/stubs/logging.h>
#include <zmq.hpp>

#include "common/codec/codec.h"
#include "common/plan/scan_plan.h"
#include "proto/tessera.pb.h"
#include "server/ingest/frame_check.h"

namespace {

const tessera::ScanPlan& Plan() {
  static const tessera::ScanPlan plan = [] {
    tessera::ScanPlan p;
    p.name = "fuzz";
    p.width = 64;
    p.height = 48;
    p.chunk_y = p.chunk_x = 32;
    p.channels = {"a", "b"};
    p.z_planes = 2;
    p.tiles = {{.name = "t0"}, {.name = "t1", .x = 60}};
    if (!p.Validate().ok()) __builtin_trap();
    return p;
  }();
  return plan;
}

}  // namespace

// Protobuf logs every string field that is not UTF-8: silenced, or the log is all a run does.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  if (size < 3) return 0;
  const bool fix_checksums = (data[0] & 1) != 0;
  const size_t header_len = std::min<size_t>(data[1] | size_t{data[2]} << 8, size - 3);
  proto::IngestMessage message;
  if (!message.ParseFromArray(data + 3, static_cast<int>(header_len)) || !message.has_frame()) return 0;
  std::vector<zmq::message_t> payload;
  for (size_t at = 3 + header_len; at < size && payload.size() < 64;) {
    const size_t len = at + 1 < size ? std::min<size_t>(data[at] | size_t{data[at + 1]} << 8, size - at - 2) : 0;
    at += 2;
    payload.emplace_back(data + std::min(at, size), len);
    at += len;
  }
  proto::Frame* frame = message.mutable_frame();
  if (fix_checksums) {
    for (int i = 0; i < frame->chunks_size() && static_cast<size_t>(i) < payload.size(); ++i) {
      const auto& m = payload[static_cast<size_t>(i)];
      frame->mutable_chunks(i)->set_xxh64(codec::Checksum({static_cast<const uint8_t*>(m.data()), m.size()}));
    }
  }
  const Status s = ingest::CheckFrame(Plan(), "s-1", *frame, payload);
  // CheckFrame's contract names its codes; it checks Blosc headers, not the compressed
  // bodies (the reader finds those), so an accepted frame is not decompressed here.
  const StatusCode c = s.code();
  if (!s.ok() && c != StatusCode::kNotFound && c != StatusCode::kOutOfRange && c != StatusCode::kInvalidArgument &&
      c != StatusCode::kDataLoss) {
    __builtin_trap();
  }
  return 0;
}
