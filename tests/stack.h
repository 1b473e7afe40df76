// Test harness: runs real `tessera` processes on loopback, on ports chosen at run time.
//
//   Stack stack({"--fifo-bytes", "4000000"});   // tessera up --data <tmp> --port 0 ...
//   auto out = RunTessera({"scan", "--synthetic", "--server", stack.manager()});
//   EXPECT_EQ(out.exit_code, 0);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace tessera::testing {

/// The tessera binary under test (env TESSERA_BIN, set by CMake).
std::string TesseraBin();

/// A fresh folder under the test temp dir, removed by the caller if it wishes.
std::string FreshDir(const std::string& tag);

class Stack {
 public:
  /// Starts `tessera up --data DIR --port 0 <extra>` and waits for its ready line. The
  /// stack does not stitch slides as they close (the tests of other things read them at
  /// their stage positions) unless `extra` has "--auto-stitch", "true".
  explicit Stack(std::vector<std::string> extra = {}, std::string data_dir = "");
  ~Stack();  // Stop()
  /// SIGTERM, and waits until `tessera up` has ended: the milliseconds that took (0 when it
  /// had ended already).
  int64_t Stop();
  const std::string& manager() const { return manager_; }
  /// The admin credential file of the stack (the test process uses it from the start), and
  /// its HTTP token; empty for a stack run --insecure.
  std::string credential() const { return endpoint("credential"); }
  std::string token() const { return endpoint("token"); }
  /// An endpoint of the ready line ("dealer", "http", ...); empty if it has none.
  std::string endpoint(const std::string& name) const;
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  /// The processes of the stack (its descendants) started as `tessera serve ROLE ...` whose
  /// arguments also hold `arg` (e.g. a slide id), lowest pid first.
  std::vector<pid_t> RolePids(const std::string& role, const std::string& arg = "") const;

 private:
  pid_t pid_ = -1;
  std::string manager_;
  std::string data_dir_;
  std::map<std::string, std::string> endpoints_;
};

/// The HTTP token of the stack started last (empty: none, or an insecure one).
std::string& CurrentToken();

/// A `tessera` role run in the background (e.g. `serve worker ...`), its stderr appended
/// to `log_file`; the constructor waits for its ready line. SIGTERM and wait when destroyed.
/// `launcher` runs it through another program (e.g. Hosts::In: on another "host").
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& log_file,
          const std::vector<std::string>& launcher = {});
  ~Process();
  pid_t pid() const { return pid_; }
  const std::string& ready_line() const { return ready_; }
  /// Sends `sig`; SIGKILL also reaps the process.
  void Signal(int sig);

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string ready_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
  /// The last non-empty line of stdout.
  std::string LastLine() const;
};

/// Starts `tessera args...` in the background (through `launcher`, if any), its stderr appended
/// to `log_file`, and returns its pid at once; the caller ends it (kill, waitpid).
pid_t StartTessera(const std::vector<std::string>& args, const std::string& log_file,
                   const std::vector<std::string>& launcher = {});

/// Starts any program in the background, its stderr appended to `log_file`; returns its pid.
pid_t StartProgram(const std::vector<std::string>& argv, const std::string& log_file);

/// The process's resident memory in bytes (/proc/PID/statm); 0 once it has ended.
int64_t ResidentBytes(pid_t pid);

/// Runs `tessera args...` to completion.
RunResult RunTessera(const std::vector<std::string>& args);

/// Polls `done()`, an observed state (a process's answer, a file), every few milliseconds
/// until it holds; false once `deadline_ms` have passed.
template <typename Done>
bool WaitFor(Done done, int deadline_ms = 30000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// Runs any program to completion.
RunResult RunProgram(const std::vector<std::string>& argv);

}  // namespace tessera::testing
