#include "client/client.h"

#include "common/correct/corrections_proto.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <mutex>

#include "client/internal/summary.h"
#include "common/security/security.h"
#include "common/wire/rpc.h"

namespace tessera {
namespace {

}  // namespace

namespace internal {

StitchState StitchFromProto(const proto::StitchState& p) {
  return {p.slide_id(), p.state(),     p.stage(),  p.done(),        p.total(),          p.error(),
          p.report_json(), p.register_s(), p.solve_s(), p.fuse_s(), p.fused_bytes(), p.peak_rss_bytes(),
          p.registered_while_acquiring(), p.deskew_s(), p.deskewed_while_acquiring()};
}


SlideSummary SummaryFromProto(const proto::SlideSummary& p) {
  SlideSummary s;
  s.id = p.slide_id();
  s.name = p.name();
  s.state = p.state();
  s.path = p.path();
  s.frames_total = p.frames_total();
  s.frames_written = p.frames_written();
  s.bytes_stored = p.bytes_stored();
  s.created_unix_ms = p.created_unix_ms();
  s.proxy_endpoint = p.proxy_endpoint();
  s.proxy_local_endpoint = p.proxy_local_endpoint();
  s.host = p.host();
  s.proxy_pid = p.proxy_pid();
  s.writer_pid = p.writer_pid();
  s.fifo_held_bytes = p.fifo_held_bytes();
  s.fifo_window_bytes = p.fifo_window_bytes();
  s.frames_received = p.frames_received();
  s.ack_latency_counts.assign(p.ack_latency_counts().begin(), p.ack_latency_counts().end());
  s.ack_latency_sum_ms = p.ack_latency_sum_ms();
  s.error = p.error();
  if (auto plan = PlanFromJson(p.plan_json()); plan.ok()) s.plan = *std::move(plan);
  for (int i = 0; i + 1 < p.positions_size(); i += 2) s.positions.push_back({p.positions(i), p.positions(i + 1)});
  s.positions_z.assign(p.positions_z().begin(), p.positions_z().end());
  s.stitched_unix_ms = p.stitched_unix_ms();
  if (p.has_stitch()) s.stitch = StitchFromProto(p.stitch());
  s.corrections = correct::FromProto(p.corrections());  // checked by the manager against the plan
  return s;
}

}  // namespace internal

namespace {

std::mutex credential_mu;
std::string credential_endpoint;  // of the credential in use

// `credential`: how loading the process's credential went.
Result<proto::ManagerReply> Rpc(const Status& credential, const std::string& server, int timeout_ms,
                                proto::ManagerRequest& req) {
  TESSERA_RETURN_IF_ERROR(credential);
  return wire::Ask<proto::ManagerReply>(server, req, timeout_ms);
}

}  // namespace

std::string DefaultServer() {
  const char* env = std::getenv("TESSERA_SERVER");
  if (env != nullptr && *env != 0) return env;
  (void)internal::LoadEnvCredential();
  std::lock_guard lock(credential_mu);
  return credential_endpoint.empty() ? kDefaultServer : credential_endpoint;
}

Status UseCredential(const std::string& path) {
  std::lock_guard lock(credential_mu);
  if (path.empty()) {
    wire::Security sec = wire::GetSecurity();
    sec.client_public = sec.client_secret = sec.server_key = sec.credential = "";
    wire::SetSecurity(sec);
    credential_endpoint.clear();
    return OkStatus();
  }
  TESSERA_ASSIGN_OR_RETURN(security::Credential c, security::ReadCredential(path));
  security::UseCredential(c, path);
  credential_endpoint = c.endpoint;
  return OkStatus();
}

namespace internal {

Status LoadEnvCredential() {
  static std::once_flag once;
  static Status loaded;
  std::call_once(once, [] {
    const char* env = std::getenv("TESSERA_CREDENTIAL");
    // A process that already holds keys (a server of the stack, or one that chose a
    // credential) keeps them.
    if (env == nullptr || *env == 0 || !wire::GetSecurity().client_public.empty()) return;
    loaded = UseCredential(env);
    if (!loaded.ok()) loaded = Error(loaded.code(), "TESSERA_CREDENTIAL: {}", loaded.message());
  });
  return loaded;
}

}  // namespace internal

Status Client::IssueCredential(const std::string& name, const std::string& role, const std::string& path) {
  proto::ManagerRequest req;
  req.mutable_issue_credential()->set_name(name);
  req.mutable_issue_credential()->set_role(role);
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  const proto::CredentialInfo& c = reply.credential();
  TESSERA_ASSIGN_OR_RETURN(security::Role r, security::ParseRole(c.role()));
  return security::WriteCredential(
      path, {c.name(), r, c.endpoint(), c.server_key(), {c.public_key(), c.secret_key()}});
}

Status Client::RevokeCredential(const std::string& name) {
  proto::ManagerRequest req;
  req.mutable_revoke_credential()->set_name(name);
  return Rpc(credential_, server_, options_.timeout_ms, req).status();
}

Result<std::vector<CredentialEntry>> Client::ListCredentials() {
  proto::ManagerRequest req;
  req.mutable_list_credentials();
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  std::vector<CredentialEntry> out;
  for (const auto& c : reply.credentials().credentials()) out.push_back({c.name(), c.role(), c.revoked()});
  return out;
}

std::string SummaryToJson(const SlideSummary& s) {
  nlohmann::json j;
  j["id"] = s.id;
  j["name"] = s.name;
  j["state"] = s.state;
  j["path"] = s.path;
  j["frames_total"] = s.frames_total;
  j["frames_written"] = s.frames_written;
  j["bytes_stored"] = s.bytes_stored;
  j["created_unix_ms"] = s.created_unix_ms;
  if (!s.error.empty()) j["error"] = s.error;
  if (!s.proxy_endpoint.empty()) {
    j["proxy"] = {{"endpoint", s.proxy_endpoint}, {"pid", s.proxy_pid}};
    if (!s.proxy_local_endpoint.empty()) j["proxy"]["local_endpoint"] = s.proxy_local_endpoint;
    j["writer"] = {{"pid", s.writer_pid}};
  }
  const ScanPlan& p = s.plan;
  j["shape"] = {{"tiles", p.tiles.size()}, {"channels", p.channels.size()},
                {"z", p.z_planes}, {"height", p.height}, {"width", p.width}};
  j["dtype"] = DtypeName(p.dtype);
  j["channels"] = p.channels;
  j["pixel_size_um"] = p.pixel_size_um;
  j["chunk"] = {p.chunk_y, p.chunk_x};
  j["codec"] = codec::CompressorName(p.codec.compressor);
  j["header"] = nlohmann::json::parse(p.header_json, nullptr, false);
  if (p.oblique) {  // an oblique light-sheet scan, and the deskewed view its tiles get
    const ObliqueScan& o = *p.oblique;
    j["oblique"] = {{"angle_deg", o.angle_deg}, {"stage_step_um", o.stage_step_um}, {"scan_direction", o.scan_direction},
                    {"rotate_90", o.rotate_90}, {"flip_ud", o.flip_ud}};
    if (auto g = deskew::Plan(DeskewParamsOf(p), p.width, p.height, p.z_planes); g.ok()) {
      j["oblique"]["deskewed"] = {{"shape", {{"z", g->planes}, {"height", g->height}, {"width", g->width}}},
                                  {"voxel_um", g->voxel_um},
                                  {"shear_px_per_plane", g->shear},
                                  {"copy", g->copy}};
    }
  }
  auto& tiles = j["tiles"] = nlohmann::json::array();
  const bool stitched = s.positions.size() == p.tiles.size();
  if (stitched) j["stitched_unix_ms"] = s.stitched_unix_ms;
  if (!s.stitch.state.empty()) {
    j["stitch"] = {{"state", s.stitch.state}, {"stage", s.stitch.stage}, {"done", s.stitch.done},
                   {"total", s.stitch.total}};
    if (!s.stitch.error.empty()) j["stitch"]["error"] = s.stitch.error;
  }
  for (size_t i = 0; i < p.tiles.size(); ++i) {
    const auto& t = p.tiles[i];
    const double x = stitched ? s.positions[i][0] : t.x, y = stitched ? s.positions[i][1] : t.y;
    const double z = s.positions_z.size() == p.tiles.size() ? s.positions_z[i] : t.z;
    tiles.push_back({{"index", i}, {"name", t.name}, {"x", x}, {"y", y}, {"z", z}, {"stage_x", t.x},
                     {"stage_y", t.y}, {"stage_z", t.z}, {"width", p.width}, {"height", p.height},
                     {"planes", p.z_planes}});
    for (const auto& c : s.corrections.channels) {  // each channel's gain for the tile, if solved
      if (i < c.gains.size()) tiles.back()["gains"][std::to_string(c.channel)] = c.gains[i];
    }
  }
  // What a stitch estimated (flat fields, dark levels, tile gains); [] when none.
  j["corrections"] = nlohmann::json::parse(correct::CorrectionsJson(s.corrections));
  return j.dump(2);
}


Result<SlideSummary> Client::OpenSlide(const ScanPlan& plan) {
  proto::ManagerRequest req;
  req.mutable_open_slide()->set_plan_json(PlanToJson(plan));
  // Opening starts two processes: allow for a loaded machine.
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, std::max(options_.timeout_ms, 30000), req));
  return internal::SummaryFromProto(reply.slide());
}

