#include "tests/hosts.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "tests/stack.h"

namespace tessera::testing {
namespace {

// Runs `ip`/`tc` with its arguments; a failure fails the test, with what it printed.
bool Ip(const std::vector<std::string>& argv) {
  const RunResult r = RunProgram(argv);
  std::string line;
  for (const auto& a : argv) line += a + " ";
  EXPECT_EQ(r.exit_code, 0) << line << ": " << r.err;
  return r.exit_code == 0;
}

std::vector<pid_t> PidsIn(const std::string& ns) {
  const RunResult r = RunProgram({"/usr/bin/ip", "netns", "pids", ns});
  std::vector<pid_t> pids;
  std::istringstream in(r.out);
  for (pid_t p; in >> p;) {
    if (p != ::getpid()) pids.push_back(p);  // this test, when a thread of it is on the host
  }
  return pids;
}

int& Count() {
  static int n = 0;
  return n;
}

}  // namespace

std::string Hosts::Unavailable() {
  if (::geteuid() != 0) return "needs root (network namespaces)";
  const std::string probe = "tessera-probe-" + std::to_string(::getpid());
  const RunResult made = RunProgram({"/usr/bin/ip", "netns", "add", probe});
  if (made.exit_code != 0) return "ip netns add failed: " + made.err;
  RunProgram({"/usr/bin/ip", "netns", "del", probe});
  return "";
}

Hosts::Hosts(std::vector<std::string> names)
    : prefix_("tessera-" + std::to_string(::getpid()) + "-" + std::to_string(Count()++)), names_(std::move(names)) {
  const std::string sw = prefix_ + "-switch";
  Ip({"/usr/bin/ip", "netns", "add", sw});
  Ip({"/usr/bin/ip", "-n", sw, "link", "add", "name", "br0", "type", "bridge"});
  Ip({"/usr/bin/ip", "-n", sw, "link", "set", "dev", "br0", "up"});
  for (size_t i = 0; i < names_.size(); ++i) {
    const std::string ns = Namespace(names_[i]);
    const std::string port = "p" + std::to_string(i);
    Ip({"/usr/bin/ip", "netns", "add", ns});
    Ip({"/usr/bin/ip", "link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", sw});
    Ip({"/usr/bin/ip", "-n", sw, "link", "set", "dev", port, "master", "br0"});
    Ip({"/usr/bin/ip", "-n", sw, "link", "set", "dev", port, "up"});
    Ip({"/usr/bin/ip", "-n", ns, "addr", "add", address(names_[i]) + "/24", "dev", "eth0"});
    Ip({"/usr/bin/ip", "-n", ns, "link", "set", "dev", "eth0", "up"});
    Ip({"/usr/bin/ip", "-n", ns, "link", "set", "dev", "lo", "up"});
  }
}

Hosts::~Hosts() {
  if (home_ >= 0) {  // the thread that entered a host leaves it
    ::setns(home_, CLONE_NEWNET);
    ::close(home_);
  }
  for (const auto& n : names_) KillAll(n);
  for (const auto& n : names_) RunProgram({"/usr/bin/ip", "netns", "del", Namespace(n)});
  RunProgram({"/usr/bin/ip", "netns", "del", prefix_ + "-switch"});
}

size_t Hosts::Index(const std::string& host) const {
  const auto it = std::find(names_.begin(), names_.end(), host);
  if (it == names_.end()) ADD_FAILURE() << "no host " << host;
  return static_cast<size_t>(it - names_.begin());
}

std::string Hosts::Namespace(const std::string& host) const { return prefix_ + "-" + host; }

std::string Hosts::address(const std::string& host) const {
  return "10.77.0." + std::to_string(Index(host) + 1);
}

std::vector<std::string> Hosts::In(const std::string& host) const {
  return {"/usr/bin/ip", "netns", "exec", Namespace(host)};
}

void Hosts::Enter(const std::string& host) {
  const std::string path = "/var/run/netns/" + Namespace(host);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  if (home_ < 0) home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  EXPECT_EQ(::setns(fd, CLONE_NEWNET), 0) << "setns " << path;
  ::close(fd);
}

void Hosts::Disconnect(const std::string& host) { SetLink(host, "down"); }

void Hosts::Connect(const std::string& host) { SetLink(host, "up"); }

// The host's port on the switch, "up" or "down".
void Hosts::SetLink(const std::string& host, const std::string& state) {
  Ip({"/usr/bin/ip", "-n", prefix_ + "-switch", "link", "set", "dev", "p" + std::to_string(Index(host)), state});
}

void Hosts::LimitRate(const std::string& host, const std::string& rate) {
  if (rate.empty()) {
    Ip({"/usr/sbin/tc", "-n", Namespace(host), "qdisc", "del", "dev", "eth0", "root"});
  } else {
    Ip({"/usr/sbin/tc", "-n", Namespace(host), "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate,
        "burst", "64kb", "latency", "100ms"});
  }
}

void Hosts::KillAll(const std::string& host) {
  const std::string ns = Namespace(host);
  const bool gone = WaitFor([&] {
    const auto pids = PidsIn(ns);
    for (pid_t p : pids) ::kill(p, SIGKILL);
    return pids.empty();
  }, 10000);
  EXPECT_TRUE(gone) << "processes still run on " << host;
}

}  // namespace tessera::testing
