// TileDealer: serves stored chunks, slide info and mosaic region plans to viewers and
// analysis programs (through the client library), for every slide, live or closed.
//
// A ROUTER for requests (DealerRequest / DealerReply, proto/tessera.proto): list, slide
// info, chunks exactly as stored (compressed; clients decode), and region plans (which
// chunks compose a box of the mosaic at a level, from an R-tree over the tiles'
// footprints). An LRU cache of compressed chunks, sized in bytes, answers warm requests
// on the socket thread; misses, plans and read-ahead of neighbouring chunks go to a pool
// of I/O threads. Slide files are read with HDF5 (SWMR while their writer has them),
// and the writers' SlideEvents tell the dealer when to look again; it republishes them
// on an XPUB socket for viewers that fill in live.
//
//   DealerOptions o{.manager = "tcp://127.0.0.1:7400"};
//   auto d = TileDealer::Open(o);
//   std::cout << "ready dealer=" << (*d)->endpoint() << "\n";
//   (*d)->Run(stop_flag);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status/status.h"

namespace tessera::dealer {

struct DealerOptions {
  std::string manager;                           ///< resolves slide ids to files
  std::string bind = "tcp://127.0.0.1:0";        ///< requests
  std::string events_bind = "tcp://127.0.0.1:0"; ///< writers publish SlideEvents here
  std::string publish_bind = "tcp://127.0.0.1:0";///< viewers subscribe here (topic: slide id)
  uint64_t cache_bytes = uint64_t{1} << 30;      ///< compressed chunks kept in memory
  int io_threads = 4;                            ///< cache misses (disk reads run in parallel), plans, read-ahead
};

class TileDealer {
 public:
  static Result<std::unique_ptr<TileDealer>> Open(const DealerOptions& options);
  ~TileDealer();

  const std::string& endpoint() const;          ///< requests (ROUTER)
  const std::string& events_endpoint() const;   ///< for writers' --events
  const std::string& publish_endpoint() const;  ///< for subscribers

  /// Serves until `stop` becomes true.
  Status Run(const std::atomic<bool>& stop);

 private:
  struct Impl;
  explicit TileDealer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::dealer
