// SlideRegistry: the dealer's open slides: summary (from the manager), plan, HDF5 file
// and mosaic index, opened on first use and refreshed when the slide's writer reports
// new frames. Private to server/dealer.
//
// HDF5 is built without thread safety: every call into it, in the whole process, runs
// under hdf5_mutex().
//
//   auto slide = registry.Get("s000001");          // NOT_FOUND for unknown ids
//   std::lock_guard lock(registry.hdf5_mutex());
//   auto bytes = (*slide)->file->ReadChunk(key);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/mosaic/mosaic.h"
#include "common/plan/scan_plan.h"
#include "common/status/status.h"
#include "common/storage/slide_file.h"
#include "proto/tessera.pb.h"

namespace tessera::dealer::internal {

/// Where the tiles lie: the plan's stage positions, or a stitch's solved ones.
struct Placement {
  std::vector<std::array<double, 2>> positions;
  std::vector<double> z;  ///< per tile, planes: solved for stacks stitched in 3-D, else the stage's
  /// The mosaic's planes: each tile's first plane among them (its z rounded, from the lowest
  /// tile's), and how many there are.
  std::vector<uint32_t> first_plane;
  uint64_t depth = 1;
  mosaic::MosaicIndex index;
  bool stitched = false;
};

struct OpenSlide {
  std::string id;
  proto::SlideSummary summary;
  ScanPlan plan;
  std::unique_ptr<storage::SlideFile> file;  ///< under hdf5_mutex()
  /// Replaced whole when a stitch moves the tiles; a request keeps the one it started with.
  std::atomic<std::shared_ptr<const Placement>> placement;
  std::atomic<bool> dirty{false};   ///< the writer reported frames since the last refresh
  std::atomic<bool> closed{false};  ///< the writer closed the file: reopen it
  std::atomic<bool> moved{false};   ///< a stitch was stored: ask the manager for the positions
  std::atomic<uint64_t> writer_incarnation{0};  ///< of the last event; a new one: reopen
  uint64_t generation = 0;          ///< under hdf5_mutex(): bumped when `file` goes stale
  int64_t refreshed_ms = 0;         ///< under hdf5_mutex()
};

class SlideRegistry {
 public:
  /// `on_reopen(id)` is called, under hdf5_mutex(), whenever a slide's file goes stale (its
  /// writer closed it or restarted, a new fused image replaced it) and when it is opened
  /// again: what was read from the old one must not be served.
  SlideRegistry(std::string manager, std::function<void(const std::string&)> on_reopen)
      : manager_(std::move(manager)), on_reopen_(std::move(on_reopen)) {}

  /// The slide, opened on first use; a live file is refreshed first when its writer has
  /// reported frames since the last refresh, or a second has passed. NOT_FOUND for an id the
  /// manager does not know, UNAVAILABLE when the manager does not answer.
  Result<std::shared_ptr<OpenSlide>> Get(const std::string& id);
  /// A SlideEvent arrived for `id`: frames landed, the file `closed`, or the tiles `moved`;
  /// `writer_incarnation` (0: not from a writer) tells a writer restarted after a crash.
  void MarkChanged(const std::string& id, bool closed, bool moved, uint64_t writer_incarnation = 0);

  /// A chunk of a live slide was not found: refresh the file now (at most every few ms), in
  /// case it landed after the last refresh and its writer's event is still on its way. Call
  /// with hdf5_mutex() held. Whether a refresh happened.
  bool RefreshOnMiss(OpenSlide& slide);

  std::mutex& hdf5_mutex() { return hdf5_; }

 private:
  Result<std::shared_ptr<OpenSlide>> Open(const std::string& id);
  Status Refresh(OpenSlide& slide);

  const std::string manager_;
  const std::function<void(const std::string&)> on_reopen_;
  std::mutex mu_;      // slides_, and opening one at a time
  std::mutex hdf5_;
  std::map<std::string, std::shared_ptr<OpenSlide>> slides_;
};

}  // namespace tessera::dealer::internal
