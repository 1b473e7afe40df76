#include "server/stitcher/stitcher.h"

#include <unistd.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "client/client.h"
#include "common/wire/wire.h"

namespace tessera::stitcher {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

proto::BrokerMessage Message() {
  proto::BrokerMessage m;
  m.set_version(wire::kProtocolVersion);
  return m;
}

Result<std::string> BrokerOf(Client& client, const std::string& manager) {
  TESSERA_ASSIGN_OR_RETURN(auto endpoints, client.Endpoints());
  const auto broker = endpoints.find("broker");
  if (broker == endpoints.end()) {
    return Error(StatusCode::kUnavailable, "the stack at {} has no broker: start one (tessera serve broker) and name it "
                                           "to the manager (--endpoint broker=...)", manager);
  }
  return broker->second;
}

Result<BrokerState> Query(const std::string& broker) {
  proto::BrokerMessage ask = Message();
  ask.mutable_status_request();
  auto reply = wire::Call(broker, ask, 5000);
  if (!reply.ok()) return Error(StatusCode::kUnavailable, "the broker at {} does not answer: is the stack up?", broker);
  proto::BrokerMessage m;
  TESSERA_RETURN_IF_ERROR(wire::ParseHeader(*reply, &m));
  BrokerState state;
  state.broker = broker;
  for (const auto& w : m.status().workers()) {
    state.workers.push_back({w.name(), fmt::format("{}", fmt::join(w.services(), ",")), w.task(), w.done(), w.busy_ms()});
  }
  for (const auto& q : m.status().services()) {
    state.queues.push_back(
        {q.service(), q.workers(), q.queued(), q.running(), q.done(), q.failed(), q.retried(), q.queued_bytes()});
  }
  return state;
}

// After a long silence: an error when no worker offers `service`; whether the broker has
// none of its tasks queued or running (it lost them, e.g. it was restarted).
Result<bool> BrokerLostTasks(const std::string& broker, const std::string& service) {
  TESSERA_ASSIGN_OR_RETURN(BrokerState state, Query(broker));
  for (const auto& q : state.queues) {
    if (q.service == service && q.workers > 0) return q.queued == 0 && q.running == 0;
  }
  return Error(StatusCode::kUnavailable,
               "no worker offers '{}': start one (tessera serve worker --broker {} --manager ...), or run "
               "tessera up --workers N",
               service, broker);
}

// Runs tasks 0..n-1 of `service` through the broker, at most o.in_flight unanswered: `make`
// fills task i, `take` takes its answer (and payload). An answer of RESOURCE_EXHAUSTED (the
// broker's queue is full) sends the task again later; after o.stall_ms of silence the broker
// is asked, and tasks it lost are sent again (a late answer to one is ignored).
Status RunTasks(const std::string& broker, const std::string& service, size_t n, const StitchOptions& o,
                const std::function<void(size_t, proto::TaskRequest&)>& make,
                const std::function<Status(size_t, const proto::TaskResult&, std::vector<zmq::message_t>&)>& take,
                const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop) {
  zmq::socket_t socket = wire::MakeSocket(zmq::socket_type::dealer);
  socket.connect(broker);
  std::deque<size_t> todo;
  for (size_t i = 0; i < n; ++i) todo.push_back(i);
  std::set<size_t> sent;  // and not answered yet
  std::vector<bool> answered(n);
  size_t done = 0;
  int64_t last_answer = wire::NowMs();
  if (progress) progress({service, 0, n});
  while (done < n) {
    if (stop.load()) return Error(StatusCode::kUnavailable, "stitch of {} interrupted", o.slide);
    while (sent.size() < static_cast<size_t>(o.in_flight) && !todo.empty()) {
      const size_t i = todo.front();
      todo.pop_front();
      proto::BrokerMessage m = Message();
      proto::TaskRequest* t = m.mutable_request();
      t->set_task_id(i);
      t->set_service(service);
      make(i, *t);
      wire::Send(socket, nullptr, m);
      sent.insert(i);
    }
    auto in = wire::Receive(socket, 200);
    if (!in) {
      if (wire::NowMs() - last_answer > o.stall_ms) {
        TESSERA_ASSIGN_OR_RETURN(const bool lost, BrokerLostTasks(broker, service));
        if (lost) {
          todo.insert(todo.begin(), sent.begin(), sent.end());
          sent.clear();
        }
        last_answer = wire::NowMs();
      }
      continue;
    }
    proto::BrokerMessage m;
    TESSERA_RETURN_IF_ERROR(wire::ParseHeader(*in, &m));
    if (!m.has_result() || m.result().task_id() >= n || answered[m.result().task_id()]) continue;
    last_answer = wire::NowMs();
    const size_t i = m.result().task_id();
    sent.erase(i);
    if (m.result().status().code() == proto::RESOURCE_EXHAUSTED) {  // the broker is full: later
      todo.push_back(i);
      continue;
    }
    TESSERA_RETURN_IF_ERROR(take(i, m.result(), in->payload));
    answered[i] = true;
    ++done;
    if (progress) progress({service, done, n});
  }
  return OkStatus();
}

}  // namespace

Result<BrokerState> QueryBroker(const std::string& manager) {
  Client client(manager);
  TESSERA_ASSIGN_OR_RETURN(const std::string broker, BrokerOf(client, manager));
  return Query(broker);
}

