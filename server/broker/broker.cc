#include "server/broker/broker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>

#include "common/log/log.h"
#include "common/wire/rpc.h"
#include "proto/tessera.pb.h"

namespace tessera::broker {
namespace {

using proto::BrokerMessage;

// A task as the broker holds it: what to send a worker (again, after a failure) and whom
// to answer.
struct Task {
  uint64_t seq = 0;                 // the broker's id, sent to workers
  std::string client;               // the client's routing identity
  proto::TaskRequest request;       // task_id: the client's
  std::vector<std::string> payload;
  uint64_t bytes = 0;
  uint32_t attempts = 0;            // dispatches so far
  std::set<std::string> tried;      // workers it failed on: others are preferred
  std::string last_error;
};

struct Worker {
  std::string identity, name;
  std::set<std::string> services;
  std::optional<Task> task;
  int64_t last_seen = 0, task_started = 0, idle_since = 0, next_heartbeat = 0;
  uint64_t done = 0;
};

struct ServiceStats {
  uint64_t done = 0, failed = 0, retried = 0;
};

bool Retryable(StatusCode code) {
  return code == StatusCode::kInternal || code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded;
}

zmq::message_t Identity(const std::string& id) { return zmq::message_t(id.data(), id.size()); }

}  // namespace

struct Broker::Impl {
  BrokerOptions options;
  std::shared_ptr<spdlog::logger> log = log::Get("broker");
  std::optional<wire::Server<BrokerMessage, BrokerMessage>> server;
  std::string endpoint, local_endpoint;
  std::map<std::string, Worker> workers;        // by routing identity
  std::map<std::string, std::deque<Task>> queues;  // by service
  std::map<std::string, ServiceStats> stats;
  uint64_t next_seq = 1, queued_tasks = 0, queued_bytes = 0;

  void Send(const std::string& to, const BrokerMessage& m, std::vector<zmq::message_t> payload = {}) {
    auto id = Identity(to);
    wire::Send(server->socket(), &id, m, std::move(payload));
  }

  static BrokerMessage Message() {
    BrokerMessage m;
    m.set_version(wire::kProtocolVersion);
    return m;
  }

  void Answer(const Task& t, const Status& status, const proto::TaskResult* result = nullptr,
              std::vector<zmq::message_t> payload = {}) {
    BrokerMessage m = Message();
    proto::TaskResult* r = m.mutable_result();
    if (result != nullptr) *r = *result;
    r->set_task_id(t.request.task_id());
    r->set_attempts(t.attempts);
    wire::ToProto(status, r->mutable_status());
    auto& s = stats[t.request.service()];
    (status.ok() ? s.done : s.failed)++;
    if (!status.ok()) {
      log->warn("task={} service={} failed attempts={}: {}", t.request.task_id(), t.request.service(), t.attempts,
                status.ToString());
    }
    Send(t.client, m, std::move(payload));
  }

  // A task back to the head of its queue after `reason`, or failed for good.
  void Requeue(Task t, const std::string& reason) {
    t.last_error = reason;
    if (t.attempts >= options.max_attempts) {
      return Answer(t, Error(StatusCode::kInternal, "task failed {} times; the last: {}", t.attempts, reason));
    }
    stats[t.request.service()].retried++;
    queued_tasks++;
    queued_bytes += t.bytes;
    queues[t.request.service()].push_front(std::move(t));
  }

  // `expected`: the worker said it is going (no warning unless it held a task).
  void DropWorker(const std::string& identity, const std::string& reason, bool expected = false) {
    auto it = workers.find(identity);
    if (it == workers.end()) return;
    log->log(expected && !it->second.task ? spdlog::level::info : spdlog::level::warn, "worker={} dropped: {}",
             it->second.name, reason);
    if (it->second.task) {
      Task t = std::move(*it->second.task);
      t.tried.insert(it->second.name);
      Requeue(std::move(t), fmt::format("worker {} {}", it->second.name, reason));
    }
    workers.erase(it);
  }

  // Gives queued tasks to idle workers offering their service, the longest idle first,
  // preferring workers the task has not failed on.
  void Dispatch() {
    for (auto& [service, queue] : queues) {
      while (!queue.empty()) {
        Worker* best = nullptr;
        bool best_fresh = false;
        for (auto& [id, w] : workers) {
          if (w.task || !w.services.contains(service)) continue;
          const bool fresh = !queue.front().tried.contains(w.name);
          if (!best || (fresh && !best_fresh) || (fresh == best_fresh && w.idle_since < best->idle_since)) {
            best = &w;
            best_fresh = fresh;
          }
        }
        if (!best) break;
        Task t = std::move(queue.front());
        queue.pop_front();
        queued_tasks--;
        queued_bytes -= t.bytes;
        t.attempts++;
        BrokerMessage m = Message();
        *m.mutable_request() = t.request;
        m.mutable_request()->set_task_id(t.seq);
        std::vector<zmq::message_t> payload;
        for (const auto& p : t.payload) payload.emplace_back(p.data(), p.size());
        Send(best->identity, m, std::move(payload));
        best->task = std::move(t);
        best->task_started = wire::NowMs();
      }
    }
  }

