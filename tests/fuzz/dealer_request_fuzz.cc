// libFuzzer target: proto::DealerRequest, the header frame any peer sends to the dealer
// (parsing only: the handlers are being rewritten).
#include <cstddef>
#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "proto/tessera.pb.h"

// Protobuf logs every string field that is not UTF-8: silenced, or the log is all a run does.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (size_t{16} << 20)) return 0;  // wire::kRequestLimits: larger parts never arrive
  tessera::proto::DealerRequest request;
  if (request.ParseFromArray(data, static_cast<int>(size))) {
    std::string again;
    if (!request.SerializeToString(&again)) __builtin_trap();
  }
  return 0;
}
