#include "server/manager/slide_manager.h"

#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

#include "common/correct/corrections_proto.h"
#include "common/catalog/catalog.h"
#include "common/durable/durable.h"
#include "common/log/log.h"
#include "common/plan/scan_plan.h"
#include "common/security/security.h"
#include "common/storage/slide_file.h"
#include "common/storage/stitch_file.h"
#include "common/wire/listener.h"
#include "common/wire/rpc.h"
#include "server/supervisor/children.h"

namespace tessera::manager {
namespace {

namespace fs = std::filesystem;
using catalog::SlideRecord;

constexpr int kReadyTimeoutMs = 20000;
// A slide's derived views, slide files of their own beside it, served as slide ids.
constexpr const char* kFusedSuffix = ":fused";        // the fused image of a stitched slide
constexpr const char* kDeskewedSuffix = ":deskewed";  // an oblique scan's deskewed stacks
constexpr const char* kDestripedSuffix = ":destriped";  // every plane destriped (tessera stitch --destripe)
constexpr int kStopGraceMs = 30000;
// A writer finishes the zoom levels of what it stored, syncs and closes its file on SIGTERM.
constexpr int kWriterStopGraceMs = 300000;
constexpr int kStatsTimeoutMs = 300;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using Call = wire::Incoming<proto::ManagerRequest>;

// An acquiring slide's proxy and writer. Each is started, restarted and stopped without the
// manager waiting for it: requests that must wait for them (an open, a close) are kept here
// and answered when the children are ready or have ended.
struct Running {
  pid_t writer = -1, proxy = -1;  // alive: starting, serving or stopping
  bool writer_ready = false, proxy_ready = false;
  int restarts = 0;
  bool stopping = false;    // being stopped: never restarted
  bool closing = false;     // stopped for a close, which completes once both have ended
  std::vector<Call> opens;  // answered once both serve
  std::vector<Call> closes; // answered once both have ended and the file is read
  // The proxy's TCP socket, held while the slide runs: a restarted proxy serves on it, and
  // a scanner's reconnection waits in its backlog meanwhile.
  std::optional<wire::Listener> proxy_socket;
};

// The highest slide number among the files in `dir` ("s000042.h5", "s000042.plan.json", ...).
uint64_t HighestIdOnDisk(const std::string& dir) {
  uint64_t highest = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 2 || name[0] != 's') continue;
    uint64_t n = 0;
    const char* end = name.data() + name.size();
    const auto [at, ec] = std::from_chars(name.data() + 1, end, n);
    if (ec == std::errc() && at != name.data() + 1 && (at == end || *at == '.')) highest = std::max(highest, n);
  }
  return highest;
}

}  // namespace

struct SlideManager::Impl {
  ManagerOptions options;
  std::unique_ptr<catalog::Catalog> catalog;
  std::optional<wire::Server<proto::ManagerRequest, proto::ManagerReply>> server;
  std::string endpoint;
  std::map<std::string, Running> running;  // acquiring slides
  supervisor::Children kids;  // every proxy, writer and stitcher
  std::shared_ptr<spdlog::logger> log = log::Get("manager");
  std::optional<zmq::socket_t> events;  // to the dealer: positions changed (connected at start)
  std::map<std::string, proto::StitchState> stitches;  // the last stitch of each slide, by id
  std::map<std::string, proto::StitchRequest> stitch_requests;  // what started it (for a restart)
  std::map<std::string, int> stitch_restarts;
  std::unique_ptr<security::KeyStore> keys;  // a secured stack's
  std::unique_ptr<security::ZapHandler> zap;
  std::string admin_credential;
  bool stopping_stack = false;  // Run's stop came: children are ending, no new work

  std::string SlidesDir() const { return (fs::path(options.data_dir) / "slides").string(); }
  std::string PlanPath(const std::string& id) const { return SlidesDir() + "/" + id + ".plan.json"; }

  std::vector<std::string> WriterArgs(const SlideRecord& r, const std::string& bind) const {
    std::vector<std::string> a{"serve", "writer", "--slide", r.id, "--file", r.path, "--plan",
                               PlanPath(r.id), "--bind", bind, "--sync-interval-ms",
                               std::to_string(options.sync_interval_ms), "--die-with-parent"};
    if (!options.fsync) a.push_back("--no-fsync");
    if (!options.events.empty()) a.insert(a.end(), {"--events", options.events});
    return a;
  }

  std::vector<std::string> ProxyArgs(const SlideRecord& r, const std::string& bind) const {
    std::vector<std::string> a{"serve", "proxy", "--slide", r.id, "--plan", PlanPath(r.id), "--bind", bind,
                               "--writer", r.writer_endpoint, "--fifo-bytes", std::to_string(options.fifo_bytes),
                               "--die-with-parent"};
    if (const std::string local = LocalDoor(r.id); !local.empty()) a.insert(a.end(), {"--local", local});
    return a;
  }