  void OnReady(const std::string& identity, const proto::WorkerReady& ready) {
    if (workers.contains(identity)) DropWorker(identity, "said ready again (restarted)");
    Worker w;
    w.identity = identity;
    w.name = ready.name().empty() ? "worker" : ready.name();
    w.services.insert(ready.services().begin(), ready.services().end());
    w.last_seen = w.idle_since = wire::NowMs();
    log->info("worker={} ready services={}", w.name, fmt::join(w.services, ","));
    workers[identity] = std::move(w);
  }

  void OnResult(const std::string& identity, const proto::TaskResult& result, std::vector<zmq::message_t>& payload) {
    auto it = workers.find(identity);
    if (it == workers.end() || !it->second.task || it->second.task->seq != result.task_id()) {
      log->info("result of task {} from a worker no longer on it: ignored", result.task_id());
      return;
    }
    Worker& w = it->second;
    Task t = std::move(*w.task);
    w.task.reset();
    w.done++;
    w.idle_since = wire::NowMs();
    const Status status = wire::FromProto(result.status());
    if (!status.ok() && Retryable(status.code())) {
      t.tried.insert(w.name);
      return Requeue(std::move(t), fmt::format("worker {}: {}", w.name, status.ToString()));
    }
    proto::TaskResult out = result;
    out.set_worker(w.name);
    Answer(t, status, &out, std::move(payload));  // e.g. a fused chunk
  }

  void OnRequest(const std::string& client, const proto::TaskRequest& request, std::vector<zmq::message_t>& payload) {
    Task t;
    t.seq = next_seq++;
    t.client = client;
    t.request = request;
    t.bytes = request.ByteSizeLong();
    for (auto& p : payload) {
      t.payload.emplace_back(static_cast<const char*>(p.data()), p.size());
      t.bytes += p.size();
    }
    if (request.service().empty()) {
      return Answer(t, Error(StatusCode::kInvalidArgument, "a task needs a service (register, fuse, ...)"));
    }
    if (queued_tasks + 1 > options.max_queued_tasks || queued_bytes + t.bytes > options.max_queued_bytes) {
      BrokerMessage m = Message();
      m.mutable_result()->set_task_id(request.task_id());
      wire::ToProto(Error(StatusCode::kResourceExhausted, "the broker's queue is full ({} tasks, {} bytes): send it again later",
                          queued_tasks, queued_bytes),
                    m.mutable_result()->mutable_status());
      return Send(client, m);
    }
    queued_tasks++;
    queued_bytes += t.bytes;
    queues[request.service()].push_back(std::move(t));
  }

  void OnStatus(const std::string& client) {
    BrokerMessage m = Message();
    proto::BrokerStatus* s = m.mutable_status();
    const int64_t now = wire::NowMs();
    std::map<std::string, proto::ServiceQueue> services;
    auto service = [&](const std::string& name) -> proto::ServiceQueue& {
      auto& q = services[name];
      q.set_service(name);
      return q;
    };
    for (const auto& [id, w] : workers) {
      proto::WorkerState* ws = s->add_workers();
      ws->set_name(w.name);
      for (const auto& name : w.services) {
        ws->add_services(name);
        service(name).set_workers(service(name).workers() + 1);
      }
      ws->set_done(w.done);
      if (w.task) {
        ws->set_task(w.task->request.service());
        ws->set_busy_ms(now - w.task_started);
        auto& q = service(w.task->request.service());
        q.set_running(q.running() + 1);
      }
    }
    for (const auto& [name, queue] : queues) {
      auto& q = service(name);
      q.set_queued(static_cast<uint32_t>(queue.size()));
      uint64_t bytes = 0;
      for (const auto& t : queue) bytes += t.bytes;
      q.set_queued_bytes(bytes);
    }
    for (const auto& [name, st] : stats) {
      auto& q = service(name);
      q.set_done(st.done);
      q.set_failed(st.failed);
      q.set_retried(st.retried);
    }
    for (auto& [name, q] : services) *s->add_services() = std::move(q);
    Send(client, m);
  }