Result<SlideSummary> Client::StoreStitch(const std::string& id, const std::vector<std::array<double, 2>>& positions,
                                         const std::string& report_json, const std::vector<double>& z,
                                         const correct::SlideCorrections& corrections) {
  proto::ManagerRequest req;
  auto* st = req.mutable_store_stitch();
  st->set_slide_id(id);
  for (const auto& p : positions) {
    st->add_positions(p[0]);
    st->add_positions(p[1]);
  }
  st->set_report_json(report_json);
  for (double v : z) st->add_z(v);
  correct::ToProto(corrections, st->mutable_corrections());
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  return internal::SummaryFromProto(reply.slide());
}


Result<StitchState> Client::StartStitch(const StitchRequest& r) {
  proto::ManagerRequest req;
  auto* st = req.mutable_stitch_slide();
  st->set_slide_id(r.slide);
  st->set_channel(r.channel);
  st->set_z(r.z);
  st->set_max_shift(r.max_shift);
  st->set_no_store(!r.store);
  st->set_flat_field(r.flat_field);
  st->set_normalize(r.normalize);
  if (r.dark >= 0) st->set_dark(r.dark);
  if (r.destripe) correct::ToProto(*r.destripe, st->mutable_destripe());
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, std::max(options_.timeout_ms, 30000), req));
  return internal::StitchFromProto(reply.stitch());
}

