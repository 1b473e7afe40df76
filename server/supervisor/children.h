// Children: child processes started and stopped without waiting for them, for a process that
// must go on answering requests while its children start, end and restart (the slide manager).
//
// Start() returns at once with the child's pid; its ready line (see child_process.h) is read
// by Poll(), which then calls the start's callback with the child, or with why it did not
// become ready (it printed something else, ended, or said nothing before the deadline: it is
// then killed and reaped). Stop() sends SIGTERM, and SIGKILL once the grace has passed; Poll()
// calls the stop's callback when the child has ended. A child that ends on its own goes to
// the `exited` callback. Callbacks run inside Poll(), never inside Start() or Stop(), and may
// start and stop children themselves.
//
//   supervisor::Children kids;
//   kids.OnExit([&](pid_t pid, int st) { ...restart it... });
//   auto pid = kids.Start(exe, {"serve", "writer", ...}, 20000, [&](Result<Child> c) { ... });
//   while (!stop) { server.Next(kids.busy() ? 10 : 100); kids.Poll(); }
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status/status.h"
#include "server/supervisor/child_process.h"

namespace tessera::supervisor {

class Children {
 public:
  using Ready = std::function<void(Result<Child>)>;
  using Ended = std::function<void(int wait_status)>;

  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children();  // stops every child still running (SIGTERM, then SIGKILL after its grace)

  /// Starts `exe args...` (inheriting `listeners`, see child_process.h); `ready` is called
  /// from Poll() once it printed its ready line or failed to within `timeout_ms`. Fails at
  /// once only when the process cannot be started.
  Result<pid_t> Start(const std::string& exe, const std::vector<std::string>& args, int timeout_ms, Ready ready,
                      const std::vector<const wire::Listener*>& listeners = {});

  /// Asks `pid` to end (SIGTERM; SIGKILL after `grace_ms`); `ended` is called from Poll()
  /// when it has. A child still starting is stopped the same way and its ready callback is
  /// dropped. Stopping a child that is already stopping keeps the earlier grace.
  void Stop(pid_t pid, int grace_ms, Ended ended = {});

  /// Called from Poll() with every child that ended without being asked to.
  void OnExit(std::function<void(pid_t, int wait_status)> exited) { exited_ = std::move(exited); }

  /// Reads ready lines, kills children past their grace, reaps the ended, and runs the
  /// callbacks of all that happened. Never blocks.
  void Poll();

  /// Polls until every child has ended (those not stopping run on: stop them first).
  void Wait();

  /// Something is starting or stopping: poll again soon.
  bool busy() const;
  bool running(pid_t pid) const { return kids_.contains(pid); }
  /// No child runs (or is starting, or stopping).
  bool empty() const { return kids_.empty(); }

 private:
  struct Kid {
    std::string what;     // "serve writer", for messages
    int fd = -1;          // its stdout until the ready line arrived
    std::string out;      // what it printed so far
    int64_t ready_by = 0; // deadline for the ready line
    Ready ready;
    bool stopping = false;
    int64_t kill_at = 0;  // SIGKILL then, when stopping
    Ended ended;
  };
  void ReadReady(pid_t pid, Kid& kid, std::vector<std::function<void()>>& due);

  std::map<pid_t, Kid> kids_;
  std::function<void(pid_t, int)> exited_;
};

}  // namespace tessera::supervisor
