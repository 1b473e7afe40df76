// SlideManager, the slide service: opens and closes slides, keeps the catalog, runs each open
// slide's proxy and writer and each stitch as child processes and restarts them when they
// die. It is itself a child of the supervisor (server/supervisor) in `tessera up`, which
// starts it again when it dies: it then restarts the children of every slide still
// acquiring and every stitch that was running.
//
// One process per slide role (as in the seed design): one slide's crash or HDF5 lock
// never stalls another. The manager answers ManagerRequest messages on a ROUTER socket
// (proto/tessera.proto): open, close, list, get, endpoints.
//
//   ManagerOptions o{.data_dir = "data", .bind = "tcp://127.0.0.1:7400"};
//   auto m = SlideManager::Open(o);
//   std::cout << "ready manager=" << (*m)->endpoint() << "\n";
//   (*m)->Run(stop_flag);   // until stop_flag is set; stops the children
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::manager {

struct ManagerOptions {
  std::string data_dir = "data";          ///< catalog.sqlite and slides/ live here
  std::string bind = "tcp://127.0.0.1:7400";
  std::string child_host = "127.0.0.1";   ///< where proxies and writers listen
  std::string exe;                        ///< the tessera binary (default: this one)
  uint64_t fifo_bytes = uint64_t{1} << 30;
  int sync_interval_ms = 1000;
  bool fsync = true;
  int max_restarts = 20;                  ///< per child, before the slide is marked failed
  bool auto_stitch = true;                ///< stitch a slide when it closes (if its plan asks, and
                                          ///< the stack has a broker)
  std::string events;                     ///< where writers publish SlideEvents (the dealer's
                                          ///< "dealer_events" endpoint)
  /// Other roles of the stack, reported to clients (e.g. "dealer" -> endpoint); "broker"
  /// is where stitches run.
  std::map<std::string, std::string> endpoints;
  /// The stack's security folder (common/security): created the first time; this process
  /// and every child it starts join the stack with its keys, and the manager issues
  /// credentials there. Empty: an insecure stack (loopback only).
  std::string security_dir;
};

class SlideManager {
 public:
  /// Opens the catalog, binds, and restarts the proxy and writer of every slide that
  /// was still acquiring when the manager last stopped.
  static Result<std::unique_ptr<SlideManager>> Open(const ManagerOptions& options);
  ~SlideManager();

  const std::string& endpoint() const;
  /// The admin credential of a secured stack (security_dir/admin.credential), written with
  /// this manager's endpoint; empty when insecure.
  const std::string& admin_credential() const;

  /// Serves until `stop` becomes true, then stops every child (slides stay acquiring
  /// and resume at the next start).
  Status Run(const std::atomic<bool>& stop);

 private:
  struct Impl;
  explicit SlideManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::manager