Result<StitchState> Client::GetStitch(const std::string& id) {
  proto::ManagerRequest req;
  req.mutable_get_stitch()->set_slide_id(id);
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  return internal::StitchFromProto(reply.stitch());
}

Result<SlideSummary> Client::CloseSlide(const std::string& id) {
  proto::ManagerRequest req;
  req.mutable_close_slide()->set_slide_id(id);
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, std::max(options_.timeout_ms, 60000), req));
  return internal::SummaryFromProto(reply.slide());
}

Result<SlideSummary> Client::Info(const std::string& id) {
  proto::ManagerRequest req;
  req.mutable_get_slide()->set_slide_id(id);
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  return internal::SummaryFromProto(reply.slide());
}

Result<std::vector<SlideSummary>> Client::List() {
  proto::ManagerRequest req;
  req.mutable_list_slides();
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  std::vector<SlideSummary> out;
  for (const auto& s : reply.slides().slides()) out.push_back(internal::SummaryFromProto(s));
  return out;
}

Result<std::map<std::string, std::string>> Client::Endpoints() {
  proto::ManagerRequest req;
  req.mutable_get_endpoints();
  TESSERA_ASSIGN_OR_RETURN(auto reply, Rpc(credential_, server_, options_.timeout_ms, req));
  return std::map<std::string, std::string>(reply.endpoints().endpoints().begin(),
                                            reply.endpoints().endpoints().end());
}

}  // namespace tessera
