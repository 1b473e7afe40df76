#include "server/scaler/scaler.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "client/client.h"
#include "common/log/log.h"
#include "server/stitcher/stitcher.h"

extern char** environ;

namespace tessera::scaler {
namespace {

struct Output {
  int status = -1;  // the exit status; -1: not started or timed out
  std::string out, err;
};

// Runs a scheduler tool (found on PATH) with `extra_env` added to this process's environment;
// kills it after `timeout_ms`. Its output is small (a job id, a job list): read whole.
Output RunTool(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env, int timeout_ms) {
  Output r;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return r;
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  for (const auto& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    r.err = fmt::format("cannot run {}: {}", argv[0], std::strerror(rc));
    return r;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(fds, 2, static_cast<int>(left.count())) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      std::string& to = i == 0 ? r.out : r.err;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else if (to.size() < (1u << 20)) {
        to.append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  if (open > 0) {  // still writing past its deadline
    ::kill(pid, SIGKILL);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);  // it has closed its output: it is ending, or was killed
  if (open > 0) {
    r.err += fmt::format("{} did not answer within {} ms", argv[0], timeout_ms);
    return r;
  }
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

constexpr int kToolTimeoutMs = 20000;

}  // namespace

uint32_t WantedWorkers(uint64_t tasks, const ScalerOptions& o) {
  const uint64_t per = std::max<uint32_t>(o.tasks_per_worker, 1);
  const uint64_t wanted = (tasks + per - 1) / per;
  return static_cast<uint32_t>(std::clamp<uint64_t>(wanted, o.min_workers, o.max_workers));
}

struct Scaler::Impl {
  ScalerOptions o;
  std::vector<std::string> env;  // what each job is given
  std::shared_ptr<spdlog::logger> log = log::Get("scaler");
  std::vector<std::string> jobs;  // submitted and not yet ended (pending or running): Run's thread only
  int64_t last_busy_ms = 0;

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // The jobs named ours the scheduler lists (pending, running, completing); UNAVAILABLE, saying
  // why, when squeue does not answer.
  Result<std::set<std::string>> Listed() const {
    const Output r = RunTool({o.squeue, "--noheader", "--format=%i", "--name=" + o.job_name}, {}, kToolTimeoutMs);
    if (r.status != 0) {
      return Error(StatusCode::kUnavailable, "the scheduler does not answer ({}: {}): is Slurm's client installed "
                   "and SLURM_CONF right?", o.squeue, Trimmed(r.err));
    }
    std::set<std::string> listed;
    std::istringstream lines(r.out);
    for (std::string id; lines >> id;) listed.insert(id);
    return listed;
  }

  Status Submit() {
    std::vector<std::string> argv{o.sbatch, "--parsable", "--job-name=" + o.job_name};
    argv.insert(argv.end(), o.submit_args.begin(), o.submit_args.end());
    argv.push_back(o.script);
    const Output r = RunTool(argv, env, kToolTimeoutMs);
    // --parsable prints "JOBID" or "JOBID;CLUSTER".
    const std::string id = Trimmed(r.out.substr(0, r.out.find(';')));
    if (r.status != 0 || id.empty() || id.find_first_not_of("0123456789_") != std::string::npos) {
      return Error(StatusCode::kUnavailable, "sbatch {} failed: {}{}", o.script, Trimmed(r.err), Trimmed(r.out));
    }
    jobs.push_back(id);
    log->info("submitted job={} workers={}", id, jobs.size());
    return OkStatus();
  }

  void Cancel(const std::vector<std::string>& ids) {
    if (ids.empty()) return;
    std::vector<std::string> argv{o.scancel};
    argv.insert(argv.end(), ids.begin(), ids.end());
    const Output r = RunTool(argv, {}, kToolTimeoutMs);
    if (r.status != 0) log->warn("scancel failed: {}", Trimmed(r.err));
    std::erase_if(jobs, [&](const std::string& j) { return std::find(ids.begin(), ids.end(), j) != ids.end(); });
    log->info("let go jobs={} workers={}", fmt::join(ids, ","), jobs.size());
  }

  void Step() {
    auto broker = stitcher::QueryBroker(o.manager);
    if (!broker.ok()) {
      log->warn("broker: {}", broker.status().ToString());
      return;
    }
    if (env.empty()) {
      // The broker's TCP endpoint (the manager's "broker"), which the cluster's nodes reach; not
      // its Unix socket, which only this host has.
      std::string b = o.broker;
      if (b.empty()) {
        auto endpoints = Client(o.manager).Endpoints();
        if (!endpoints.ok() || !endpoints->contains("broker")) {
          log->warn("the manager names no broker endpoint: {}", endpoints.ok() ? "" : endpoints.status().ToString());
          return;
        }
        b = endpoints->at("broker");
      }
      env = {"TESSERA_BROKER=" + b, "TESSERA_MANAGER=" + o.manager,
             "TESSERA_WORKER_CREDENTIAL=" + std::filesystem::absolute(o.credential).string(),
             "TESSERA_BIN=" + std::filesystem::read_symlink("/proc/self/exe").string()};
    }
    uint64_t tasks = 0;
    for (const auto& q : broker->queues) tasks += q.queued + q.running;
    // Jobs that ended by themselves (time limit, node failure, killed) are forgotten.
    const auto listed = Listed();
    if (!listed.ok()) {
      log->warn("{}", listed.status().ToString());
      return;
    }
    std::erase_if(jobs, [&](const std::string& j) { return !listed->contains(j); });
    const int64_t now = NowMs();
    if (tasks > 0) last_busy_ms = now;
    const uint32_t wanted = WantedWorkers(tasks, o);
    size_t have = jobs.size();
    for (; have < wanted; ++have) {
      if (Status s = Submit(); !s.ok()) {
        log->warn("{}", s.ToString());
        break;
      }
    }
    if (tasks == 0 && now - last_busy_ms >= o.idle_ms && have > o.min_workers) {
      Cancel({jobs.begin() + static_cast<std::ptrdiff_t>(o.min_workers), jobs.end()});
    }
  }
};

Result<std::unique_ptr<Scaler>> Scaler::Open(const ScalerOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(options.script, ec)) {
    return Error(StatusCode::kInvalidArgument, "the batch script {} is not a file (deploy/slurm/tessera-worker.sbatch)",
                 options.script);
  }
  if (!std::filesystem::is_regular_file(options.credential, ec)) {
    return Error(StatusCode::kInvalidArgument,
                 "the workers' credential {} is not a file (make one: tessera credential new --role worker -o FILE)",
                 options.credential);
  }
  if (options.max_workers == 0 || options.min_workers > options.max_workers) {
    return Error(StatusCode::kInvalidArgument, "workers: need 0 <= min ({}) <= max ({}), max >= 1",
                 options.min_workers, options.max_workers);
  }
  auto impl = std::make_unique<Impl>();
  impl->o = options;
  TESSERA_RETURN_IF_ERROR(impl->Listed().status());
  impl->last_busy_ms = Impl::NowMs();
  return std::unique_ptr<Scaler>(new Scaler(std::move(impl)));
}

Scaler::Scaler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scaler::~Scaler() = default;

Status Scaler::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    impl_->Step();
    for (int waited = 0; waited < impl_->o.poll_ms && !stop.load(); waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  impl_->Cancel(std::vector<std::string>(impl_->jobs));  // a copy: Cancel erases from the list
  return OkStatus();
}

}  // namespace tessera::scaler
