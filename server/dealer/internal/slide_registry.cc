#include "server/dealer/internal/slide_registry.h"

#include <algorithm>
#include <cmath>

#include "common/wire/rpc.h"

namespace tessera::dealer::internal {
namespace {

constexpr int kManagerTimeoutMs = 5000;
constexpr int64_t kMaxStaleMs = 1000;    // a live slide is looked at again at least this often

Result<proto::SlideSummary> AskManager(const std::string& manager, const std::string& id) {
  proto::ManagerRequest req;
  req.mutable_get_slide()->set_slide_id(id);
  TESSERA_ASSIGN_OR_RETURN(auto reply, wire::Ask<proto::ManagerReply>(manager, req, kManagerTimeoutMs));
  return reply.slide();
}

// The summary's solved positions when the slide is stitched, else the plan's stage positions.
std::shared_ptr<const Placement> PlacementOf(const ScanPlan& plan, const proto::SlideSummary& summary) {
  std::vector<std::array<double, 2>> positions;
  positions.reserve(plan.tiles.size());
  const bool stitched = static_cast<size_t>(summary.positions_size()) == 2 * plan.tiles.size();
  for (size_t i = 0; i < plan.tiles.size(); ++i) {
    const int k = static_cast<int>(2 * i);
    positions.push_back(stitched ? std::array<double, 2>{summary.positions(k), summary.positions(k + 1)}
                                 : std::array<double, 2>{plan.tiles[i].x, plan.tiles[i].y});
  }
  std::vector<double> z;
  const bool solved_z = static_cast<size_t>(summary.positions_z_size()) == plan.tiles.size();
  for (size_t i = 0; i < plan.tiles.size(); ++i) z.push_back(solved_z ? summary.positions_z(static_cast<int>(i)) : plan.tiles[i].z);
  // z within kMaxTilePosition (CheckPosition): the planes fit a uint32 with the stacks' depth.
  std::vector<uint32_t> first(plan.tiles.size(), 0);
  double lowest = 0;
  for (size_t i = 0; i < z.size(); ++i) lowest = i == 0 ? std::floor(z[i] + 0.5) : std::min(lowest, std::floor(z[i] + 0.5));
  uint64_t depth = plan.z_planes;
  for (size_t i = 0; i < z.size(); ++i) {
    first[i] = static_cast<uint32_t>(std::floor(z[i] + 0.5) - lowest);
    depth = std::max<uint64_t>(depth, uint64_t{first[i]} + plan.z_planes);
  }
  mosaic::MosaicIndex index(positions, mosaic::TileGeometry{plan.width, plan.height});
  return std::make_shared<const Placement>(
      Placement{std::move(positions), std::move(z), std::move(first), depth, std::move(index), stitched});
}

}  // namespace

Result<std::shared_ptr<OpenSlide>> SlideRegistry::Open(const std::string& id) {
  TESSERA_ASSIGN_OR_RETURN(proto::SlideSummary summary, AskManager(manager_, id));
  auto slide = std::make_shared<OpenSlide>();
  slide->id = id;
  slide->summary = std::move(summary);
  {
    std::lock_guard lock(hdf5_);
    TESSERA_ASSIGN_OR_RETURN(slide->file, storage::SlideFile::OpenForRead(slide->summary.path()));
    slide->refreshed_ms = wire::NowMs();
  }
  slide->plan = slide->file->plan();
  slide->placement = PlacementOf(slide->plan, slide->summary);
  return slide;
}

Status SlideRegistry::Refresh(OpenSlide& slide) {
  if (slide.moved.exchange(false)) {
    auto summary = AskManager(manager_, slide.id);
    if (!summary.ok()) {
      slide.moved = true;  // try again on the next request
      return summary.status();
    }
    slide.placement = PlacementOf(slide.plan, *summary);
    // The stitch's positions and corrections, in the summary readers are given (under the lock
    // SlideInfo reads it with).
    std::lock_guard lock(hdf5_);
    *slide.summary.mutable_positions() = summary->positions();
    *slide.summary.mutable_positions_z() = summary->positions_z();
    slide.summary.set_stitched_unix_ms(summary->stitched_unix_ms());
    *slide.summary.mutable_corrections() = summary->corrections();
  }
  if (slide.closed.exchange(false)) {
    // The writer is gone: reopen without SWMR, and learn the slide's new state. The old handle
    // is closed first: HDF5 would hand a second open of the same file the first one's
    // (SWMR, now stale) metadata, and never refresh it again.
    TESSERA_ASSIGN_OR_RETURN(proto::SlideSummary summary, AskManager(manager_, slide.id));
    std::lock_guard lock(hdf5_);
    slide.file.reset();
    auto file = storage::SlideFile::OpenForRead(summary.path());
    if (!file.ok()) {
      slide.closed = true;  // try again on the next request
      return file.status();
    }
    slide.file = std::move(*file);
    ++slide.generation;
    if (on_reopen_) on_reopen_(slide.id);
    slide.summary = std::move(summary);
    slide.refreshed_ms = wire::NowMs();
    slide.dirty = false;
    return OkStatus();
  }
  std::lock_guard lock(hdf5_);
  if (!slide.file) return Error(StatusCode::kUnavailable, "slide {}'s file could not be reopened", slide.id);
  const int64_t age = wire::NowMs() - slide.refreshed_ms;
  // After a writer's event, the next read refreshes: a subscriber told that frames landed
  // (a viewer, a stitcher) reads them at once.
  if (!slide.file->live() || (!slide.dirty && age < kMaxStaleMs)) {
    return OkStatus();
  }
  slide.dirty = false;
  slide.refreshed_ms = wire::NowMs();
  return slide.file->Refresh();
}

Result<std::shared_ptr<OpenSlide>> SlideRegistry::Get(const std::string& id) {
  std::shared_ptr<OpenSlide> slide;
  {
    std::lock_guard lock(mu_);
    if (auto it = slides_.find(id); it != slides_.end()) {
      slide = it->second;
    } else {
      TESSERA_ASSIGN_OR_RETURN(slide, Open(id));
      slides_.emplace(id, slide);
    }
  }
  TESSERA_RETURN_IF_ERROR(Refresh(*slide));
  return slide;
}

bool SlideRegistry::RefreshOnMiss(OpenSlide& slide) {
  constexpr int64_t kMinIntervalMs = 5;  // viewers polling a live scan ask for many missing chunks
  if (!slide.file || !slide.file->live() || wire::NowMs() - slide.refreshed_ms < kMinIntervalMs) return false;
  slide.refreshed_ms = wire::NowMs();
  return slide.file->Refresh().ok();
}

void SlideRegistry::MarkChanged(const std::string& id, bool closed, bool moved, uint64_t writer_incarnation) {
  std::lock_guard lock(mu_);
  auto it = slides_.find(id);
  if (it == slides_.end()) return;  // opened fresh on first use
  it->second->dirty = true;
  if (writer_incarnation != 0) {
    // A writer restarted after a crash opened the file again and rewrote its superblock: a
    // SWMR reader's view of the old session is stale.
    const uint64_t before = it->second->writer_incarnation.exchange(writer_incarnation);
    if (before != 0 && before != writer_incarnation) closed = true;
  }
  if (closed) {
    it->second->closed = true;
    // At once, not at the reopen: until then the socket thread would answer from the cache.
    std::lock_guard hdf5(hdf5_);
    ++it->second->generation;
    if (on_reopen_) on_reopen_(id);
  }
  if (moved) it->second->moved = true;
}

}  // namespace tessera::dealer::internal
