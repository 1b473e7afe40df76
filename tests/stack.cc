#include "tests/stack.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "client/client.h"

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <map>

extern char** environ;

namespace tessera::testing {
namespace {

// Starts argv with stdout on a pipe (*out_fd) and stderr on a pipe (*err_fd), or appended
// to `err_file` when one is given (then *err_fd is -1).
pid_t SpawnWithPipes(const std::vector<std::string>& argv, int* out_fd, int* err_fd,
                     const std::string& err_file = "") {
  int out[2], err[2] = {-1, -1};
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  if (err_file.empty()) {
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (err[1] >= 0) ::close(err[1]);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  *out_fd = out[0];
  *err_fd = err[0];
  return rc == 0 ? pid : -1;
}

}  // namespace

pid_t StartTessera(const std::vector<std::string>& args, const std::string& log_file,
                   const std::vector<std::string>& launcher) {
  std::vector<std::string> argv = launcher;
  argv.push_back(TesseraBin());
  argv.insert(argv.end(), args.begin(), args.end());
  return StartProgram(argv, log_file);
}

pid_t StartProgram(const std::vector<std::string>& argv, const std::string& log_file) {
  int out = -1, err = -1;
  const pid_t pid = SpawnWithPipes(argv, &out, &err, log_file);
  ::close(out);  // what it prints is not read (SIGPIPE is ignored there)
  return pid;
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * ::sysconf(_SC_PAGESIZE);
}

std::string TesseraBin() {
  const char* bin = std::getenv("TESSERA_BIN");
  return bin != nullptr ? bin : "build/cli/tessera";
}

std::string FreshDir(const std::string& tag) {
  static std::atomic<int> n{0};
  auto dir = std::filesystem::path(::testing::TempDir()) /
             ("tessera_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

namespace {

// The first line `fd` gives within 30 s ("" if none).
std::string ReadLine(int fd) {
  std::string line;
  pollfd p{fd, POLLIN, 0};
  while (line.find('\n') == std::string::npos && ::poll(&p, 1, 30000) > 0) {
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  return line.substr(0, line.find('\n'));
}

}  // namespace

Stack::Stack(std::vector<std::string> extra, std::string data_dir)
    : data_dir_(data_dir.empty() ? FreshDir("stack") : std::move(data_dir)) {
  std::vector<std::string> argv{TesseraBin(), "up", "--data", data_dir_, "--port", "0"};
  if (std::find(extra.begin(), extra.end(), "--auto-stitch") == extra.end()) {
    argv.insert(argv.end(), {"--auto-stitch", "false"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  int out = -1, err = -1;
  // The stack's log (quiet unless TESSERA_LOG is set) goes to a file beside its data.
  pid_ = SpawnWithPipes(argv, &out, &err, data_dir_ + "/tessera.log");
  // Wait for "ready manager=... data=..." (an event, with a generous deadline).
  const std::string line = ReadLine(out);
  ::close(out);
  const auto pos = line.find("manager=");
  if (line.rfind("ready ", 0) != 0 || pos == std::string::npos) {
    ADD_FAILURE() << "tessera up did not become ready; printed: " << line;
    return;
  }
  manager_ = line.substr(pos + 8, line.find_first_of(" \n", pos) - pos - 8);
  std::istringstream words(line.substr(6));
  for (std::string w; words >> w;) {
    if (const auto eq = w.find('='); eq != std::string::npos) endpoints_[w.substr(0, eq)] = w.substr(eq + 1);
  }
  // A secured stack (the default): this test process and the commands it runs hold its admin
  // credential, and HTTP requests its token.
  const std::string cred = endpoint("credential");
  if (cred.empty()) {
    ::unsetenv("TESSERA_CREDENTIAL");
  } else {
    ::setenv("TESSERA_CREDENTIAL", cred.c_str(), 1);
  }
  const Status used = UseCredential(cred);
  EXPECT_TRUE(used.ok()) << used.ToString();
  CurrentToken() = endpoint("token");
}

std::string& CurrentToken() {
  static std::string token;
  return token;
}

std::vector<pid_t> Stack::RolePids(const std::string& role, const std::string& arg) const {
  // Parent links of every process, then the stack's descendants among them.
  std::map<pid_t, pid_t> parent;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line) || line.rfind(')') == std::string::npos) continue;
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    char state = 0;
    pid_t ppid = 0;
    if (rest >> state >> ppid && state != 'Z') parent[std::stoi(name)] = ppid;
  }
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parent) {
    bool descendant = false;
    for (pid_t p = ppid; p > 1 && !descendant; p = parent.contains(p) ? parent[p] : 0) descendant = p == pid_;
    if (!descendant) continue;
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> argv;
    for (std::string a; std::getline(cmdline, a, '\0');) argv.push_back(a);
    if (argv.size() < 3 || argv[1] != "serve" || argv[2] != role) continue;
    if (!arg.empty() && std::find(argv.begin(), argv.end(), arg) == argv.end()) continue;
    out.push_back(pid);
  }
  return out;
}

Process::Process(const std::vector<std::string>& args, const std::string& log_file,
                 const std::vector<std::string>& launcher) {
  std::vector<std::string> argv = launcher;
  argv.push_back(TesseraBin());
  argv.insert(argv.end(), args.begin(), args.end());
  int err = -1;
  pid_ = SpawnWithPipes(argv, &out_, &err, log_file);
  ready_ = ReadLine(out_);
  EXPECT_EQ(ready_.rfind("ready", 0), 0u) << "tessera " << args[0] << " did not become ready";
}

Process::~Process() {
  if (out_ >= 0) ::close(out_);
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  int st = 0;
  ::waitpid(pid_, &st, 0);
}

void Process::Signal(int sig) {
  if (pid_ <= 0) return;
  ::kill(pid_, sig);
  if (sig == SIGKILL) {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
}

std::string Stack::endpoint(const std::string& name) const {
  auto it = endpoints_.find(name);
  return it == endpoints_.end() ? "" : it->second;
}

Stack::~Stack() { Stop(); }

int64_t Stack::Stop() {
  if (pid_ <= 0) return 0;
  const auto start = std::chrono::steady_clock::now();
  ::kill(pid_, SIGTERM);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
}

std::string RunResult::LastLine() const {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const auto nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

RunResult RunProgram(const std::vector<std::string>& argv) {
  int out = -1, err = -1;
  const pid_t pid = SpawnWithPipes(argv, &out, &err);
  RunResult r;
  if (pid <= 0) {  // not started (said so): waitpid(-1) below would wait for any child
    ::close(out);
    ::close(err);
    return r;
  }
  pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
  int open = 2;
  while (open > 0 && ::poll(fds, 2, -1) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

RunResult RunTessera(const std::vector<std::string>& args) {
  std::vector<std::string> argv{TesseraBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv);
}

}  // namespace tessera::testing
