// The corrections' bridge to the wire protocol (proto ChannelCorrections): include from .cc
// files only (it pulls in protobuf). What comes from a message is checked by CheckCorrections
// before it is used.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include "common/correct/corrections.h"
#include "common/correct/destripe.h"
#include "proto/tessera.pb.h"

namespace tessera::correct {

ChannelCorrections FromProto(const proto::ChannelCorrections& p);
void ToProto(const ChannelCorrections& c, proto::ChannelCorrections* p);
SlideCorrections FromProto(const google::protobuf::RepeatedPtrField<proto::ChannelCorrections>& p);
void ToProto(const SlideCorrections& c, google::protobuf::RepeatedPtrField<proto::ChannelCorrections>* p);
/// INVALID_ARGUMENT for an unknown method or options out of range (CheckDestripeOptions).
Result<DestripeOptions> FromProto(const proto::DestripeParams& p);
void ToProto(const DestripeOptions& o, proto::DestripeParams* p);

}  // namespace tessera::correct
