#include "server/supervisor/children.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace tessera::supervisor {
namespace {

constexpr int kNotReadyGraceMs = 1000;  // a child that failed to start gets this to end

}  // namespace

Children::~Children() {
  for (auto& [pid, kid] : kids_) {
    if (kid.fd >= 0) ::close(kid.fd);
    supervisor::Stop(pid, kid.stopping ? static_cast<int>(std::max<int64_t>(0, kid.kill_at - SteadyMs())) : 30000);
  }
}

Result<pid_t> Children::Start(const std::string& exe, const std::vector<std::string>& args, int timeout_ms,
                              Ready ready, const std::vector<const wire::Listener*>& listeners) {
  TESSERA_ASSIGN_OR_RETURN(Launched child, Launch(exe, args, listeners));
  ::fcntl(child.fd, F_SETFL, ::fcntl(child.fd, F_GETFL) | O_NONBLOCK);
  Kid& kid = kids_[child.pid];
  kid.what = Describe(exe, args);
  kid.fd = child.fd;
  kid.ready_by = SteadyMs() + timeout_ms;
  kid.ready = std::move(ready);
  return child.pid;
}

void Children::Stop(pid_t pid, int grace_ms, Ended ended) {
  auto it = kids_.find(pid);
  if (it == kids_.end()) return;
  Kid& kid = it->second;
  if (kid.fd >= 0) {
    ::close(kid.fd);
    kid.fd = -1;
  }
  kid.ready = nullptr;
  if (ended) kid.ended = std::move(ended);
  if (kid.stopping) return;
  kid.stopping = true;
  kid.kill_at = SteadyMs() + grace_ms;
  ::kill(pid, SIGTERM);
}

void Children::Wait() {
  while (!kids_.empty()) {
    Poll();
    if (!kids_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool Children::busy() const {
  for (const auto& [pid, kid] : kids_) {
    if (kid.fd >= 0 || kid.stopping) return true;
  }
  return false;
}

// Reads what a starting child printed. Ready: its callback is due. Anything else, an end of
// its output or a passed deadline: it is stopped, and its callback says why once it ended.
void Children::ReadReady(pid_t pid, Kid& kid, std::vector<std::function<void()>>& due) {
  bool ended = false;  // its output ended, could not be read, or is longer than a ready line
  while (!ended && kid.out.find('\n') == std::string::npos) {
    char buf[256];
    const ssize_t n = ::read(kid.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n > 0) kid.out.append(buf, static_cast<size_t>(n));
    ended = n <= 0 || kid.out.size() > 4096;
  }
  if (auto endpoint = ReadyEndpoint(kid.out)) {
    ::close(kid.fd);
    kid.fd = -1;
    if (kid.ready) due.push_back([ready = std::move(kid.ready), c = Child{pid, *endpoint}] { ready(c); });
    kid.ready = nullptr;
    kid.out.clear();
    return;
  }
  if (!ended && kid.out.find('\n') == std::string::npos && SteadyMs() < kid.ready_by) return;
  Ready ready = std::move(kid.ready);
  std::string what = kid.what, out = kid.out;
  Stop(pid, kNotReadyGraceMs, [ready = std::move(ready), what, out](int st) {
    if (ready) ready(NotReady(what, st, out));
  });
}

void Children::Poll() {
  std::vector<std::function<void()>> due;
  const int64_t now = SteadyMs();
  for (auto it = kids_.begin(); it != kids_.end();) {
    const pid_t pid = it->first;
    Kid& kid = it->second;
    if (kid.fd >= 0) {
      ReadReady(pid, kid, due);
    }
    if (kid.stopping && now >= kid.kill_at) ::kill(pid, SIGKILL);
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) != pid) {
      ++it;
      continue;
    }
    if (kid.fd >= 0) ::close(kid.fd);
    if (kid.stopping) {
      if (kid.ended) due.push_back([ended = std::move(kid.ended), st] { ended(st); });
    } else if (kid.ready) {  // ended before its ready line
      due.push_back([ready = std::move(kid.ready), what = kid.what, out = kid.out, st] {
        ready(NotReady(what, st, out));
      });
    } else if (exited_) {
      due.push_back([this, pid, st] { exited_(pid, st); });
    }
    it = kids_.erase(it);
  }
  for (auto& f : due) f();
}

}  // namespace tessera::supervisor
