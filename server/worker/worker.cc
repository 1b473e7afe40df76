#include "server/worker/worker.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <optional>
#include <thread>

#include "common/log/log.h"
#include "common/wire/rpc.h"
#include "server/worker/internal/tasks.h"
#include "proto/tessera.pb.h"

namespace tessera::worker {

const std::vector<std::string>& KnownServices() {
  static const std::vector<std::string> services = {"register", "fuse", "deskew", "destripe"};
  return services;
}

struct Worker::Impl {
  WorkerOptions options;
  std::string name;
  std::shared_ptr<spdlog::logger> log = log::Get("worker");
  std::unique_ptr<internal::TaskContext> context;  // used by the task's thread only
  std::optional<wire::Stream<proto::BrokerMessage>> broker;
  int64_t last_heard = 0, next_heartbeat = 0;
  // The task being worked on, on its own thread so that heartbeats go on.
  std::optional<std::jthread> thread;
  std::future<Result<internal::TaskOutput>> result;
  uint64_t task_id = 0;
  bool abandoned = false;  // the broker gave it to another worker: its answer is dropped
  Status refused;  // the broker will not have this worker: why

  bool Busy() const { return thread.has_value(); }

  void Connect(const std::atomic<bool>& stop) {
    // A task given up on must end before this worker says it is free.
    while (Busy() && !stop.load()) FinishTask(100);
    broker.reset();
    auto connected = wire::Stream<proto::BrokerMessage>::Connect(options.broker, "", {}, "worker");
    if (!connected.ok()) {
      refused = connected.status();
      return;
    }
    broker.emplace(std::move(*connected));
    proto::BrokerMessage ready;
    for (const auto& s : options.services) ready.mutable_ready()->add_services(s);
    ready.mutable_ready()->set_name(name);
    broker->Send(ready);
    last_heard = wire::NowMs();
    next_heartbeat = last_heard + options.heartbeat_ms;
  }

  void Start(const proto::TaskRequest& request) {
    task_id = request.task_id();
    abandoned = false;
    std::promise<Result<internal::TaskOutput>> promise;
    result = promise.get_future();
    log->debug("task={} service={} started", task_id, request.service());
    thread.emplace([this, request, promise = std::move(promise)]() mutable {
      promise.set_value(internal::RunTask(*context, request));
    });
  }

  // Sends the task's answer once it is done (waiting at most `wait_ms`).
  void FinishTask(int wait_ms) {
    if (!Busy() || result.wait_for(std::chrono::milliseconds(wait_ms)) != std::future_status::ready) return;
    thread.reset();  // joins: the thread has ended
    Result<internal::TaskOutput> r = result.get();
    if (abandoned) {
      log->info("task={} done after the broker gave it to another worker: answer dropped", task_id);
      return;
    }
    proto::BrokerMessage m;
    std::vector<zmq::message_t> payload;
    if (r.ok()) {
      *m.mutable_result() = std::move(r->result);
      for (const auto& p : r->payload) payload.emplace_back(p.data(), p.size());
    }
    m.mutable_result()->set_task_id(task_id);
    wire::ToProto(r.ok() ? OkStatus() : r.status(), m.mutable_result()->mutable_status());
    if (!r.ok()) log->warn("task={} failed: {}", task_id, r.status().ToString());
    broker->Send(std::move(m), std::move(payload));
  }

  void Handle(const proto::BrokerMessage& m, const std::atomic<bool>& stop) {
    switch (m.body_case()) {
      case proto::BrokerMessage::kRequest:
        if (Busy()) {  // the broker sends one task at a time; answer rather than lose it
          proto::BrokerMessage busy;
          busy.mutable_result()->set_task_id(m.request().task_id());
          wire::ToProto(Error(StatusCode::kUnavailable, "worker {} is busy", name), busy.mutable_result()->mutable_status());
          broker->Send(std::move(busy));
        } else {
          Start(m.request());
        }
        break;
      case proto::BrokerMessage::kDisconnect:
        log->warn("the broker says: {}; connecting again", m.disconnect().reason());
        abandoned = Busy();
        Connect(stop);
        break;
      case proto::BrokerMessage::kResult: {
        const Status s = wire::FromProto(m.result().status());
        log->warn("the broker answered: {}", s.ToString());
        if (s.code() == StatusCode::kPermissionDenied) refused = s;  // its credential is not a worker's
        break;
      }
      default: break;  // heartbeats
    }
  }
};

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Worker::~Worker() = default;
const std::string& Worker::name() const { return impl_->name; }

Result<std::unique_ptr<Worker>> Worker::Open(const WorkerOptions& options) {
  if (options.broker.empty() || options.manager.empty()) {
    return Error(StatusCode::kInvalidArgument, "a worker needs the broker's and the manager's endpoints");
  }
  if (options.services.empty()) return Error(StatusCode::kInvalidArgument, "a worker needs at least one service");
  for (const auto& s : options.services) {
    if (std::find(KnownServices().begin(), KnownServices().end(), s) == KnownServices().end()) {
      return Error(StatusCode::kInvalidArgument, "unknown service '{}': this worker offers {}", s,
                   fmt::join(KnownServices(), ", "));
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  impl->name = options.name.empty() ? fmt::format("{}:{}", host, ::getpid()) : options.name;
  impl->context = std::make_unique<internal::TaskContext>(options.manager);
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

Status Worker::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  m.Connect(stop);
  m.log->info("worker={} services={} broker={}", m.name, fmt::join(m.options.services, ","), m.options.broker);
  const int tick = std::max(5, m.options.heartbeat_ms / 10);
  while (!stop.load()) {
    if (!m.refused.ok()) return m.refused;
    if (auto in = m.broker->Next(m.Busy() ? 0 : tick)) {
      m.last_heard = wire::NowMs();
      m.Handle(in->header, stop);
    }
    if (m.refused.ok()) m.refused = m.broker->Refused();
    if (!m.refused.ok()) return m.refused;
    m.FinishTask(m.Busy() ? tick : 0);
    const int64_t now = wire::NowMs();
    if (now - m.last_heard > int64_t{m.options.heartbeat_ms} * m.options.heartbeat_misses) {
      m.log->warn("the broker has been silent for {} ms; connecting again", now - m.last_heard);
      m.abandoned = m.Busy();
      m.Connect(stop);
    } else if (now >= m.next_heartbeat) {
      proto::BrokerMessage hb;
      hb.mutable_heartbeat();
      m.broker->Send(std::move(hb));
      m.next_heartbeat = now + m.options.heartbeat_ms;
    }
  }
  // Tell the broker, so that the task (if any) goes to another worker at once.
  proto::BrokerMessage bye;
  bye.mutable_disconnect()->set_reason("stopping");
  if (m.broker) m.broker->Send(std::move(bye));
  return OkStatus();
}

}  // namespace tessera::worker
