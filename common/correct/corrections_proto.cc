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

Result<DestripeOptions> FromProto(const proto::DestripeParams& p) {
  TESSERA_ASSIGN_OR_RETURN(const DestripeMethod method, DestripeMethodNamed(p.method()));
  DestripeOptions o{.method = method, .along_y = p.along_y(), .sigma_foreground = p.sigma_foreground(),
                    .sigma_background = p.sigma_background(), .level = p.level(), .wavelet = p.wavelet(),
                    .threshold = p.threshold(), .crossover = p.crossover(), .artifact_length = p.artifact_length(),
                    .background_window = p.background_window(), .percentile = p.percentile(),
                    .lightsheet_vs_background = p.lightsheet_vs_background()};
  TESSERA_RETURN_IF_ERROR(CheckDestripeOptions(o));
  return o;
}

void ToProto(const DestripeOptions& o, proto::DestripeParams* p) {
  p->set_method(DestripeMethodName(o.method));
  p->set_along_y(o.along_y);
  p->set_sigma_foreground(o.sigma_foreground);
  p->set_sigma_background(o.sigma_background);
  p->set_level(o.level);
  p->set_wavelet(o.wavelet);
  p->set_threshold(o.threshold);
  p->set_crossover(o.crossover);
  p->set_artifact_length(o.artifact_length);
  p->set_background_window(o.background_window);
  p->set_percentile(o.percentile);
  p->set_lightsheet_vs_background(o.lightsheet_vs_background);
}

}  // namespace tessera::correct
