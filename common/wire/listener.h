// Listening sockets that a parent holds for its children (socket activation): the supervisor
// opens each service's TCP port before it starts the service and keeps it, so no other program
// can take the port between the choice and the child's bind, and a restarted child serves on
// the very socket the dead one did (clients' connections wait in its backlog meanwhile).
//
//   parent:  auto l = wire::Listener::Open("127.0.0.1");      // port chosen by the kernel
//            args: "--bind", l->endpoint()                    // "tcp://127.0.0.1:40123"
//            Launch(exe, args, {&*l});                        // supervisor/child_process.h
//   child:   wire::Bind(socket, "tcp://127.0.0.1:40123")      // takes the inherited socket
//            int fd = wire::TakeInheritedListener(endpoint);  // or -1 (the gateway's acceptor)
//
// The child learns its sockets from the environment variable kListenFdsVariable,
// "tcp://HOST:PORT=FD" entries separated by spaces; it hides them from its own children.
#pragma once

#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::wire {

inline constexpr const char* kListenFdsVariable = "TESSERA_LISTEN_FDS";

/// A TCP socket bound and listening in this process (close-on-exec; handed to a child only
/// when it is started with it). Move-only; closes the socket when destroyed.
class Listener {
 public:
  /// Binds `host` (an IPv4 address, or "*" for every interface) at `port`, 0 for one the kernel chooses. INVALID_ARGUMENT
  /// for a host that is no IPv4 address, UNAVAILABLE when the port is taken.
  static Result<Listener> Open(const std::string& host, int port = 0);

  Listener(Listener&& o) noexcept;
  Listener& operator=(Listener&& o) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  int fd() const { return fd_; }
  int port() const { return port_; }
  /// "tcp://HOST:PORT", the endpoint the child binds.
  const std::string& endpoint() const { return endpoint_; }

 private:
  Listener(int fd, int port, std::string endpoint) : fd_(fd), port_(port), endpoint_(std::move(endpoint)) {}
  int fd_ = -1;
  int port_ = 0;
  std::string endpoint_;
};

/// The value of kListenFdsVariable that hands `listeners` to a child.
std::string ListenFds(const std::vector<const Listener*>& listeners);

/// The listening socket this process inherited for `endpoint` ("tcp://HOST:PORT", as the
/// parent wrote it), or -1. Each is handed out once; the first call reads the environment,
/// checks that every entry is a listening TCP socket (others are ignored, with a warning),
/// marks them close-on-exec and removes the variable.
int TakeInheritedListener(const std::string& endpoint);

}  // namespace tessera::wire
