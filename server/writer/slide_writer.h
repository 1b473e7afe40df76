// SlideWriter: the one owner of an open slide file.
//
// Takes frames from the slide's proxy, checks each chunk (checksum, Blosc header, size
// against the plan), writes them exactly as received (HDF5 direct chunk write), and flushes
// and fsyncs the file when its queue runs dry (at most every 20 ms), at the latest every
// `sync_interval_ms` or `sync_bytes`; only then does it acknowledge the frames as durable
// to the proxy. Duplicates are acknowledged again, never written twice. A full disk is
// reported to the proxy as a fatal fault; the writer then stops acknowledging but keeps
// serving, and everything already acknowledged stays on disk.
//
// A frame that carries its zoom levels (the client library's scanner makes them from its
// pixels before it compresses them) is stored with them, levels and all, in one step. For any
// other frame, once it is written, a background thread (off the acknowledgement path)
// computes its zoom levels from the stored chunks; the writer stores them and syncs them
// within 250 ms.
// While `level_queue_bytes` of frames wait for their levels the writer takes no new frame:
// the levels keep pace with the scan, and the scanner is slowed by credit instead. After
// each sync it publishes a SlideEvent (frames landed, levels ready) to the dealer, which
// tells viewers.
//
//   WriterOptions o{.file = "data/s000001.h5", .plan_file = "data/s000001.plan.json"};
//   auto w = SlideWriter::Open(o);
//   std::cout << "ready " << (*w)->endpoint() << "\n";
//   (*w)->Run(stop_flag);   // until stop_flag is set
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status/status.h"

namespace tessera::writer {

struct WriterOptions {
  std::string slide_id;
  std::string file;        ///< the slide's HDF5 file; opened again if it exists
  std::string plan_file;   ///< scan plan JSON, used when the file is created
  std::string bind = "tcp://127.0.0.1:0";
  int sync_interval_ms = 1000;             ///< longest time a frame waits for durability
  uint64_t sync_bytes = uint64_t{256} << 20;  ///< sync earlier once this much is pending
  bool fsync = true;                       ///< false: flush only (survives kill, not power loss)
  std::string events;                      ///< where to publish SlideEvents (the dealer); empty: nowhere
  uint64_t level_queue_bytes = uint64_t{32} << 20;  ///< frames waiting for their levels, held in memory
};

class SlideWriter {
 public:
  static Result<std::unique_ptr<SlideWriter>> Open(const WriterOptions& options);
  ~SlideWriter();

  /// The resolved endpoint the proxy connects to.
  const std::string& endpoint() const;

  /// Serves until `stop` becomes true, then syncs and closes the file.
  Status Run(const std::atomic<bool>& stop);

 private:
  struct Impl;
  explicit SlideWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::writer
