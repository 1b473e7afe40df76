// Test harness: several "hosts" on one machine, each a network namespace of its own joined to
// the others by a veth link to a switch (a bridge in a namespace of its own), as hosts on one
// subnet are. The namespaces share the file system, as cluster nodes share a parallel file
// system. Needs root (CI runs as root); Hosts::Available() says whether this machine allows it.
//
//   Hosts hosts({"store", "compute"});          // 10.77.0.1, 10.77.0.2
//   Process dealer(args, log, hosts.In("store"));
//   hosts.Disconnect("compute"); ... hosts.Connect("compute");
#pragma once

#include <string>
#include <vector>

namespace tessera::testing {

class Hosts {
 public:
  /// Why this machine cannot make the hosts (not root, no `ip netns`); empty when it can.
  static std::string Unavailable();

  /// Makes one namespace per name, in order 10.77.0.1, .2, ... on one /24, loopback up.
  explicit Hosts(std::vector<std::string> names);
  /// Kills what still runs in the namespaces and deletes them.
  ~Hosts();
  Hosts(const Hosts&) = delete;
  Hosts& operator=(const Hosts&) = delete;

  /// The host's address on the subnet.
  std::string address(const std::string& host) const;
  /// The launcher that runs a program on the host: {"ip", "netns", "exec", NAMESPACE}.
  std::vector<std::string> In(const std::string& host) const;
  /// Moves the calling thread onto the host (setns): sockets it opens from now on, the threads
  /// it starts and the programs it runs are there, until the Hosts end. Call it before the
  /// thread opens any socket, and end the Hosts on the same thread. Once per process: the
  /// client library's ZeroMQ threads stay in the namespace they were started in.
  void Enter(const std::string& host);
  /// Takes the host's link down (nothing reaches it or leaves it) or up again.
  void Disconnect(const std::string& host);
  void Connect(const std::string& host);
  /// Limits what the host sends to `rate` (tc's token bucket, e.g. "40mbit"); "" lifts it.
  void LimitRate(const std::string& host, const std::string& rate);
  /// Kills (SIGKILL) every process running on the host and waits until they are gone.
  void KillAll(const std::string& host);

 private:
  size_t Index(const std::string& host) const;
  void SetLink(const std::string& host, const std::string& state);
  std::string Namespace(const std::string& host) const;

  std::string prefix_;  // namespaces are PREFIX-NAME, PREFIX-switch
  std::vector<std::string> names_;
  int home_ = -1;  // the entering thread's own namespace
};

}  // namespace tessera::testing
