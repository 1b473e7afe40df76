#include "server/supervisor/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace tessera::supervisor {
namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string DescribeExit(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with status {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("killed by signal {}", WTERMSIG(st));
  return "ended";
}

Result<Child> Spawn(const std::string& exe, const std::vector<std::string>& args, int timeout_ms) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Error(StatusCode::kInternal, "pipe: {}", std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Error(StatusCode::kInternal, "cannot start {}: {}", exe, std::strerror(rc));
  }
  std::string out;
  const int64_t deadline = Now() + timeout_ms;
  while (out.find('\n') == std::string::npos) {
    const int64_t left = deadline - Now();
    pollfd p{fds[0], POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[256];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  const auto nl = out.find('\n');
  if (nl != std::string::npos && out.starts_with("ready ")) {
    return Child{pid, out.substr(6, nl - 6)};
  }
  const int st = Stop(pid, 1000);
  return Error(StatusCode::kUnavailable, "`{} {}` did not become ready ({}): {}", exe,
               args.empty() ? "" : args[0] + " " + (args.size() > 1 ? args[1] : ""),
               DescribeExit(st), out.empty() ? "no output; see its log above" : out);
}

int Stop(pid_t pid, int grace_ms) {
  int st = 0;
  ::kill(pid, SIGTERM);
  const int64_t deadline = Now() + grace_ms;
  while (Now() < deadline) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return st;
}

}  // namespace tessera::supervisor
