#include "server/supervisor/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace tessera::supervisor {
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string DescribeExit(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with status {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("killed by signal {}", WTERMSIG(st));
  return "ended";
}

Result<Launched> Launch(const std::string& exe, const std::vector<std::string>& args,
                        const std::vector<const wire::Listener*>& listeners) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Error(StatusCode::kInternal, "pipe: {}", std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  // dup2 onto itself clears close-on-exec in the child only (glibc >= 2.29): the child
  // inherits its listeners and none of the others this process holds.
  for (const wire::Listener* l : listeners) posix_spawn_file_actions_adddup2(&actions, l->fd(), l->fd());
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string prefix = std::string(wire::kListenFdsVariable) + "=";
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with(prefix)) envp.push_back(*e);
  }
  std::string listen_fds = prefix + wire::ListenFds(listeners);
  if (!listeners.empty()) envp.push_back(listen_fds.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Error(StatusCode::kInternal, "cannot start {}: {}", exe, std::strerror(rc));
  }
  return Launched{pid, fds[0]};
}

std::string Describe(const std::string& exe, const std::vector<std::string>& args) {
  std::string what = exe;
  for (size_t i = 0; i < args.size() && i < 2; ++i) what += " " + args[i];
  return what;
}

std::optional<std::string> ReadyEndpoint(const std::string& out) {
  const auto nl = out.find('\n');
  if (nl == std::string::npos || !out.starts_with("ready ")) return std::nullopt;
  return out.substr(6, nl - 6);
}

Status NotReady(const std::string& what, int wait_status, const std::string& out) {
  return Error(StatusCode::kUnavailable, "`{}` did not become ready ({}): {}", what, DescribeExit(wait_status),
               out.empty() ? "no output; see its log above" : out);
}

Result<Child> Spawn(const std::string& exe, const std::vector<std::string>& args, int timeout_ms,
                    const std::vector<const wire::Listener*>& listeners) {
  TESSERA_ASSIGN_OR_RETURN(Launched child, Launch(exe, args, listeners));
  std::string out;
  const int64_t deadline = SteadyMs() + timeout_ms;
  while (out.find('\n') == std::string::npos) {
    const int64_t left = deadline - SteadyMs();
    pollfd p{child.fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[256];
    const ssize_t n = ::read(child.fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(child.fd);
  if (auto endpoint = ReadyEndpoint(out)) return Child{child.pid, *endpoint};
  return NotReady(Describe(exe, args), Stop(child.pid, 1000), out);
}

int Stop(pid_t pid, int grace_ms) {
  int st = 0;
  ::kill(pid, SIGTERM);
  const int64_t deadline = SteadyMs() + grace_ms;
  while (SteadyMs() < deadline) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return st;
}

}  // namespace tessera::supervisor
