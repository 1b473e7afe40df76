// Scanner: what a microscope's acquisition software links to push frames into Tessera.
//
// Open a slide from a scan plan, push every frame (tile x channel x z plane) as it is
// acquired, close. Each frame is split into the plan's chunks, each chunk compressed
// with Blosc (lz4 + byte shuffle by default, zstd selectable in the plan) and
// checksummed (xxHash64), and so are its zoom levels when it makes them (ScannerOptions::levels). The scanner keeps every frame until the slide's writer
// has made it durable, and resends what was not acknowledged when the proxy restarts.
// Push() blocks while the proxy's FIFO credit is spent, so memory stays bounded. No wait is
// longer than `timeout_ms` without progress; a slide that failed is reported as soon as the
// proxy falls silent (the manager is asked), and `stop` ends any wait.
//
//   auto scanner = tessera::Scanner::Open("tcp://127.0.0.1:7400", plan);
//   for (...) scanner.value()->Push({.t = t, .c = c, .z = z}, pixels);
//   Status s = scanner.value()->Close();   // returns once every frame is durable
//
// Not thread-safe: one thread drives a Scanner.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera {

struct ScannerOptions {
  int timeout_ms = 60000;    ///< longest wait for any progress before DEADLINE_EXCEEDED
  /// When set and it becomes true (a signal handler's flag), every wait ends with CANCELLED.
  const std::atomic<bool>* stop = nullptr;
  /// Threads that compress a frame's chunks in parallel (0: one per core). Each chunk is
  /// compressed by one thread: chunks are small, so splitting one chunk would cost more.
  int compress_threads = 0;
  /// On the stack's host, push through the proxy's Unix socket (no TCP hop and, in a secured
  /// stack, no encryption: the credential is proved all the same); false: always its TCP
  /// endpoint, as a scanner on another host does.
  bool local = true;
  /// Where a frame's zoom levels are made. kScanner: here, from its pixels, pushed with the
  /// frame (a third more bytes to compress and send; the writer stores them as they come
  /// instead of decoding every frame to make them: half the writer's CPU). kWriter: level 0
  /// only, the writer makes them. kAuto: kScanner when pushing over TCP (from another host:
  /// the work moves off the stack's host), kWriter through the Unix socket (on one host the
  /// two cost the same CPU, and the scanner's push is shorter; docs/benchmarks.md).
  enum class Levels { kAuto, kScanner, kWriter };
  Levels levels = Levels::kAuto;
};

class Scanner {
 public:
  struct Progress {
    uint64_t frames_pushed = 0;
    uint64_t frames_durable = 0;
    uint64_t raw_bytes = 0;         ///< pixel bytes pushed
    uint64_t compressed_bytes = 0;  ///< Blosc bytes of level 0 pushed
    uint64_t level_bytes = 0;       ///< Blosc bytes of zoom levels pushed (made by the scanner)
    uint64_t outstanding_bytes = 0; ///< sent, not yet durable
    uint64_t frames_resent = 0;     ///< after a proxy restart
  };

  /// Opens a new slide on the manager at `server` and connects to its proxy.
  static Result<std::unique_ptr<Scanner>> Open(const std::string& server, const ScanPlan& plan,
                                               const ScannerOptions& options = {});
  ~Scanner();

  const std::string& slide_id() const;
  /// The proxy endpoint this scanner pushes to (its Unix socket or its TCP port).
  const std::string& endpoint() const;
  /// The plan as the manager accepted it (chunk shape fitted to the frame).
  const ScanPlan& plan() const;

  /// Pushes one frame: `pixels` is height x width elements of the plan's dtype, native
  /// byte order, row-major. INVALID_ARGUMENT for a wrong size, OUT_OF_RANGE for a key
  /// outside the plan; the first error the slide reported (e.g. RESOURCE_EXHAUSTED
  /// for a full disk) is returned by every later call.
  Status Push(const FrameKey& key, std::span<const uint8_t> pixels);

  /// Waits until every pushed frame is durable; `on_progress` is called as acks arrive.
  Status Flush(const std::function<void(const Progress&)>& on_progress = {});

  /// Flush(), then closes the slide on the manager.
  Status Close(const std::function<void(const Progress&)>& on_progress = {});

  Progress progress() const;

 private:
  struct Impl;
  explicit Scanner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
