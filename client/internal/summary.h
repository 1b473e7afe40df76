// SlideSummary from its protobuf form. Private to client/.
#pragma once

#include "client/client.h"
#include "proto/tessera.pb.h"

namespace tessera::internal {

SlideSummary SummaryFromProto(const proto::SlideSummary& p);

/// Loads TESSERA_CREDENTIAL once per process, unless the process holds keys already; what
/// became of it (OK when unset).
Status LoadEnvCredential();

}  // namespace tessera::internal