  // Workers say ready, heartbeat, return results; the stack's stitchers (admin) hand out
  // work; anyone may read the status.
  static Status Authorize(const wire::Message& in, const BrokerMessage& m) {
    switch (m.body_case()) {
      case BrokerMessage::kRequest: return wire::Authorize(in, {}, "hand out tasks");
      case BrokerMessage::kStatusRequest: return wire::Authorize(in, {"viewer", "scanner", "worker"}, "read");
      default: return wire::Authorize(in, {"worker"}, "serve tasks");
    }
  }

  static void Refuse(const Status& s, BrokerMessage* reply) { wire::ToProto(s, reply->mutable_result()->mutable_status()); }

  void Handle(wire::Incoming<BrokerMessage>& call) {
    wire::Message& in = call.message;
    const BrokerMessage& m = call.request;
    const std::string identity(static_cast<const char*>(in.identity->data()), in.identity->size());
    if (auto it = workers.find(identity); it != workers.end()) it->second.last_seen = wire::NowMs();
    switch (m.body_case()) {
      case BrokerMessage::kReady: OnReady(identity, m.ready()); break;
      case BrokerMessage::kHeartbeat:
        if (!workers.contains(identity)) {
          BrokerMessage bye = Message();
          bye.mutable_disconnect()->set_reason("unknown worker: say ready again");
          Send(identity, bye);
        }
        break;
      case BrokerMessage::kResult: OnResult(identity, m.result(), in.payload); break;
      case BrokerMessage::kRequest: OnRequest(identity, m.request(), in.payload); break;
      case BrokerMessage::kDisconnect:
        DropWorker(identity, "disconnected: " + m.disconnect().reason(), /*expected=*/true);
        break;
      case BrokerMessage::kStatusRequest: OnStatus(identity); break;
      default: {
        BrokerMessage reply = Message();
        wire::ToProto(Error(StatusCode::kInvalidArgument, "the broker takes ready, heartbeat, result, request, "
                                                          "disconnect and status_request messages"),
                      reply.mutable_result()->mutable_status());
        Send(identity, reply);
      }
    }
  }

  // Heartbeats to workers; drops the silent and the stalled.
  void Housekeep() {
    const int64_t now = wire::NowMs();
    std::vector<std::pair<std::string, std::string>> drop;
    for (auto& [id, w] : workers) {
      if (now - w.last_seen > int64_t{options.heartbeat_ms} * options.heartbeat_misses) {
        drop.emplace_back(id, fmt::format("went silent ({} ms)", now - w.last_seen));
      } else if (w.task && now - w.task_started > options.task_timeout_ms) {
        drop.emplace_back(id, fmt::format("stalled: on one task for {} ms", now - w.task_started));
        BrokerMessage bye = Message();
        bye.mutable_disconnect()->set_reason("your task took too long and went to another worker");
        Send(id, bye);
      } else if (now >= w.next_heartbeat) {
        BrokerMessage hb = Message();
        hb.mutable_heartbeat();
        Send(id, hb);
        w.next_heartbeat = now + options.heartbeat_ms;
      }
    }
    for (const auto& [id, reason] : drop) DropWorker(id, reason);
  }
};

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Broker::~Broker() = default;
const std::string& Broker::endpoint() const { return impl_->endpoint; }
const std::string& Broker::local_endpoint() const { return impl_->local_endpoint; }

Result<std::unique_ptr<Broker>> Broker::Open(const BrokerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  TESSERA_ASSIGN_OR_RETURN(impl->server, (wire::Server<BrokerMessage, BrokerMessage>::Bind(
                                              options.bind, wire::Limits{},
                                              {.authorize = &Impl::Authorize, .refuse = &Impl::Refuse, .log = "broker"})));
  impl->server->socket().set(zmq::sockopt::router_mandatory, 0);  // a result for a client that left is dropped
  impl->endpoint = impl->server->endpoint();
  if (!options.local.empty()) {
    TESSERA_ASSIGN_OR_RETURN(impl->local_endpoint, impl->server->AlsoBind(options.local));
  }
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

Status Broker::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  const int tick = std::max(10, m.options.heartbeat_ms / 4);
  while (!stop.load()) {
    for (int n = 0; n < 1000; ++n) {  // a burst of messages, then housekeeping
      auto in = m.server->Next(n == 0 ? tick : 0);
      if (!in) break;
      m.Handle(*in);
    }
    m.Housekeep();
    m.Dispatch();
  }
  return OkStatus();
}

}  // namespace tessera::broker
