// SlideSummary from its protobuf form. Private to client/.
#pragma once

#include "client/client.h"
#include "proto/tessera.pb.h"

namespace tessera::internal {

SlideSummary SummaryFromProto(const proto::SlideSummary& p);

}  // namespace tessera::internal