  // The port of a recorded "tcp://HOST:PORT" endpoint; 0 (any) for none.
  static int EndpointPort(const std::string& endpoint) {
    int port = 0;
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) return 0;
    const auto [at, ec] = std::from_chars(endpoint.data() + colon + 1, endpoint.data() + endpoint.size(), port);
    return ec == std::errc() && at == endpoint.data() + endpoint.size() ? port : 0;
  }

  // The proxy and writer of a slide always run on this host: a Unix socket between them
  // costs less than TCP. It lives in DATA/run, which only the service user may open (and in a
  // secured stack the proxy proves the stack's credential there too). Falls back to loopback
  // TCP when the path is too long for one.
  std::string RunDir() const { return (fs::path(options.data_dir) / "run").string(); }
  // A scanner on this host pushes through its proxy's Unix socket in DATA/ingest (reachable by
  // local users; a secured stack's proxy still asks for a scanner's credential): no TCP, no
  // encryption. None when the path is too long for a Unix socket.
  std::string IngestDir() const { return (fs::path(options.data_dir) / "ingest").string(); }
  std::string LocalDoor(const std::string& id) const {
    return wire::IpcEndpoint(fs::absolute(fs::path(IngestDir()) / (id + ".ipc")).string());
  }
  std::string WriterBind(const std::string& id) const {
    const std::string ipc = wire::IpcEndpoint(fs::absolute(fs::path(RunDir()) / (id + ".writer.ipc")).string());
    return ipc.empty() ? "tcp://127.0.0.1:0" : ipc;
  }

  // Starts (or restarts, on their recorded endpoints) whichever of a slide's writer and
  // proxy is not running: the writer first, the proxy once the writer serves. The opens
  // waiting on the slide are answered when both serve; a child that does not become ready
  // fails the slide.
  void StartChildren(const std::string& id) {
    auto rec = catalog->Get(id);
    if (!rec.ok()) return MarkFailed(id, rec.status());
    SlideRecord& r = *rec;
    Running& run = running[id];
    if (run.stopping) return;
    if (run.writer <= 0) {
      const bool fresh = r.writer_endpoint.empty();
      StartChild(id, &Running::writer, WriterArgs(r, fresh ? WriterBind(id) : r.writer_endpoint));
      return;
    }
    if (!run.writer_ready) return;  // the proxy follows once the writer serves
    if (run.proxy <= 0) {
      if (!run.proxy_socket) {  // where the slide's proxy listened before, if it ever did
        auto socket = wire::Listener::Open(options.child_host, EndpointPort(r.proxy_endpoint));
        if (!socket.ok()) return MarkFailed(id, socket.status());
        run.proxy_socket = std::move(*socket);
      }
      StartChild(id, &Running::proxy, ProxyArgs(r, run.proxy_socket->endpoint()), {&*run.proxy_socket});
      return;
    }
    if (!run.proxy_ready) return;
    log->info("slide={} proxy={} pid={} writer={} pid={}", id, r.proxy_endpoint, run.proxy, r.writer_endpoint,
              run.writer);
    if (run.opens.empty()) return;
    log->info("slide={} name={} opened frames={} path={}", r.id, r.name, r.frames_total, r.path);
    // The scanner starts once the open is answered: by then the live stitch is ready to
    // register the first pairs as they land.
    AutoStitch(r, [this, id] {
      auto it = running.find(id);
      auto rec = catalog->Get(id);
      if (it == running.end() || !rec.ok()) return;
      for (Call& call : std::exchange(it->second.opens, {})) {
        proto::ManagerReply reply;
        Summarize(*rec, reply.mutable_slide());
        server->Answer(call, std::move(reply), OkStatus());
      }
    });
  }

  // Starts a slide's writer or proxy (`role`); when it is ready its endpoint is recorded and
  // StartChildren goes on.
  void StartChild(const std::string& id, pid_t Running::*role, const std::vector<std::string>& args,
                  const std::vector<const wire::Listener*>& listeners = {}) {
    const bool writer = role == &Running::writer;
    auto pid = kids.Start(options.exe, args, kReadyTimeoutMs, [this, id, writer](Result<supervisor::Child> c) {
      auto it = running.find(id);
      if (it == running.end() || it->second.stopping) return;
      if (!c.ok()) return MarkFailed(id, c.status());
      auto rec = catalog->Get(id);
      if (!rec.ok()) return MarkFailed(id, rec.status());
      (writer ? rec->writer_endpoint : rec->proxy_endpoint) = c->endpoint;
      if (Status s = catalog->Update(*rec); !s.ok()) return MarkFailed(id, s);
      (writer ? it->second.writer_ready : it->second.proxy_ready) = true;
      StartChildren(id);
    }, listeners);
    if (!pid.ok()) return MarkFailed(id, pid.status());
    running[id].*role = *pid;
    (writer ? running[id].writer_ready : running[id].proxy_ready) = false;
  }

  // Stops a slide's proxy, then its writer (so that nothing new reaches the writer, which
  // then stores its zoom levels, syncs and closes), without waiting: Stopped() follows when
  // both have ended.
  void StopChildren(const std::string& id) {
    auto it = running.find(id);
    if (it == running.end()) return;
    Running& run = it->second;
    run.stopping = true;
    const bool proxy = run.proxy > 0;
    const pid_t pid = proxy ? run.proxy : run.writer;
    if (pid <= 0) return Stopped(id);
    kids.Stop(pid, proxy ? kStopGraceMs : kWriterStopGraceMs, [this, id, pid, proxy](int st) {
      log->info("slide={} pid={} stopped: {}", id, pid, supervisor::DescribeExit(st));
      auto again = running.find(id);
      if (again == running.end()) return;
      (proxy ? again->second.proxy : again->second.writer) = -1;
      (proxy ? again->second.proxy_ready : again->second.writer_ready) = false;
      StopChildren(id);
    });
  }

  // A slide's proxy and writer have both ended: a close completes, with the file as stored.
  void Stopped(const std::string& id) {
    auto it = running.find(id);
    if (it == running.end()) return;
    std::vector<Call> closes = std::move(it->second.closes);
    const bool closing = it->second.closing;
    running.erase(it);
    if (!closing) return;
    proto::ManagerReply reply;
    Status s = FinishClose(id, &reply);
    for (Call& call : closes) server->Answer(call, reply, s);
  }

  // A slide failed: it says why, its children are stopped, and every request waiting on it
  // gets the reason.
  void MarkFailed(const std::string& id, const Status& why) {
    log->error("slide={} status={} failed: {}", id, StatusCodeName(why.code()), why.message());
    if (auto rec = catalog->Get(id); rec.ok()) {
      rec->state = "failed";
      rec->error = why.message();
      (void)catalog->Update(*rec);
    }
    auto it = running.find(id);
    if (it == running.end()) return;
    it->second.closing = false;
    for (Call& call : std::exchange(it->second.opens, {})) server->Answer(call, {}, why);
    for (Call& call : std::exchange(it->second.closes, {})) server->Answer(call, {}, why);
    StopChildren(id);
  }

  // A child ended on its own: restart it, unless it keeps dying.
  // A stitcher ended: if it did not say how, it failed.
  // A stitcher killed by a signal (a crash, the OOM killer, kill -9) or stopped by one before
  // it said how it ended is started again with the same request, up to max_restarts times: it
  // registers the landed pairs again and goes on; while the stack stops, it is left for the
  // next start. One that exited on its own reported its failure.
  bool ReapStitcher(pid_t pid, int st) {
    for (auto& [id, state] : stitches) {
      if (state.pid() != pid) continue;
      state.set_pid(0);
      if (state.state() != "running") return true;
      const bool interrupted = WIFEXITED(st) && WEXITSTATUS(st) == supervisor::kExitInterrupted;
      if (interrupted && stopping_stack) {  // SIGTERM reached it first: resumed at the next start
        log->info("slide={} stitcher pid={} interrupted; the stitch resumes at the next start", id, pid);
        return true;
      }
      log->warn("slide={} stitcher pid={} {}", id, pid, supervisor::DescribeExit(st));
      auto& restarts = stitch_restarts[id];
      auto rec = catalog->Get(id);
      if ((WIFSIGNALED(st) || interrupted) && ++restarts <= options.max_restarts && rec.ok() &&
          stitch_requests.contains(id)) {
        state.set_state("restarting");
        if (Status s = SpawnStitcher(*rec, stitch_requests[id]); s.ok()) return true;
      }
      state.set_state("failed");
      state.set_error(fmt::format("the stitcher {}", supervisor::DescribeExit(st)));
      ForgetStitch(id);
      return true;
    }
    return false;
  }

  // Starts `tessera serve stitcher` for a slide unless one runs for it.
  Status StartStitch(const proto::StitchRequest& req, proto::ManagerReply* reply) {
    TESSERA_ASSIGN_OR_RETURN(SlideRecord r, catalog->Get(req.slide_id()));
    if (r.state == "acquiring" && stitches[r.id].state() != "running") {
      return Error(StatusCode::kFailedPrecondition,
                   "slide {} is still acquiring: close it first (scans stitch by themselves as they land, "
                   "unless scanned with --no-stitch)",
                   r.id);
    }
    if (!options.endpoints.contains("broker")) {
      return Error(StatusCode::kUnavailable, "this stack has no broker: run tessera up, or name one with "
                                             "--endpoint broker=...");
    }
    if (!req.destripe().method().empty()) TESSERA_RETURN_IF_ERROR(correct::FromProto(req.destripe()).status());
    if (req.has_dark() && !(req.dark() >= 0 && req.dark() <= 65535)) {
      return Error(StatusCode::kInvalidArgument, "dark {}: a grey level, 0 to 65535", req.dark());
    }
    TESSERA_RETURN_IF_ERROR(SpawnStitcher(r, req));
    *reply->mutable_stitch() = stitches[r.id];
    return OkStatus();
  }

  // A scan stitches by itself, from when it opens (registering pairs as their tiles land)
  // to its fused image after it closes, when its plan asks and the stack has workers.
  // `ready` runs once the stitcher serves (or failed to start, or none was needed).
  // An oblique scan is deskewed as it lands even when it is not stitched.
  void AutoStitch(const SlideRecord& r, std::function<void()> ready = {}) {
    auto plan = PlanFromJson(r.plan_json);
    const bool stitch = plan.ok() && plan->stitch && plan->tiles.size() >= 2;
    if (!plan.ok() || !(stitch || plan->oblique) || !options.auto_stitch || !options.endpoints.contains("broker")) {
      if (ready) ready();
      return;
    }
    proto::StitchRequest req;
    req.set_slide_id(r.id);
    req.set_z(-1);
    req.set_deskew_only(!stitch);
    if (Status s = SpawnStitcher(r, req, ready); !s.ok()) {
      log->warn("slide={} status={} stitch not started: {}", r.id, StatusCodeName(s.code()), s.message());
      if (ready) ready();
    }
  }

  // A running stitch's request, kept beside the slide until the stitch ends, so that a
  // manager started again (after a crash) resumes it.
  std::string StitchRequestPath(const std::string& id) const { return SlidesDir() + "/" + id + ".stitch-request.pb"; }

  void ForgetStitch(const std::string& id) {
    std::error_code ec;
    fs::remove(StitchRequestPath(id), ec);
  }

  void ResumeStitches() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(SlidesDir(), ec)) {
      const std::string name = entry.path().filename().string();
      if (!name.ends_with(".stitch-request.pb")) continue;
      const std::string id = name.substr(0, name.size() - std::string_view(".stitch-request.pb").size());
      std::ifstream in(entry.path(), std::ios::binary);
      proto::StitchRequest req;
      auto rec = catalog->Get(id);
      if (!rec.ok() || !req.ParseFromIstream(&in) || req.slide_id() != id) {
        log->warn("slide={} stitch request {} unreadable; not resumed", id, entry.path().string());
        continue;
      }
      log->info("slide={} resuming its stitch", id);
      if (Status s = SpawnStitcher(*rec, req); !s.ok()) {
        log->warn("slide={} status={} stitch not resumed: {}", id, StatusCodeName(s.code()), s.message());
      }
    }
  }

  // Starts a stitcher for the slide unless one runs; `ready` (if any) runs once it serves or
  // failed to start, or at once when one already runs.
  Status SpawnStitcher(const SlideRecord& r, const proto::StitchRequest& req, std::function<void()> ready = {}) {
    proto::StitchState& state = stitches[r.id];
    if (state.state() == "running" && ready) ready();
    if (state.state() != "running") {
      if (state.state() != "restarting") stitch_restarts[r.id] = 0;
      stitch_requests[r.id] = req;
      TESSERA_RETURN_IF_ERROR(durable::WriteFile(StitchRequestPath(r.id), req.SerializeAsString()));
      std::vector<std::string> args{"serve", "stitcher", "--slide", r.id, "--manager", endpoint,
                                    "--channel", std::to_string(req.channel()), "--z", std::to_string(req.z()),
                                    "--die-with-parent"};
      if (req.max_shift() > 0) args.insert(args.end(), {"--max-shift", std::to_string(req.max_shift())});
      if (req.no_store()) args.push_back("--no-store");
      if (req.deskew_only()) args.push_back("--deskew-only");
      if (req.flat_field()) args.push_back("--flat-field");
      if (req.normalize()) args.push_back("--normalize");
      if (req.has_dark()) args.insert(args.end(), {"--dark", fmt::format("{:.17g}", req.dark())});
      if (!req.destripe().method().empty()) {
        const proto::DestripeParams& d = req.destripe();
        args.insert(args.end(), {"--destripe", d.method(), "--sigma1", fmt::format("{:.17g}", d.sigma_foreground()),
                                 "--sigma2", fmt::format("{:.17g}", d.sigma_background()), "--wavelet-level",
                                 std::to_string(d.level()), "--wavelet", d.wavelet(), "--threshold",
                                 fmt::format("{:.17g}", d.threshold()), "--crossover", fmt::format("{:.17g}", d.crossover()),
                                 "--artifact-length", std::to_string(d.artifact_length()), "--background-window",
                                 std::to_string(d.background_window()), "--percentile", fmt::format("{:.17g}", d.percentile()),
                                 "--lightsheet-vs-background", fmt::format("{:.17g}", d.lightsheet_vs_background())});
        if (d.along_y()) args.push_back("--stripes-along-y");
      }
      state = proto::StitchState();
      state.set_slide_id(r.id);
      const std::string id = r.id;
      TESSERA_ASSIGN_OR_RETURN(pid_t pid, kids.Start(options.exe, args, kReadyTimeoutMs,
                                                     [this, id, ready](Result<supervisor::Child> c) {
        if (ready) ready();
        if (c.ok()) return log->info("slide={} stitcher pid={} started", id, c->pid);
        log->warn("slide={} status={} stitcher not started: {}", id, StatusCodeName(c.status().code()),
                  c.status().message());
        proto::StitchState& now = stitches[id];
        if (now.state() != "running") return;
        now.set_state("failed");
        now.set_pid(0);
        now.set_error(c.status().message());
        ForgetStitch(id);
      }));
      state.set_state("running");
      state.set_pid(pid);
    }
    return OkStatus();
  }

  // The last stitch of a slide, with its QC report once done.
  Status GetStitch(const std::string& id, proto::ManagerReply* reply) {
    TESSERA_ASSIGN_OR_RETURN(SlideRecord r, catalog->Get(id));
    proto::StitchState state;
    if (auto it = stitches.find(id); it != stitches.end()) state = it->second;
    state.set_slide_id(id);
    if (state.state() != "running" && state.state() != "failed" && state.report_json().empty()) {
      auto stitch = storage::ReadStitchFile(storage::StitchPathOf(r.path));
      if (stitch.ok()) {
        state.set_state("done");
        state.set_report_json(stitch->report_json);
      } else if (stitch.status().code() != StatusCode::kNotFound || state.state() == "done") {
        return stitch.status();
      }
    }
    *reply->mutable_stitch() = state;
    return OkStatus();
  }

  // A child ended without being asked to: a stitcher is looked after by ReapStitcher; a
  // slide's proxy or writer is started again on its endpoint, unless it keeps dying.
  void Exited(pid_t pid, int st) {
    if (ReapStitcher(pid, st)) return;
    for (auto& [id, run] : running) {
      if (run.writer != pid && run.proxy != pid) continue;
      const bool writer = run.writer == pid;
      const char* role = writer ? "writer" : "proxy";
      (writer ? run.writer : run.proxy) = -1;
      (writer ? run.writer_ready : run.proxy_ready) = false;
      if (run.stopping) return StopChildren(id);
      log->warn("slide={} role={} pid={} {}; restarting", id, role, pid, supervisor::DescribeExit(st));
      if (++run.restarts > options.max_restarts) {
        return MarkFailed(id, Error(StatusCode::kInternal, "the slide's {} died {} times", role, run.restarts));
      }
      return StartChildren(std::string(id));
    }
  }

  void Summarize(const SlideRecord& r, proto::SlideSummary* out) {
    out->set_slide_id(r.id);
    out->set_name(r.name);
    out->set_state(r.state);
    out->set_path(r.path);
    out->set_frames_total(r.frames_total);
    out->set_frames_written(r.frames_written);
    out->set_bytes_stored(r.bytes_stored);
    out->set_created_unix_ms(r.created_unix_ms);
    out->set_plan_json(r.plan_json);
    out->set_error(r.error);
    if (auto st = stitches.find(r.id); st != stitches.end()) {
      *out->mutable_stitch() = st->second;
      out->mutable_stitch()->clear_report_json();
    }
    auto it = running.find(r.id);
    if (it == running.end() || !it->second.proxy_ready) return;
    out->set_proxy_endpoint(r.proxy_endpoint);
    const std::string local = LocalDoor(r.id);
    if (!local.empty()) {
      out->set_proxy_local_endpoint(local);
      out->set_host(wire::HostId());
    }
    out->set_proxy_pid(it->second.proxy);
    out->set_writer_pid(it->second.writer);
    proto::IngestMessage req;
    req.mutable_stats_request();
    // Asked through the proxy's Unix socket when it has one: no TCP, no CURVE handshake.
    const std::string& ask = local.empty() ? r.proxy_endpoint : local;
    if (auto stats = wire::Ask<proto::IngestMessage>(ask, req, kStatsTimeoutMs); stats.ok() && stats->has_stats()) {
      const proto::Stats& st = stats->stats();
      out->set_frames_written(st.frames_durable());
      out->set_fifo_held_bytes(st.held_bytes());
      out->set_fifo_window_bytes(st.window_bytes());
      out->set_frames_received(st.frames_received());
      *out->mutable_ack_latency_counts() = st.ack_latency_counts();
      out->set_ack_latency_sum_ms(st.ack_latency_sum_ms());
      if (st.writer_status().code() != proto::OK) out->set_error(st.writer_status().message());
    }
  }

  // Opens a slide and starts its writer and proxy; the open is answered once both serve.
  Status OpenSlide(Call& call) {
    TESSERA_ASSIGN_OR_RETURN(ScanPlan plan, PlanFromJson(call.request.open_slide().plan_json()));
    plan.ClampChunks();
    TESSERA_RETURN_IF_ERROR(plan.Validate());
    SlideRecord r;
    r.name = plan.name;
    r.state = "acquiring";
    r.plan_json = PlanToJson(plan);
    r.created_unix_ms = UnixMs();
    r.frames_total = plan.frame_count();
    TESSERA_ASSIGN_OR_RETURN(r.id, catalog->Insert(r));
    if (r.name.empty()) r.name = r.id;
    r.path = fs::absolute(fs::path(SlidesDir()) / (r.id + ".h5")).string();
    TESSERA_RETURN_IF_ERROR(catalog->Update(r));
    TESSERA_RETURN_IF_ERROR(WritePlanFile(PlanPath(r.id), plan));
    running[r.id].opens.push_back(std::move(call));
    StartChildren(r.id);
    return OkStatus();
  }

  // Stops a slide's proxy and writer; the close is answered once both have ended.
  Status CloseSlide(Call& call) {
    const std::string id = call.request.close_slide().slide_id();
    TESSERA_ASSIGN_OR_RETURN(SlideRecord r, catalog->Get(id));
    if (r.state != "acquiring") {
      return Error(StatusCode::kFailedPrecondition, "slide {} is {}, not acquiring", id, r.state);
    }
    Running& run = running[id];
    run.closing = true;
    run.closes.push_back(std::move(call));
    StopChildren(id);
    return OkStatus();
  }

  Status FinishClose(const std::string& id, proto::ManagerReply* reply) {
    TESSERA_ASSIGN_OR_RETURN(SlideRecord r, catalog->Get(id));
    auto file = storage::SlideFile::OpenForRead(r.path);
    if (!file.ok()) {
      MarkFailed(id, file.status());
      return file.status();
    }
    r.frames_written = (*file)->frames_written();
    r.bytes_stored = (*file)->bytes_stored();
    r.state = "acquired";
    TESSERA_RETURN_IF_ERROR(catalog->Update(r));
    log->info("slide={} closed frames_written={}/{} bytes={}", id, r.frames_written,
              r.frames_total, r.bytes_stored);
    AutoStitch(r);  // started when the slide opened; again if that one is gone (a restarted manager)
    Summarize(r, reply->mutable_slide());
    return OkStatus();
  }

  // "s000001:fused", "s000001:deskewed": a derived view, a slide file of its own beside the
  // slide (the deskewed view is "acquiring" while its stitcher still writes it).
  Status ViewSummary(const std::string& id, proto::SlideSummary* out) {
    const bool fused = id.ends_with(kFusedSuffix), destriped = id.ends_with(kDestripedSuffix);
    const std::string base = id.substr(0, id.rfind(':'));
    TESSERA_ASSIGN_OR_RETURN(SlideRecord r, catalog->Get(base));
    const std::string path = fused       ? storage::FusedPathOf(r.path)
                             : destriped ? storage::DestripedPathOf(r.path)
                                         : storage::DeskewedPathOf(r.path);
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      if (fused) return Error(StatusCode::kNotFound, "slide {} has no fused image yet (tessera stitch {} makes it)", base, base);
      if (destriped) {
        return Error(StatusCode::kNotFound, "slide {} has no destriped view (tessera stitch {} --destripe wavelet makes it)",
                     base, base);
      }
      auto plan = PlanFromJson(r.plan_json);
      if (plan.ok() && !plan->oblique) {
        return Error(StatusCode::kNotFound, "slide {} is not an oblique scan: it has no deskewed view", base);
      }
      return Error(StatusCode::kNotFound, "slide {} has no deskewed view yet: it is made as the scan lands, on the "
                   "stack's workers (tessera stitch {} makes it again)", base, base);
    }
    TESSERA_ASSIGN_OR_RETURN(auto file, storage::SlideFile::OpenForRead(path));
    const ScanPlan& plan = file->plan();
    out->set_slide_id(id);
    out->set_name(plan.name);
    out->set_state(file->live() ? "acquiring" : "acquired");
    out->set_path(path);
    out->set_frames_total(plan.frame_count());
    out->set_frames_written(file->frames_written());
    out->set_bytes_stored(file->bytes_stored());
    out->set_created_unix_ms(r.created_unix_ms);
    out->set_plan_json(PlanToJson(plan));
    return OkStatus();
  }

  // Tells the dealer that a slide's file changed under it: positions moved, or a new fused
  // image replaced the old one (closed: open it again).
  void Publish(const std::string& id, bool positions, bool closed) {
    if (!events) return;
    proto::SlideEvent e;
    e.set_version(wire::kProtocolVersion);
    e.set_slide_id(id);
    e.set_positions(positions);
    e.set_closed(closed);
    events->send(zmq::buffer(id), zmq::send_flags::sndmore);
    wire::Send(*events, nullptr, e);
  }

  // The solved positions of a stitched slide, from its stitch file.
  void AddPositions(const SlideRecord& r, proto::SlideSummary* out) {
    auto stitch = storage::ReadStitchFile(storage::StitchPathOf(r.path));
    if (!stitch.ok()) {
      if (stitch.status().code() != StatusCode::kNotFound) {
        log->warn("slide={} status={} stitch file unreadable, stage positions used: {}", r.id,
                  StatusCodeName(stitch.status().code()), stitch.status().message());
      }
      return;
    }
    for (const auto& p : stitch->positions) {
      out->add_positions(p[0]);
      out->add_positions(p[1]);
    }
    for (double z : stitch->z) out->add_positions_z(z);
    out->set_stitched_unix_ms(stitch->created_unix_ms);
    if (stitch->corrections.empty()) return;
    auto plan = PlanFromJson(r.plan_json);
    const Status fits = plan.ok() ? correct::CheckCorrections(stitch->corrections, static_cast<uint32_t>(plan->tiles.size()),
                                                              static_cast<uint32_t>(plan->channels.size()), plan->width,
                                                              plan->height)
                                  : plan.status();
    if (!fits.ok()) {
      log->warn("slide={} status={} stitch file's corrections left out: {}", r.id, StatusCodeName(fits.code()), fits.message());
      return;
    }
    correct::ToProto(stitch->corrections, out->mutable_corrections());
  }

  // A stitch's positions and report, stored beside the slide; the dealer is told.
  Status StoreStitch(const proto::StoreStitch& req, proto::ManagerReply* reply) {
    TESSERA_ASSIGN_OR_RETURN(SlideRecord r, catalog->Get(req.slide_id()));
    TESSERA_ASSIGN_OR_RETURN(ScanPlan plan, PlanFromJson(r.plan_json));
    if (static_cast<size_t>(req.positions_size()) != 2 * plan.tiles.size()) {
      return Error(StatusCode::kInvalidArgument, "{} position values for slide {} of {} tiles: give x, y per tile",
                   req.positions_size(), r.id, plan.tiles.size());
    }
    for (int i = 0; i < req.positions_size(); ++i) {
      TESSERA_RETURN_IF_ERROR(CheckPosition(static_cast<size_t>(i / 2), i % 2 == 0 ? "x" : "y", req.positions(i)));
    }
    if (req.z_size() != 0 && static_cast<size_t>(req.z_size()) != plan.tiles.size()) {
      return Error(StatusCode::kInvalidArgument, "{} z values for slide {} of {} tiles: give one per tile, or none",
                   req.z_size(), r.id, plan.tiles.size());
    }
    for (int i = 0; i < req.z_size(); ++i) {
      TESSERA_RETURN_IF_ERROR(CheckPosition(static_cast<size_t>(i), "z", req.z(i)));
    }
    storage::StitchRecord stitch{.slide_id = r.id, .z = {req.z().begin(), req.z().end()},
                                 .report_json = req.report_json(),
                                 .corrections = correct::FromProto(req.corrections())};
    TESSERA_RETURN_IF_ERROR(correct::CheckCorrections(stitch.corrections, static_cast<uint32_t>(plan.tiles.size()),
                                                      static_cast<uint32_t>(plan.channels.size()), plan.width, plan.height));
    for (size_t i = 0; i < plan.tiles.size(); ++i) {
      stitch.positions.push_back({req.positions(static_cast<int>(2 * i)), req.positions(static_cast<int>(2 * i + 1))});
      stitch.stage.push_back({plan.tiles[i].x, plan.tiles[i].y});
    }
    TESSERA_RETURN_IF_ERROR(storage::WriteStitchFile(storage::StitchPathOf(r.path), stitch));
    log->info("slide={} stitch stored: {} positions", r.id, plan.tiles.size());
    Publish(r.id, /*positions=*/true, /*closed=*/false);
    Summarize(r, reply->mutable_slide());
    AddPositions(r, reply->mutable_slide());
    return OkStatus();
  }

  // What each role may ask (docs/security.md): viewers and workers read, scanners open and
  // close scans, admins everything (stitches, positions, credentials).
  static Status Authorize(const wire::Message& in, const proto::ManagerRequest& req) {
    using R = proto::ManagerRequest;
    switch (req.body_case()) {
      case R::kOpenSlide: return wire::Authorize(in, {"scanner"}, "open a slide");
      case R::kCloseSlide: return wire::Authorize(in, {"scanner"}, "close a slide");
      case R::kGetSlide:
      case R::kListSlides:
      case R::kGetEndpoints:
      case R::kGetStitch: return wire::Authorize(in, {"viewer", "scanner", "worker"}, "read");
      case R::kStoreStitch: return wire::Authorize(in, {}, "store a slide's positions");
      case R::kStitchSlide: return wire::Authorize(in, {}, "stitch a slide");
      case R::kStitchProgress: return wire::Authorize(in, {}, "report a stitch");
      default: return wire::Authorize(in, {}, "manage credentials");
    }
  }

  static Status Insecure() {
    return Error(StatusCode::kFailedPrecondition,
                 "this stack runs without security (--insecure): it issues no credentials");
  }

  // issue_credential, revoke_credential, list_credentials.
  Status Credentials(const proto::ManagerRequest& req, proto::ManagerReply* reply) {
    if (!keys) return Insecure();
    if (req.has_revoke_credential()) {
      TESSERA_RETURN_IF_ERROR(keys->Revoke(req.revoke_credential().name()));
      log->info("credential={} revoked", req.revoke_credential().name());
      return OkStatus();
    }
    if (req.has_list_credentials()) {
      for (const auto& c : keys->List()) {
        auto* out = reply->mutable_credentials()->add_credentials();
        out->set_name(c.name);
        out->set_role(std::string(security::RoleName(c.role)));
        out->set_revoked(c.revoked);
      }
      return OkStatus();
    }
    const proto::CredentialRef& ask = req.issue_credential();
    TESSERA_ASSIGN_OR_RETURN(security::Role role, security::ParseRole(ask.role()));
    TESSERA_ASSIGN_OR_RETURN(security::Credential c, keys->Issue(ask.name(), role, endpoint));
    log->info("credential={} role={} issued", c.name, ask.role());
    auto* out = reply->mutable_credential();
    out->set_name(c.name);
    out->set_role(ask.role());
    out->set_endpoint(c.endpoint);
    out->set_server_key(c.server_key);
    out->set_public_key(c.keys.public_key);
    out->set_secret_key(c.keys.secret_key);
    return OkStatus();
  }

  // The stack is stopping: every slide's children and every stitcher are asked to end (slides
  // stay acquiring, and stitches are resumed, at the next start); no new work is taken.
  void StopEverything() {
    if (stopping_stack) return;
    stopping_stack = true;
    std::vector<std::string> ids;
    for (const auto& [id, run] : running) ids.push_back(id);
    for (const auto& id : ids) {
      running[id].closing = false;
      StopChildren(id);
    }
    for (const auto& [id, state] : stitches) {
      if (state.pid() > 0) kids.Stop(state.pid(), kStopGraceMs);
    }
  }

  void Handle(Call& call) {
    const proto::ManagerRequest& req = call.request;
    proto::ManagerReply reply;
    Status s = OkStatus();
    if (stopping_stack && (req.has_open_slide() || req.has_stitch_slide())) {
      return (void)server->Answer(call, std::move(reply),
                                  Error(StatusCode::kUnavailable, "the stack is stopping: try again once it is back"));
    }
    switch (req.body_case()) {
      case proto::ManagerRequest::kOpenSlide:
      case proto::ManagerRequest::kCloseSlide: {  // answered when the children are ready, or have ended
        const auto what = req.body_case();
        s = what == proto::ManagerRequest::kOpenSlide ? OpenSlide(call) : CloseSlide(call);
        if (s.ok()) return;
        break;
      }
      case proto::ManagerRequest::kGetSlide: {
        if (const std::string& id = req.get_slide().slide_id(); id.ends_with(kFusedSuffix) || id.ends_with(kDeskewedSuffix) ||
                                                                        id.ends_with(kDestripedSuffix)) {
          s = ViewSummary(id, reply.mutable_slide());
          break;
        }
        auto r = catalog->Get(req.get_slide().slide_id());
        s = r.status();
        if (r.ok()) {
          Summarize(*r, reply.mutable_slide());
          AddPositions(*r, reply.mutable_slide());
        }
        break;
      }
      case proto::ManagerRequest::kStoreStitch: s = StoreStitch(req.store_stitch(), &reply); break;
      case proto::ManagerRequest::kStitchSlide: s = StartStitch(req.stitch_slide(), &reply); break;
      case proto::ManagerRequest::kGetStitch: s = GetStitch(req.get_stitch().slide_id(), &reply); break;
      case proto::ManagerRequest::kStitchProgress: {
        proto::StitchState& state = stitches[req.stitch_progress().slide_id()];
        const bool deskewing = state.stage() == "deskew", destriping = state.stage() == "destripe";
        if (state.state() == "running") state = req.stitch_progress();  // a stitcher this manager started
        // A view written anew or to its end: the dealer opens it again.
        if (deskewing && (state.stage() != "deskew" || state.state() != "running")) {
          Publish(state.slide_id() + kDeskewedSuffix, false, /*closed=*/true);
        }
        if (destriping && (state.stage() != "destripe" || state.state() != "running")) {
          Publish(state.slide_id() + kDestripedSuffix, false, /*closed=*/true);
        }
        if (state.state() == "done") Publish(state.slide_id() + kFusedSuffix, false, /*closed=*/true);
        if (state.state() == "done" || state.state() == "failed") ForgetStitch(state.slide_id());
        break;
      }
      case proto::ManagerRequest::kListSlides: {
        auto all = catalog->List();
        s = all.status();
        if (all.ok()) {
          for (const auto& r : *all) Summarize(r, reply.mutable_slides()->add_slides());
        }
        break;
      }
      case proto::ManagerRequest::kIssueCredential:
      case proto::ManagerRequest::kRevokeCredential:
      case proto::ManagerRequest::kListCredentials: s = Credentials(req, &reply); break;
      case proto::ManagerRequest::kGetEndpoints: {
        auto* eps = reply.mutable_endpoints()->mutable_endpoints();
        (*eps)["manager"] = endpoint;
        for (const auto& [k, v] : options.endpoints) (*eps)[k] = v;
        break;
      }
      default:
        s = Error(StatusCode::kInvalidArgument, "empty or unknown manager request");
    }
    if (!s.ok()) {
      log->info("request={} status={} {}", static_cast<int>(req.body_case()),
                StatusCodeName(s.code()), s.message());
    }
    server->Answer(call, std::move(reply), s);
  }
};

