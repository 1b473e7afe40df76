// Stitcher: registers every overlapping pair of fields of view of a slide through the
// broker's workers, then solves the tile positions, reports on them (QC) and stores both
// with the slide (through the manager), so that the mosaic is served at the solved positions.
// An oblique scan is first deskewed, plane blocks as they land ("deskew" tasks), into its
// deskewed view `ID:deskewed` (DATA/slides/<id>.deskewed.h5), and that view is what is
// registered and fused.
//
// Pairs come from the stage positions (common/stitch/report.h); each is a "register" task
// (proto RegisterTask) for any worker, at most `in_flight` at a time, sent again when the
// broker's queue is full. A task that fails for good stops the stitch with its error; a
// pair that cannot be registered (no texture, no peak within the stage's error) is an
// unreliable link in the report, not a failure. When nothing comes back for `stall_ms`,
// the broker is asked: with no worker offering the service the stitch ends saying what to
// start; with none of its tasks queued or running (a restarted broker lost them) the
// unanswered tasks are sent again.
//
//   auto r = Stitch({.manager = "tcp://127.0.0.1:7400", .slide = "s000001"},
//                   [](const StitchProgress& p) { bar.Update(p.done); }, stop_flag);
//   std::cout << stitch::ReportTable(r->report);
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/correct/corrections.h"
#include "common/correct/destripe.h"
#include "common/plan/scan_plan.h"
#include "common/status/status.h"
#include "common/stitch/report.h"

namespace tessera::stitcher {

struct StitchOptions {
  std::string manager;       ///< the stack's manager (finds the broker and the dealer)
  std::string slide;
  uint32_t channel = 0;      ///< registered on this channel
  int z = -1;                ///< ... and this plane (-1: a z-stack's maximum projection)
  int max_shift = 20;        ///< px: the stage's error
  int max_shift_z = 10;      ///< planes: the stage's error in z (stacks registered in 3-D)
  int in_flight = 32;        ///< tasks sent and not answered yet
  int stall_ms = 30000;      ///< no answer this long: check that a worker offers the service
  bool store = true;         ///< store the positions and report with the slide (the manager
                             ///< writes them; the dealer places the tiles there from then on)
  bool fuse = true;          ///< then fuse: the blended image and its levels (with store only)
  int blend = 64;            ///< feather width, px
  bool deskew_only = false;  ///< an oblique scan: its deskewed view only, no registration
  /// Corrections (common/correct), estimated after the solve from each field's coarsest zoom
  /// level of at least 128 px, stored with the positions and used by the fusion:
  bool flat_field = false;   ///< each channel's flat field and dark level
  bool normalize = false;    ///< a gain per tile and channel, from the reliable links' overlaps
  double dark = -1;          ///< the camera's dark level if known; -1: estimated (0 where the data cannot tell)
  /// Destripe every plane first ("destripe" tasks) into the view `ID:destriped`
  /// (DATA/slides/<id>.destriped.h5), which is then registered, corrected and fused.
  std::optional<correct::DestripeOptions> destripe;
};

struct StitchProgress {
  std::string stage;         ///< "deskew", "destripe", "register", "solve", "correct", "fuse", "pyramid"
  uint64_t done = 0, total = 0;
};

struct StitchResult {
  std::vector<stitch::TilePair> pairs;
  std::vector<stitch::Link> links;        ///< per pair
  stitch::Solution solution;
  stitch::QcReport report;
  double deskew_s = 0, register_s = 0, solve_s = 0, fuse_s = 0;
  uint64_t fused_bytes = 0;  ///< level 0, uncompressed
  uint64_t registered_while_acquiring = 0;  ///< pairs registered before the scan closed
  uint64_t deskewed_while_acquiring = 0;    ///< planes deskewed before the scan closed
  correct::SlideCorrections corrections;    ///< what was estimated (flat_field, normalize)
  double correct_s = 0;
  double destripe_s = 0;
  uint64_t destriped_while_acquiring = 0;   ///< planes destriped before the scan closed
};

/// Stacks are registered and solved in 3-D (z offsets too) when they are volumes: an oblique
/// scan's deskewed stacks, stacks of at least kVolumePlanes planes, or tiles the stage placed
/// at different z. Shorter z-stacks at one z (widefield focus series) are registered in x, y
/// on their projections only.
inline constexpr uint32_t kVolumePlanes = 16;
bool IsVolume(const ScanPlan& plan, bool deskewed);
/// A fused volume's chunks (z, y, x), chosen by measurement (docs/benchmarks.md, "Chunk shapes
/// for volume views"): an XY plane, an XZ plane and a small box all read well; its levels
/// halve z where the voxel is not coarser in z (LevelShape). A fused plane keeps 512 x 512.
inline constexpr std::array<uint32_t, 3> kFusedVolumeChunk = {8, 128, 128};

/// What the broker is doing: `tessera ps`.
struct WorkerRow {
  std::string name, services, task;  ///< task: the service of the one it is on, "" when idle
  uint64_t done = 0;
  int64_t busy_ms = 0;
};
struct QueueRow {
  std::string service;
  uint32_t workers = 0, queued = 0, running = 0;
  uint64_t done = 0, failed = 0, retried = 0, queued_bytes = 0;
};
struct BrokerState {
  std::string broker;  ///< its endpoint
  std::vector<WorkerRow> workers;
  std::vector<QueueRow> queues;
};
/// UNAVAILABLE when the stack has no broker or it does not answer.
Result<BrokerState> QueryBroker(const std::string& manager);

Result<StitchResult> Stitch(const StitchOptions& options, const std::function<void(const StitchProgress&)>& progress,
                            const std::atomic<bool>& stop);

/// `tessera serve stitcher` (started by the manager): runs Stitch and reports its progress
/// (a few times a second) and its end, done or failed with the reason, to the manager.
Status RunAndReport(const StitchOptions& options, const std::atomic<bool>& stop);

}  // namespace tessera::stitcher
