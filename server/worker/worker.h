// Worker: takes tasks from the broker, one at a time, for the services it offers, and
// answers each with its result (server/broker/broker.h; BrokerMessage in proto/tessera.proto).
//
// Services:
//   register   register two overlapping fields of view (common/stitch/register.h): reads
//              only the windows of both that can overlap, from the tile dealer
//   fuse       one chunk of the fused image (common/stitch/fuse.h): the windows of the tiles
//              over it, feathered, compressed with the slide's codec; the chunk is the answer
//   deskew     a few planes of one stack of an oblique scan (common/deskew/deskew.h): the raw
//              planes read from the tile dealer, turned, sheared, their zoom levels made, each
//              chunk compressed with the slide's codec; the chunks are the answer
//
// A worker reads pixels through the client library (the stack's manager names the
// dealer), so it runs on any host that reaches the broker and the dealer. It heartbeats to
// the broker while it works; when the broker goes silent it connects again and says ready,
// and when the broker gives its task to another worker it drops its own answer.
//
//   auto w = Worker::Open({.broker = "tcp://10.0.0.1:7410", .manager = "tcp://10.0.0.1:7400"});
//   (*w)->Run(stop_flag);
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::worker {

/// The services this build of the worker can offer.
const std::vector<std::string>& KnownServices();

struct WorkerOptions {
  std::string broker;                              ///< the broker's endpoint
  std::string manager;                             ///< the stack's manager (finds the dealer)
  std::vector<std::string> services = {"register", "fuse", "deskew", "destripe"};
  std::string name;                                ///< in `tessera ps`; default host:pid
  int heartbeat_ms = 1000;                         ///< as the broker's
  int heartbeat_misses = 3;                        ///< the broker silent this long: connect again
};

class Worker {
 public:
  /// INVALID_ARGUMENT for an unknown service or a missing endpoint.
  static Result<std::unique_ptr<Worker>> Open(const WorkerOptions& options);
  ~Worker();

  /// host:pid, or the name given.
  const std::string& name() const;
  /// Works until `stop` becomes true.
  Status Run(const std::atomic<bool>& stop);

  struct Impl;

 private:
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::worker
