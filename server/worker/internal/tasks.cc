#include "server/worker/internal/tasks.h"

#include <future>
#include <vector>

#include "common/stitch/register.h"

namespace tessera::worker::internal {
namespace {

// A window of one plane of a field of view as uint16 (uint8 slides widened).
struct Plane {
  std::vector<uint16_t> pixels;
  stitch::ImageView view;
};

Result<Plane> ToPlane(const Array& a) {
  Plane p;
  if (a.dtype == Dtype::kUint16) {
    const auto v = a.values<uint16_t>();
    p.pixels.assign(v.begin(), v.end());
  } else {
    const auto v = a.values<uint8_t>();
    p.pixels.assign(v.begin(), v.end());
  }
  p.view = {p.pixels.data(), a.shape[3], a.shape[2], 0};
  return p;
}

Result<proto::TaskResult> Register(TaskContext& context, const proto::RegisterTask& t) {
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan* plan, context.Plan(t.slide()));
  const auto tiles = static_cast<uint32_t>(plan->tiles.size());
  if (t.a() >= tiles || t.b() >= tiles || t.a() == t.b()) {
    return Error(StatusCode::kInvalidArgument, "register {} against {}: slide {} has tiles 0 to {}", t.b(), t.a(),
                 t.slide(), tiles - 1);
  }
  if (t.channel() >= plan->channels.size() || t.z() >= plan->z_planes) {
    return Error(StatusCode::kInvalidArgument, "channel {} z {}: slide {} has {} channels and {} planes", t.channel(),
                 t.z(), t.slide(), plan->channels.size(), plan->z_planes);
  }
  const int64_t w = plan->width, h = plan->height;
  const auto [wa, wb] = stitch::OverlapWindows(w, h, w, h, t.nominal_dx(), t.nominal_dy(), static_cast<int>(t.max_shift()));
  if (wa.empty() || wb.empty()) {
    return Error(StatusCode::kInvalidArgument, "tiles {} and {} at ({}, {}) cannot overlap within {} px", t.a(), t.b(),
                 t.nominal_dx(), t.nominal_dy(), t.max_shift());
  }
  auto read = [&](uint32_t tile, const stitch::Rect& r) {
    return context.client().ReadTileAsync({.slide = t.slide(), .tile = tile, .level = 0, .channels = {t.channel()},
                                           .z_begin = t.z(), .z_end = t.z() + 1, .x = r.x0, .y = r.y0,
                                           .width = r.width(), .height = r.height()});
  };
  auto fa = read(t.a(), wa), fb = read(t.b(), wb);
  TESSERA_ASSIGN_OR_RETURN(Array aa, fa.get());
  TESSERA_ASSIGN_OR_RETURN(Array ab, fb.get());
  if (aa.missing_chunks > 0 || ab.missing_chunks > 0) {
    return Error(StatusCode::kUnavailable, "tiles {} and {} of slide {} have not landed yet", t.a(), t.b(), t.slide());
  }
  TESSERA_ASSIGN_OR_RETURN(Plane pa, ToPlane(aa));
  TESSERA_ASSIGN_OR_RETURN(Plane pb, ToPlane(ab));
  // In the windows' pixels b's origin moves by the windows' corners.
  const double gx = static_cast<double>(wb.x0 - wa.x0), gy = static_cast<double>(wb.y0 - wa.y0);
  stitch::RegisterOptions o;
  o.max_shift = static_cast<int>(t.max_shift());
  TESSERA_ASSIGN_OR_RETURN(stitch::Link link,
                           stitch::RegisterPair(pa.view, pb.view, t.nominal_dx() + gx, t.nominal_dy() + gy, o));
  proto::TaskResult result;
  proto::LinkResult* l = result.mutable_link();
  l->set_a(t.a());
  l->set_b(t.b());
  l->set_dx(link.dx - gx);
  l->set_dy(link.dy - gy);
  l->set_ncc(link.ncc);
  l->set_margin(link.margin);
  l->set_texture(link.texture);
  l->set_reliable(link.reliable);
  l->set_reason(link.reason);
  return result;
}

}  // namespace

Result<const ScanPlan*> TaskContext::Plan(const std::string& slide) {
  if (auto it = plans_.find(slide); it != plans_.end()) return &it->second;
  TESSERA_ASSIGN_OR_RETURN(SlideSummary s, client_.Info(slide));
  return &plans_.emplace(slide, std::move(s.plan)).first->second;
}

Result<proto::TaskResult> RunTask(TaskContext& context, const proto::TaskRequest& request) {
  switch (request.body_case()) {
    case proto::TaskRequest::kRegisterPair: return Register(context, request.register_pair());
    default:
      return Error(StatusCode::kInvalidArgument, "service {}: this worker has no task of that kind", request.service());
  }
}

}  // namespace tessera::worker::internal
