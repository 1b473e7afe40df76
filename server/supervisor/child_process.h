// Child processes of the stack: its services (under the supervisor) and each slide's proxy,
// writer and stitcher (under the slide manager), each a
// `tessera serve ROLE ...` that prints "ready <endpoint>" on stdout once it serves.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status/status.h"
#include "common/wire/listener.h"

namespace tessera::supervisor {

struct Child {
  pid_t pid = -1;
  std::string endpoint;  ///< from the child's "ready <endpoint>" line
};

/// Starts `exe args...` and waits up to `timeout_ms` for its ready line. On failure the
/// child is killed and the Status says what it printed or how it ended. The child inherits
/// `listeners` (and no other socket of this process) and serves on them (listener.h).
Result<Child> Spawn(const std::string& exe, const std::vector<std::string>& args, int timeout_ms,
                    const std::vector<const wire::Listener*>& listeners = {});

/// A child just started: its pid, and the read end of its stdout (close-on-exec).
struct Launched {
  pid_t pid = -1;
  int fd = -1;
};

/// Starts `exe args...` with its stdout on a pipe and `listeners` inherited, without waiting
/// for anything.
Result<Launched> Launch(const std::string& exe, const std::vector<std::string>& args,
                        const std::vector<const wire::Listener*>& listeners = {});

/// The endpoint of a complete ready line at the start of `out`; nullopt otherwise.
std::optional<std::string> ReadyEndpoint(const std::string& out);

/// UNAVAILABLE: `what` ended (or was stopped) with `wait_status` after printing `out`.
Status NotReady(const std::string& what, int wait_status, const std::string& out);

/// "exe serve writer": a child's first words, for messages.
std::string Describe(const std::string& exe, const std::vector<std::string>& args);

/// A monotonic clock in milliseconds.
int64_t SteadyMs();

/// SIGTERM, then SIGKILL after `grace_ms`; reaps the child. Returns its wait status.
int Stop(pid_t pid, int grace_ms);

/// "exited with status 3" / "killed by signal 9".
std::string DescribeExit(int wait_status);

/// The exit status of a child asked to stop (SIGTERM) before its work was done, which is to
/// be resumed where it left off (a stitcher): EX_TEMPFAIL. Any other status of 1 or more is a
/// failure the child reported.
inline constexpr int kExitInterrupted = 75;

}  // namespace tessera::supervisor