Result<StitchResult> Stitch(const StitchOptions& o, const std::function<void(const StitchProgress&)>& progress,
                            const std::atomic<bool>& stop) {
  Client client(o.manager);
  TESSERA_ASSIGN_OR_RETURN(SlideSummary summary, client.Info(o.slide));
  TESSERA_ASSIGN_OR_RETURN(const std::string broker, BrokerOf(client, o.manager));
  const ScanPlan& plan = summary.plan;
  if (o.channel >= plan.channels.size()) {
    return Error(StatusCode::kInvalidArgument, "channel {}: slide {} has channels 0 to {}", o.channel, o.slide,
                 plan.channels.size() - 1);
  }
  const uint32_t z = o.z < 0 ? plan.z_planes / 2 : static_cast<uint32_t>(o.z);
  if (z >= plan.z_planes) {
    return Error(StatusCode::kInvalidArgument, "z {}: slide {} has planes 0 to {}", z, o.slide, plan.z_planes - 1);
  }
  std::vector<std::array<double, 2>> stage;
  std::vector<std::string> names;
  for (const auto& t : plan.tiles) {
    stage.push_back({t.x, t.y});
    names.push_back(t.name);
  }
  StitchResult r;
  r.pairs = stitch::OverlappingPairs(stage, plan.width, plan.height);
  r.links.resize(r.pairs.size());

  // Registration: every pair a task, a window of them in flight.
  const auto started = Clock::now();
  TESSERA_RETURN_IF_ERROR(RunTasks(
      broker, "register", r.pairs.size(), o,
      [&](size_t i, proto::TaskRequest& t) {
        const stitch::TilePair& p = r.pairs[i];
        proto::RegisterTask* reg = t.mutable_register_pair();
        reg->set_slide(o.slide);
        reg->set_a(p.a);
        reg->set_b(p.b);
        reg->set_channel(o.channel);
        reg->set_z(z);
        reg->set_nominal_dx(p.dx);
        reg->set_nominal_dy(p.dy);
        reg->set_max_shift(static_cast<uint32_t>(o.max_shift));
      },
      [&](size_t i, const proto::TaskResult& res, std::vector<zmq::message_t>&) -> Status {
        const Status s = wire::FromProto(res.status());
        stitch::Link& link = r.links[i];
        link.nominal_dx = r.pairs[i].dx;
        link.nominal_dy = r.pairs[i].dy;
        if (s.code() == StatusCode::kInvalidArgument) {  // e.g. no overlap within the stage's error
          link.dx = link.nominal_dx;
          link.dy = link.nominal_dy;
          link.reason = s.message();
          return OkStatus();
        }
        if (!s.ok()) {
          return Error(s.code(), "registering tiles {} and {} of {} failed: {}", r.pairs[i].a, r.pairs[i].b, o.slide,
                       s.message());
        }
        const proto::LinkResult& l = res.link();
        link.dx = l.dx();
        link.dy = l.dy();
        link.ncc = l.ncc();
        link.margin = l.margin();
        link.texture = l.texture();
        link.reliable = l.reliable();
        link.reason = l.reason();
        return OkStatus();
      },
      progress, stop));
  r.register_s = Seconds(started);

  // The solve, on this side: it is small (a sparse system of two unknowns per tile).
  const auto solve_started = Clock::now();
  if (progress) progress({"solve", 0, 1});
  std::vector<stitch::TileLink> links;
  for (size_t i = 0; i < r.pairs.size(); ++i) {
    links.push_back({r.pairs[i].a, r.pairs[i].b, r.links[i].dx, r.links[i].dy, std::max(0.01, r.links[i].ncc),
                     r.links[i].reliable});
  }
  TESSERA_ASSIGN_OR_RETURN(r.solution, stitch::SolvePositions(stage, links, {}));
  r.solve_s = Seconds(solve_started);
  if (progress) progress({"solve", 1, 1});
  r.report = stitch::MakeReport(names, stage, r.pairs, r.links, r.solution, o.max_shift);
  if (o.store) TESSERA_RETURN_IF_ERROR(client.StoreStitch(o.slide, r.solution.positions, stitch::ReportJson(r.report)).status());
  return r;
}

Status RunAndReport(const StitchOptions& o, const std::atomic<bool>& stop) {
  int64_t last_report = 0;
  auto report = [&](const std::string& state, const StitchProgress& p, const std::string& error,
                    const std::string& report_json = "") {
    proto::ManagerRequest req;
    req.set_version(wire::kProtocolVersion);
    proto::StitchState* st = req.mutable_stitch_progress();
    st->set_slide_id(o.slide);
    st->set_state(state);
    st->set_stage(p.stage);
    st->set_done(p.done);
    st->set_total(p.total);
    st->set_error(error);
    st->set_pid(static_cast<int32_t>(::getpid()));
    st->set_report_json(report_json);
    last_report = wire::NowMs();
    return wire::Call(o.manager, req, 5000).status();
  };
  auto r = Stitch(
      o,
      [&](const StitchProgress& p) {
        if (p.done == 0 || p.done == p.total || wire::NowMs() - last_report > 200) (void)report("running", p, "");
      },
      stop);
  if (!r.ok()) {
    if (!stop.load()) (void)report("failed", {}, r.status().ToString());  // stopped: the manager is going
    return r.status();
  }
  // A stored report is read from the stitch file; one not stored travels with the end.
  return report("done", {"store", 1, 1}, "", o.store ? "" : stitch::ReportJson(r->report));
}

}  // namespace tessera::stitcher
