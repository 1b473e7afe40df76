#include "common/correct/corrections_proto.h"

namespace tessera::correct {

ChannelCorrections FromProto(const proto::ChannelCorrections& p) {
  ChannelCorrections c{.channel = p.channel(), .dark = p.dark(), .gains = {p.gains().begin(), p.gains().end()}};
  if (p.has_flat_field()) {
    const auto& f = p.flat_field();
    c.flat = FlatField{.width = f.width(), .height = f.height(), .grid_x = f.grid_x(), .grid_y = f.grid_y(),
                       .gain = {f.gain().begin(), f.gain().end()}, .dark = p.dark()};
  }
  return c;
}

void ToProto(const ChannelCorrections& c, proto::ChannelCorrections* p) {
  p->set_channel(c.channel);
  p->set_dark(c.dark);
  for (double g : c.gains) p->add_gains(g);
  if (c.flat) {
    auto* f = p->mutable_flat_field();
    f->set_width(c.flat->width);
    f->set_height(c.flat->height);
    f->set_grid_x(c.flat->grid_x);
    f->set_grid_y(c.flat->grid_y);
    for (float g : c.flat->gain) f->add_gain(g);
  }
}

SlideCorrections FromProto(const google::protobuf::RepeatedPtrField<proto::ChannelCorrections>& p) {
  SlideCorrections s;
  for (const auto& c : p) s.channels.push_back(FromProto(c));
  return s;
}

void ToProto(const SlideCorrections& s, google::protobuf::RepeatedPtrField<proto::ChannelCorrections>* p) {
  for (const auto& c : s.channels) ToProto(c, p->Add());
}

}  // namespace tessera::correct
