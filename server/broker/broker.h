// Broker: hands tasks (register a pair, fuse a chunk, ...) from clients to the workers that
// offer their service, Majordomo-style (zguide ch. 4; BrokerMessage in proto/tessera.proto).
//
// One ROUTER socket for both sides. A worker says which services it offers (ready), then
// the broker gives it one task at a time and both sides heartbeat. Tasks wait in a queue
// per service, bounded in count and bytes (a client past the bound gets RESOURCE_EXHAUSTED
// and tries again later). A worker that is silent for `heartbeat_misses` heartbeats, or
// on one task past `task_timeout_ms`, is dropped and its task goes back to the head of the
// queue for another worker; a task whose tries reach `max_attempts` (the worker died, or
// answered INTERNAL / UNAVAILABLE / DEADLINE_EXCEEDED) fails for good with the last
// reason, and any other error is the task's answer at once. Results go back to the client
// that sent the task, with the client's task id.
//
//   auto b = Broker::Open({.bind = "tcp://127.0.0.1:0"});
//   std::cout << "ready broker=" << (*b)->endpoint() << "\n";
//   (*b)->Run(stop_flag);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status/status.h"

namespace tessera::broker {

struct BrokerOptions {
  std::string bind = "tcp://127.0.0.1:0";
  /// An ipc:// endpoint it also serves, for the workers and stitchers on its host (no TCP, no
  /// encryption; a secured stack still checks their credential there). Empty: none.
  std::string local;
  int heartbeat_ms = 1000;                       ///< both ways
  int heartbeat_misses = 3;                      ///< a worker silent this long is dropped
  int task_timeout_ms = 120000;                  ///< a worker on one task longer is dropped
  uint32_t max_attempts = 3;                     ///< tries of one task before it fails for good
  uint32_t max_queued_tasks = 100000;            ///< over every service
  uint64_t max_queued_bytes = uint64_t{256} << 20;
};

class Broker {
 public:
  /// UNAVAILABLE when the endpoint cannot be bound.
  static Result<std::unique_ptr<Broker>> Open(const BrokerOptions& options);
  ~Broker();

  /// The bound endpoint (the port resolved).
  const std::string& endpoint() const;
  /// The local one (options.local), or empty.
  const std::string& local_endpoint() const;
  /// Serves until `stop` becomes true.
  Status Run(const std::atomic<bool>& stop);

  struct Impl;

 private:
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::broker