SlideManager::SlideManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SlideManager::~SlideManager() {
  impl_->StopEverything();
  impl_->kids.Wait();
}
const std::string& SlideManager::endpoint() const { return impl_->endpoint; }
const std::string& SlideManager::admin_credential() const { return impl_->admin_credential; }

Result<std::unique_ptr<SlideManager>> SlideManager::Open(const ManagerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.exe.empty()) impl->options.exe = fs::read_symlink("/proc/self/exe").string();
  std::error_code ec;
  fs::create_directories(impl->SlidesDir(), ec);
  if (!ec) fs::create_directories(impl->RunDir(), ec);
  if (!ec) fs::create_directories(impl->IngestDir(), ec);
  if (!ec) fs::permissions(impl->RunDir(), fs::perms::owner_all, ec);
  if (ec) {
    return Error(StatusCode::kUnavailable, "cannot create data folder {}: {}", impl->SlidesDir(),
                 ec.message());
  }
  const std::string security_dir =
      options.security_dir.empty() ? std::string() : fs::absolute(options.security_dir).string();
  if (!security_dir.empty()) {
    TESSERA_ASSIGN_OR_RETURN(impl->keys, security::KeyStore::Open(security_dir));
    TESSERA_ASSIGN_OR_RETURN(impl->zap, security::JoinStack(security_dir));
    ::setenv("TESSERA_SECURITY", security_dir.c_str(), 1);  // every child joins the same stack
  }
  TESSERA_ASSIGN_OR_RETURN(impl->catalog,
                           catalog::Catalog::Open((fs::path(options.data_dir) / "catalog.sqlite").string()));
  // A catalog restored from a backup, or one that lost its last rows, must not hand out an id
  // whose files exist: every name in slides/ reserves its number.
  TESSERA_RETURN_IF_ERROR(impl->catalog->ReserveIds(HighestIdOnDisk(impl->SlidesDir())));
  TESSERA_ASSIGN_OR_RETURN(impl->server, (wire::Server<proto::ManagerRequest, proto::ManagerReply>::Bind(
                                              options.bind, wire::kRequestLimits, {.authorize = &Impl::Authorize})));
  impl->endpoint = impl->server->endpoint();
  if (impl->keys) {
    impl->admin_credential = security_dir + "/" + security::kAdminCredentialFile;
    TESSERA_RETURN_IF_ERROR(
        impl->keys->Ensure("admin", security::Role::kAdmin, impl->endpoint, impl->admin_credential).status());
  }
  impl->ResumeStitches();
  if (!impl->options.events.empty()) {  // connected now, so that no event is lost to the connect
    impl->events.emplace(wire::MakeSocket(zmq::socket_type::pub));
    TESSERA_RETURN_IF_ERROR(wire::ConnectAll(*impl->events, impl->options.events));
  }
  TESSERA_ASSIGN_OR_RETURN(auto all, impl->catalog->List());
  Impl* m = impl.get();
  impl->kids.OnExit([m](pid_t pid, int st) { m->Exited(pid, st); });
  for (auto& r : all) {
    if (r.state != "acquiring") continue;
    impl->log->info("slide={} was acquiring; restarting its proxy and writer", r.id);
    impl->StartChildren(r.id);
  }
  return std::unique_ptr<SlideManager>(new SlideManager(std::move(impl)));
}

Status SlideManager::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  while (true) {
    if (auto call = m.server->Next(m.kids.busy() ? 5 : 100)) m.Handle(*call);
    if (stop.load()) break;  // before reaping: a child the same SIGTERM ended is not restarted
    m.kids.Poll();
  }
  // Every child is asked to end, and requests are answered until they have: a stitcher
  // storing what it solved, or reporting, is not left waiting on a manager that waits on it.
  m.StopEverything();
  while (!m.kids.empty()) {
    if (auto call = m.server->Next(5)) m.Handle(*call);
    m.kids.Poll();
  }
  return OkStatus();
}

}  // namespace tessera::manager
