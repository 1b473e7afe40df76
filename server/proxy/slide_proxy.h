// SlideProxy: the FIFO between a fast scanner and a slower slide writer.
//
// Bounded by bytes of frame payload (`fifo_bytes`), not by messages. A scanner gets that
// many bytes of credit; each frame it sends spends its payload size and each durability
// acknowledgement gives it back. The proxy checks every frame against the scan plan (the
// writer verifies the chunks' checksums as it stores them), holds it, forwards it to the
// writer at once, and forgets it only when the writer says it is durable. Duplicates (by
// frame index) are recognised and harmless. When the writer restarts (new incarnation)
// everything held is sent again; when the proxy itself restarts, scanners see its new
// incarnation and resend what is not durable. Scanners on the proxy's host may push through
// its Unix socket (`local`) instead of TCP.
//
//   ProxyOptions o{.slide_id = "s000001", .plan_file = "...", .writer = "tcp://127.0.0.1:5001"};
//   auto p = SlideProxy::Open(o);
//   std::cout << "ready " << (*p)->endpoint() << "\n";
//   (*p)->Run(stop_flag);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status/status.h"

namespace tessera::proxy {

inline constexpr uint64_t kDefaultFifoBytes = uint64_t{1} << 30;

struct ProxyOptions {
  std::string slide_id;
  std::string plan_file;                 ///< scan plan JSON
  std::string bind = "tcp://127.0.0.1:0";  ///< where scanners connect
  /// Where scanners on this host connect too (ipc://PATH; none when empty): the socket file
  /// is made connectable by every local user, who must still present a scanner's credential
  /// in a secured stack (wire::Bind).
  std::string local;
  std::string writer;                    ///< the slide writer's endpoint
  uint64_t fifo_bytes = kDefaultFifoBytes;
};

class SlideProxy {
 public:
  static Result<std::unique_ptr<SlideProxy>> Open(const ProxyOptions& options);
  ~SlideProxy();

  const std::string& endpoint() const;
  /// The resolved `local` endpoint, empty without one.
  const std::string& local_endpoint() const;

  /// Serves until `stop` becomes true.
  Status Run(const std::atomic<bool>& stop);

 private:
  struct Impl;
  explicit SlideProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::proxy
