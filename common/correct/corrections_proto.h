// The corrections' bridge to the wire protocol (proto ChannelCorrections): include from .cc
// files only (it pulls in protobuf). What comes from a message is checked by CheckCorrections
// before it is used.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include "common/correct/corrections.h"
#include "proto/tessera.pb.h"

namespace tessera::correct {

ChannelCorrections FromProto(const proto::ChannelCorrections& p);
void ToProto(const ChannelCorrections& c, proto::ChannelCorrections* p);
SlideCorrections FromProto(const google::protobuf::RepeatedPtrField<proto::ChannelCorrections>& p);
void ToProto(const SlideCorrections& c, google::protobuf::RepeatedPtrField<proto::ChannelCorrections>* p);

}  // namespace tessera::correct
