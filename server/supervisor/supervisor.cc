#include "server/supervisor/supervisor.h"

#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "common/log/log.h"
#include "server/supervisor/child_process.h"

namespace tessera::supervisor {
namespace {

constexpr int kReadyTimeoutMs = 20000;
constexpr int kStopGraceMs = 30000;
// The slide manager stops its slides' writers, which finish the zoom levels of what they
// stored, sync and close their files.
constexpr int kManagerStopGraceMs = 300000;

}  // namespace

struct Running {
  Service service;  // placeholders resolved
  Child child;
  int restarts = 0;
};

struct Supervisor::Impl {
  SupervisorOptions options;
  std::vector<Running> running;
  std::map<std::string, std::string> endpoints;
  std::shared_ptr<spdlog::logger> log = log::Get("supervisor");

  Status Start(Running& r) {
    std::vector<const wire::Listener*> listeners;
    for (const auto& l : r.service.listeners) listeners.push_back(l.get());
    TESSERA_ASSIGN_OR_RETURN(r.child, Spawn(options.exe, r.service.args, kReadyTimeoutMs, listeners));
    std::istringstream words(r.child.endpoint);  // "name=endpoint name=endpoint ..."
    for (std::string w; words >> w;) {
      if (const auto eq = w.find('='); eq != std::string::npos) endpoints[w.substr(0, eq)] = w.substr(eq + 1);
    }
    log->info("service={} pid={} ready: {}", r.service.name, r.child.pid, r.child.endpoint);
    return OkStatus();
  }

  Status Resolve(Service& s) {
    for (auto& a : s.args) {
      for (const auto& [name, ep] : endpoints) {
        const std::string placeholder = "{" + name + "}";
        for (auto at = a.find(placeholder); at != std::string::npos; at = a.find(placeholder)) {
          a.replace(at, placeholder.size(), ep);
        }
      }
      for (auto at = a.find("{port}"); at != std::string::npos; at = a.find("{port}")) {
        TESSERA_ASSIGN_OR_RETURN(wire::Listener l, wire::Listener::Open(options.host));
        a.replace(at, 6, std::to_string(l.port()));
        s.listeners.push_back(std::make_shared<const wire::Listener>(std::move(l)));
      }
    }
    return OkStatus();
  }

  // A service ended: start it again with the same arguments, so where it listened.
  void Reap(pid_t pid, int st) {
    for (auto& r : running) {
      if (r.child.pid != pid) continue;
      r.child.pid = -1;
      log->warn("service={} pid={} {}; restarting", r.service.name, pid, DescribeExit(st));
      if (++r.restarts > options.max_restarts) {
        log->error("service={} died {} times; not restarting it", r.service.name, r.restarts);
      } else if (Status s = Start(r); !s.ok()) {
        log->error("service={} status={} cannot restart: {}", r.service.name, StatusCodeName(s.code()), s.message());
      }
      return;
    }
  }

  void StopAll() {
    for (auto it = running.rbegin(); it != running.rend(); ++it) {
      if (it->child.pid <= 0) continue;
      const int st = Stop(it->child.pid, it->service.name == "manager" ? kManagerStopGraceMs : kStopGraceMs);
      log->info("service={} pid={} stopped: {}", it->service.name, it->child.pid, DescribeExit(st));
      it->child.pid = -1;
    }
  }
};

Supervisor::Supervisor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Supervisor::~Supervisor() { impl_->StopAll(); }
const std::map<std::string, std::string>& Supervisor::endpoints() const { return impl_->endpoints; }

Result<std::unique_ptr<Supervisor>> Supervisor::Open(const SupervisorOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.exe.empty()) impl->options.exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(impl)));  // stops what started if one fails
  for (Service service : options.services) {
    TESSERA_RETURN_IF_ERROR(s->impl_->Resolve(service));
    s->impl_->running.push_back({std::move(service), {}, 0});
    TESSERA_RETURN_IF_ERROR(s->impl_->Start(s->impl_->running.back()));
  }
  return s;
}

Status Supervisor::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    int st = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &st, WNOHANG)) > 0) impl_->Reap(pid, st);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return OkStatus();
}

}  // namespace tessera::supervisor
