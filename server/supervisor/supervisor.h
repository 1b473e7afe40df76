// Supervisor: runs the stack's long-lived roles (`tessera up`: tile dealer, broker, workers,
// gateway, and the slide manager itself) as child processes and starts each again, where it
// listened, when it dies. It serves no requests, so a restart never waits behind one; the
// slide manager, one of its children, runs each slide's proxy, writer and stitcher.
//
//   SupervisorOptions o{.host = "127.0.0.1"};
//   o.services.push_back({"dealer", {"serve", "dealer", "--bind", "tcp://127.0.0.1:{port}", ...}});
//   o.services.push_back({"manager", {"serve", "manager", "--endpoint", "dealer={dealer}", ...}});
//   auto s = Supervisor::Open(o);       // starts them in order, each once ready
//   (*s)->endpoints();                  // what their ready lines announced
//   (*s)->Run(stop_flag);               // restarts the dead; stops them all, the last first
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"
#include "common/wire/listener.h"

namespace tessera::supervisor {

/// One role. `args` are `tessera` arguments in which each "{port}" becomes the port of a TCP
/// socket the supervisor opens on its host and keeps (wire::Listener), so that a restarted
/// service serves on the socket the first one did, and "{NAME}" the endpoint NAME that a
/// service started before announced (e.g. "{broker}"). Its ready line lists `name=endpoint`
/// pairs, which join the endpoints.
struct Service {
  std::string name;
  std::vector<std::string> args;
  /// Sockets the service serves on besides its "{port}" ones (opened before anything starts
  /// when other services must know the port: the manager's).
  std::vector<std::shared_ptr<const wire::Listener>> listeners;
};

struct SupervisorOptions {
  std::string exe;                ///< the tessera binary (default: this one)
  std::string host = "127.0.0.1"; ///< where "{port}" sockets listen (IPv4)
  std::vector<Service> services;  ///< started in this order, stopped in the reverse one
  int max_restarts = 20;          ///< per service; then it stays down, and the log says so
};

class Supervisor {
 public:
  /// Starts every service in order, each once the one before is ready; UNAVAILABLE naming the
  /// service that did not become ready (the ones started are stopped).
  static Result<std::unique_ptr<Supervisor>> Open(const SupervisorOptions& options);
  ~Supervisor();  // stops every service, the last started first

  /// Every endpoint the services announced ("manager", "dealer", "http", ...).
  const std::map<std::string, std::string>& endpoints() const;
  /// Restarts services that die until `stop` becomes true.
  Status Run(const std::atomic<bool>& stop);

 private:
  struct Impl;
  explicit Supervisor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::supervisor
