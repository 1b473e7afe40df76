// Child processes of the stack: its services (under the supervisor) and each slide's proxy,
// writer and stitcher (under the slide manager), each a
// `tessera serve ROLE ...` that prints "ready <endpoint>" on stdout once it serves.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::supervisor {

struct Child {
  pid_t pid = -1;
  std::string endpoint;  ///< from the child's "ready <endpoint>" line
};

/// Starts `exe args...` and waits up to `timeout_ms` for its ready line. On failure the
/// child is killed and the Status says what it printed or how it ended.
Result<Child> Spawn(const std::string& exe, const std::vector<std::string>& args, int timeout_ms);

/// SIGTERM, then SIGKILL after `grace_ms`; reaps the child. Returns its wait status.
int Stop(pid_t pid, int grace_ms);

/// "exited with status 3" / "killed by signal 9".
std::string DescribeExit(int wait_status);

}  // namespace tessera::supervisor
