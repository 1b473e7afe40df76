#include "server/stitcher/stitcher.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <thread>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "client/client.h"
#include "common/codec/codec.h"
#include "common/correct/corrections_proto.h"
#include "common/durable/durable.h"
#include "common/log/log.h"
#include "common/mosaic/mosaic.h"
#include "common/pyramid/pyramid.h"
#include "common/storage/slide_file.h"
#include "common/storage/stitch_file.h"
#include "common/wire/rpc.h"
#include "server/stitcher/internal/corrections.h"

namespace tessera::stitcher {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

Result<std::string> BrokerOf(Client& client, const std::string& manager) {
  TESSERA_ASSIGN_OR_RETURN(auto endpoints, client.Endpoints());
  // The broker's Unix socket when this stitcher is on its host (the manager starts it there).
  if (const auto local = endpoints.find("broker_local"); local != endpoints.end() && wire::CanOpenIpc(local->second)) {
    return local->second;
  }
  const auto broker = endpoints.find("broker");
  if (broker == endpoints.end()) {
    return Error(StatusCode::kUnavailable, "the stack at {} has no broker: start one (tessera serve broker) and name it "
                                           "to the manager (--endpoint broker=...)", manager);
  }
  return broker->second;
}

Result<BrokerState> Query(const std::string& broker) {
  proto::BrokerMessage ask;
  ask.mutable_status_request();
  auto reply = wire::Ask<proto::BrokerMessage>(broker, ask, 5000);
  if (!reply.ok() && reply.status().code() == StatusCode::kUnavailable) {
    return Error(StatusCode::kUnavailable, "the broker at {} does not answer: is the stack up?", broker);
  }
  TESSERA_ASSIGN_OR_RETURN(proto::BrokerMessage m, std::move(reply));
  BrokerState state;
  state.broker = broker;
  for (const auto& w : m.status().workers()) {
    state.workers.push_back({w.name(), fmt::format("{}", fmt::join(w.services(), ",")), w.task(), w.done(), w.busy_ms()});
  }
  for (const auto& q : m.status().services()) {
    state.queues.push_back(
        {q.service(), q.workers(), q.queued(), q.running(), q.done(), q.failed(), q.retried(), q.queued_bytes()});
  }
  return state;
}

// After a long silence: an error when no worker offers `service`; whether the broker has
// none of its tasks queued or running (it lost them, e.g. it was restarted).
Result<bool> BrokerLostTasks(const std::string& broker, const std::string& service) {
  TESSERA_ASSIGN_OR_RETURN(BrokerState state, Query(broker));
  for (const auto& q : state.queues) {
    if (q.service == service && q.workers > 0) return q.queued == 0 && q.running == 0;
  }
  return Error(StatusCode::kUnavailable,
               "no worker offers '{}': start one (tessera serve worker --broker {} --manager ...), or run "
               "tessera up --workers N",
               service, broker);
}

// Runs tasks 0..n-1 of `service` through the broker, at most o.in_flight unanswered: `make`
// fills task i, `take` takes its answer (and payload). An answer of RESOURCE_EXHAUSTED (the
// broker's queue is full) sends the task again later; after o.stall_ms of silence the broker
// is asked, and tasks it lost are sent again (a late answer to one is ignored).
// `feed`, when given, hands over the tasks as they become ready (e.g. as tiles land) instead
// of all at once: it appends their indices to `ready` and counts in `settled` the tasks that
// will never run (settled elsewhere); it is called about five times a second.
using Feed = std::function<void(std::vector<size_t>& ready, size_t& settled)>;

Status RunTasks(const std::string& broker, const std::string& service, size_t n, const StitchOptions& o,
                const std::function<void(size_t, proto::TaskRequest&)>& make,
                const std::function<Status(size_t, const proto::TaskResult&, std::vector<zmq::message_t>&)>& take,
                const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop,
                const Feed& feed = nullptr) {
  TESSERA_ASSIGN_OR_RETURN(auto socket, wire::Stream<proto::BrokerMessage>::Connect(broker, "", {}, "stitcher"));
  std::deque<size_t> todo;
  if (!feed) {
    for (size_t i = 0; i < n; ++i) todo.push_back(i);
  }
  std::set<size_t> sent;  // and not answered yet
  std::vector<bool> answered(n);
  size_t done = 0;
  int64_t last_answer = wire::NowMs();
  if (progress) progress({service, 0, n});
  std::vector<size_t> ready;
  while (done < n) {
    if (stop.load()) return Error(StatusCode::kUnavailable, "stitch of {} interrupted", o.slide);
    if (feed) {
      ready.clear();
      size_t settled = 0;
      feed(ready, settled);
      todo.insert(todo.end(), ready.begin(), ready.end());
      if (settled > 0) {
        done += settled;
        if (progress) progress({service, done, n});
        continue;
      }
    }
    while (sent.size() < static_cast<size_t>(o.in_flight) && !todo.empty()) {
      const size_t i = todo.front();
      todo.pop_front();
      proto::BrokerMessage m;
      proto::TaskRequest* t = m.mutable_request();
      t->set_task_id(i);
      t->set_service(service);
      make(i, *t);
      socket.Send(std::move(m));
      sent.insert(i);
    }
    TESSERA_RETURN_IF_ERROR(socket.Refused());
    auto in = socket.Next(200);
    if (!in) {
      if (progress) progress({service, done, n});  // the latest, even after a burst the reporter thinned
      if (wire::NowMs() - last_answer > o.stall_ms) {
        TESSERA_ASSIGN_OR_RETURN(const bool lost, BrokerLostTasks(broker, service));
        if (lost) {
          todo.insert(todo.begin(), sent.begin(), sent.end());
          sent.clear();
        }
        last_answer = wire::NowMs();
      }
      continue;
    }
    const proto::BrokerMessage& m = in->header;
    if (!m.has_result() || m.result().task_id() >= n || answered[m.result().task_id()]) continue;
    last_answer = wire::NowMs();
    const size_t i = m.result().task_id();
    sent.erase(i);
    if (m.result().status().code() == proto::RESOURCE_EXHAUSTED) {  // the broker is full: later
      todo.push_back(i);
      continue;
    }
    TESSERA_RETURN_IF_ERROR(take(i, m.result(), in->message.payload));
    answered[i] = true;
    ++done;
    if (progress) progress({service, done, n});
  }
  return OkStatus();
}

// The frames of a slide as they land, from the dealer's events: subscribed first, then the
// dealer's state read, so that nothing lands unseen in between. A slide no longer written is
// closed from the start (what it has is all it will have). Thread-safe.
class Landing {
 public:
  static Result<std::unique_ptr<Landing>> Watch(Client& client, const std::string& slide, uint64_t frames) {
    auto landing = std::unique_ptr<Landing>(new Landing(frames));
    Landing* l = landing.get();
    TESSERA_ASSIGN_OR_RETURN(auto sub, client.Subscribe(slide, [l](const LandedEvent& e) {
      std::lock_guard lock(l->mu_);
      for (uint64_t f : e.landed) l->Mark(f);
      l->closed_ = l->closed_ || e.closed;
    }));
    landing->subscription_.emplace(std::move(sub));
    TESSERA_ASSIGN_OR_RETURN(SlideView view, client.Describe(slide));
    std::lock_guard lock(l->mu_);
    for (size_t f = 0; f < view.landed.size(); ++f) {
      if (view.landed[f] >= 1) l->Mark(f);
    }
    l->closed_ = l->closed_ || !view.live;
    return landing;
  }
  ~Landing() { subscription_.reset(); }  // the callback ends before the state it writes

  /// Appends the frames landed since the last call; true once the scan has closed.
  bool Take(std::vector<uint64_t>& fresh) {
    std::lock_guard lock(mu_);
    fresh.insert(fresh.end(), fresh_.begin(), fresh_.end());
    fresh_.clear();
    return closed_;
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  explicit Landing(uint64_t frames) : seen_(frames) {}
  void Mark(uint64_t f) {  // under mu_
    if (f < seen_.size() && !seen_[f]) {
      seen_[f] = true;
      fresh_.push_back(f);
    }
  }
  std::mutex mu_;
  std::vector<bool> seen_;
  std::vector<uint64_t> fresh_;
  bool closed_ = false;
  std::optional<Subscription> subscription_;
};

// The deskewed view of an oblique scan (`ID:deskewed`): every few planes of a stack a
// "deskew" task, sent as soon as its raw planes have landed, its chunks (every level) written
// into DATA/slides/<id>.deskewed.h5 as they come back. The file is written in SWMR mode from
// the start, so the dealer serves each deskewed plane once it is synced; a stitcher started
// again resumes it, deskewing only the planes it lacks.
constexpr uint32_t kDeskewTaskPlanes = 8;                 // so that a stack's first planes go out early
constexpr size_t kDeskewTaskChunks = 512;                 // per task, over every level
constexpr uint64_t kDeskewTaskBytes = uint64_t{32} << 20;  // raw and deskewed planes of a task

// A view derived plane by plane from a slide's raw planes on the workers (its deskewed or its
// destriped planes, with their zoom levels), as they land: a slide file beside the slide, resumed
// where a stitcher before this one stopped.
struct DerivedView {
  const char* suffix;   // ":deskewed"
  const char* service;  // the workers' service: "deskew"
  const char* done;     // "deskewed", in messages
  ScanPlan plan;        // the view's
  std::string path;
  std::function<void(proto::TaskRequest&, const FrameKey& first, uint32_t planes)> task;
  double* seconds;
  uint64_t* while_acquiring;  // planes made before the scan closed
};

Status DeriveSlide(const StitchOptions& o, Client& client, const SlideSummary& summary, const std::string& broker,
                   const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop,
                   const DerivedView& view) {
  const ScanPlan& raw = summary.plan;
  const ScanPlan& plan = view.plan;
  const std::string& path = view.path;
  std::error_code ec;
  auto opened = std::filesystem::exists(path, ec) ? storage::SlideFile::OpenForWrite(path)
                                                   : storage::SlideFile::Create(path, plan, o.slide + view.suffix);
  if (!opened.ok() && opened.status().code() != StatusCode::kFailedPrecondition) {  // not ours to resume: anew
    log::Get("stitcher")->warn("slide={} {} view {} not resumed ({}): made again", o.slide, view.done, path,
                               opened.status().message());
    std::filesystem::remove(path, ec);
    opened = storage::SlideFile::Create(path, plan, o.slide + view.suffix);
  }
  TESSERA_ASSIGN_OR_RETURN(auto file, std::move(opened));
  if (file->plan().width != plan.width || file->plan().frame_count() != plan.frame_count()) {
    return Error(StatusCode::kDataLoss, "{} is not the {} view of {}: remove it and stitch again", path, view.done, o.slide);
  }
  // Planes per task: bounded by the answer's chunks and by the bytes in the worker's memory.
  size_t chunks = 0;
  for (uint32_t l = 0; l < plan.level_count(); ++l) chunks += plan.Level(l).chunks_per_frame();
  const uint64_t plane_bytes = raw.frame_bytes() + plan.frame_bytes();
  const auto block = static_cast<uint32_t>(std::clamp<uint64_t>(
      std::min<uint64_t>(kDeskewTaskChunks / chunks, kDeskewTaskBytes / plane_bytes), 1,
      std::min(kDeskewTaskPlanes, raw.z_planes)));
  const uint32_t blocks = (raw.z_planes + block - 1) / block;
  const size_t stacks = raw.tiles.size() * raw.channels.size(), n = stacks * blocks;
  auto first_plane = [&](size_t i) { return static_cast<uint32_t>(i % blocks) * block; };
  auto planes_of = [&](size_t i) { return std::min(block, raw.z_planes - first_plane(i)); };
  auto frame_of = [&](size_t i, uint32_t p) {  // p-th plane of task i, as a frame of either plan
    const auto stack = static_cast<uint32_t>(i / blocks);
    return raw.FrameIndex({stack / static_cast<uint32_t>(raw.channels.size()),
                           stack % static_cast<uint32_t>(raw.channels.size()), first_plane(i) + p});
  };
  std::vector<uint32_t> landed(n, 0);  // raw planes of each task landed
  std::vector<bool> queued(n, false);
  for (size_t i = 0; i < n; ++i) {  // what a stitcher before this one made
    bool all = true;
    for (uint32_t p = 0; p < planes_of(i) && all; ++p) all = file->IsWritten(frame_of(i, p)) && file->LevelsWritten(frame_of(i, p));
    queued[i] = all;
  }
  TESSERA_ASSIGN_OR_RETURN(auto landing, Landing::Watch(client, o.slide, raw.frame_count()));
  size_t settled_before = 0;
  for (size_t i = 0; i < n; ++i) settled_before += queued[i];
  std::vector<uint64_t> fresh;
  bool ended = false;
  const Feed feed = [&](std::vector<size_t>& ready, size_t& settled) {
    settled += std::exchange(settled_before, 0);
    fresh.clear();
    const bool closed = landing->Take(fresh);
    for (uint64_t f : fresh) {
      const FrameKey k = raw.KeyOf(f);
      const size_t i = (size_t{k.t} * raw.channels.size() + k.c) * blocks + k.z / block;
      if (!queued[i] && ++landed[i] == planes_of(i)) {
        queued[i] = true;
        ready.push_back(i);
      }
    }
    if (!closed || ended) return;
    ended = true;
    for (size_t i = 0; i < n; ++i) {  // the scan is over: planes that never landed stay missing
      if (queued[i]) continue;
      queued[i] = true;
      ++settled;
    }
  };
  const auto started = Clock::now();
  int64_t synced = wire::NowMs();
  TESSERA_RETURN_IF_ERROR(RunTasks(
      broker, view.service, n, o,
      [&](size_t i, proto::TaskRequest& t) { view.task(t, raw.KeyOf(frame_of(i, 0)), planes_of(i)); },
      [&](size_t i, const proto::TaskResult& res, std::vector<zmq::message_t>& payload) -> Status {
        const FrameKey first = raw.KeyOf(frame_of(i, 0));
        if (Status s = wire::FromProto(res.status()); !s.ok()) {
          return Error(s.code(), "{} planes {} to {} of tile {} channel {} of {} failed: {}", view.service, first.z,
                       first.z + planes_of(i) - 1, first.t, first.c, o.slide, s.message());
        }
        const size_t expected = chunks * planes_of(i);
        if (payload.size() != expected || static_cast<size_t>(res.chunk().checksums_size()) != expected) {
          return Error(StatusCode::kDataLoss, "the {} chunks of tile {} planes {}+ of {} came back {} instead of {}",
                       view.done, first.t, first.z, o.slide, payload.size(), expected);
        }
        size_t next = 0;
        for (uint32_t p = 0; p < planes_of(i); ++p) {
          const FrameKey frame{first.t, first.c, first.z + p};
          for (uint32_t l = 0; l < plan.level_count(); ++l) {
            const LevelShape shape = plan.Level(l);
            for (uint32_t c = 0; c < shape.chunks_per_frame(); ++c, ++next) {
              const auto bytes = wire::Bytes(payload[next]);
              const uint64_t sum = res.chunk().checksums(static_cast<int>(next));
              if (codec::Checksum(bytes) != sum) {
                return Error(StatusCode::kDataLoss, "a {} chunk of tile {} of {} came back damaged", view.done, first.t, o.slide);
              }
              TESSERA_RETURN_IF_ERROR(file->WriteChunk({frame, l, c / shape.chunks_x(), c % shape.chunks_x()}, bytes, sum));
            }
          }
          file->MarkWritten(plan.FrameIndex(frame));
          file->MarkLevelsWritten(plan.FrameIndex(frame));
        }
        if (!landing->closed()) *view.while_acquiring += planes_of(i);
        if (wire::NowMs() - synced >= 250) {  // readers see what is synced
          TESSERA_RETURN_IF_ERROR(file->Sync(/*fsync=*/false));
          synced = wire::NowMs();
        }
        return OkStatus();
      },
      progress, stop, feed));
  TESSERA_RETURN_IF_ERROR(file->Close());
  *view.seconds = Seconds(started);
  log::Get("stitcher")->info("slide={} {} {}x{}x{} x {} stacks s={:.2f} while_acquiring={} path={}", o.slide, view.done,
                             plan.width, plan.height, plan.z_planes, stacks, *view.seconds, *view.while_acquiring, path);
  return OkStatus();
}

Status DeskewSlide(const StitchOptions& o, Client& client, const SlideSummary& summary, const std::string& broker,
                   const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop,
                   StitchResult& r) {
  TESSERA_ASSIGN_OR_RETURN(ScanPlan plan, DeskewedPlanOf(summary.plan));
  return DeriveSlide(o, client, summary, broker, progress, stop,
                     {":deskewed", "deskew", "deskewed", std::move(plan), storage::DeskewedPathOf(summary.path),
                      [&](proto::TaskRequest& t, const FrameKey& k, uint32_t planes) {
                        proto::DeskewTask* d = t.mutable_deskew();
                        d->set_slide(o.slide);
                        d->set_tile(k.t);
                        d->set_channel(k.c);
                        d->set_z(k.z);
                        d->set_planes(planes);
                      },
                      &r.deskew_s, &r.deskewed_while_acquiring});
}

// Every plane destriped (pystripe's methods, common/correct/destripe.h) into `<id>:destriped`,
// in the slide's own plan; with `flat`, each plane's flat field divided out first.
Status DestripeSlide(const StitchOptions& o, Client& client, const SlideSummary& summary,
                     const correct::SlideCorrections& flat, const std::string& broker,
                     const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop,
                     StitchResult& r) {
  std::vector<std::optional<proto::ChannelCorrections>> flat_of(summary.plan.channels.size());
  for (const auto& cc : flat.channels) correct::ToProto(cc, &flat_of[cc.channel].emplace());
  ScanPlan plan = summary.plan;
  plan.name += " (destriped)";
  plan.stitch = false;
  proto::DestripeParams params;
  correct::ToProto(*o.destripe, &params);
  return DeriveSlide(o, client, summary, broker, progress, stop,
                     {":destriped", "destripe", "destriped", std::move(plan), storage::DestripedPathOf(summary.path),
                      [&](proto::TaskRequest& t, const FrameKey& k, uint32_t planes) {
                        proto::DestripeTask* d = t.mutable_destripe();
                        d->set_slide(o.slide);
                        d->set_tile(k.t);
                        d->set_channel(k.c);
                        d->set_z(k.z);
                        d->set_planes(planes);
                        *d->mutable_params() = params;
                        if (flat_of[k.c]) *d->mutable_flat() = *flat_of[k.c];
                      },
                      &r.destripe_s, &r.destriped_while_acquiring});
}

// The zoom levels of a fused image, each chunk from the chunks of the level below under it
// (2 x 2, and 2 deep where the level halves z: memory stays a few chunks), on two threads
// (the file's reads and writes one at a time: HDF5 runs one call at a time; decoding, averaging,
// encoding in parallel).
Status FuseLevels(const StitchOptions& o, storage::SlideFile& file,
                  const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop) {
  const ScanPlan& fused = file.plan();
  const size_t elem = DtypeSize(fused.dtype);
  const auto channels = static_cast<uint32_t>(fused.channels.size());
  uint64_t level_chunks = 0;
  for (uint32_t l = 1; l < fused.level_count(); ++l) {
    level_chunks += uint64_t{fused.Level(l).chunks_per_frame()} * fused.Level(l).chunks_z() * channels;
  }
  std::atomic<uint64_t> made{0};
  std::mutex file_mu;
  for (uint32_t l = 1; l < fused.level_count(); ++l) {
    const LevelShape src = fused.Level(l - 1), dst = fused.Level(l);  // chunks shrink with small levels
    const bool halve_z = dst.z_shift > src.z_shift;
    const size_t per_layer = dst.chunks_per_frame(), jobs = size_t{channels} * dst.chunks_z() * per_layer;
    std::atomic<size_t> next{0};
    std::mutex error_mu;
    Status error;
    auto work = [&] {
      std::vector<uint8_t> below(src.chunk_voxels() * elem), region, half, chunk(dst.chunk_voxels() * elem);
      for (size_t j; (j = next++) < jobs;) {
        const size_t layer = j / per_layer, k = j % per_layer;
        const auto c = static_cast<uint32_t>(layer / dst.chunks_z());
        const auto dz = static_cast<uint32_t>(layer % dst.chunks_z() * dst.chunk_z);  // the chunk's first plane
        const uint32_t dn = std::min(dst.chunk_z, dst.depth - dz);
        const auto cy = static_cast<uint32_t>(k / dst.chunks_x()), cx = static_cast<uint32_t>(k % dst.chunks_x());
        // The source region: up to 2 x 2 chunks of the level below (and its planes under the
        // chunk's), cut at its edge.
        const uint32_t rx = 2 * cx * src.chunk_x, ry = 2 * cy * src.chunk_y;
        const LevelShape rs{std::min(2 * src.chunk_x, src.width - rx), std::min(2 * src.chunk_y, src.height - ry),
                            src.chunk_y, src.chunk_x};
        const uint32_t sz0 = halve_z ? 2 * dz : dz, sz1 = halve_z ? std::min(2 * (dz + dn), src.depth) : dz + dn;
        const size_t rplane = rs.pixels() * elem;
        region.assign(rplane * (sz1 - sz0), 0);
        Status s;
        for (uint32_t zc = sz0 - sz0 % src.chunk_z; zc < sz1 && s.ok(); zc += src.chunk_z) {
          for (uint32_t sy = 0; sy < 2 && 2 * cy + sy < src.chunks_y() && s.ok(); ++sy) {
            for (uint32_t sx = 0; sx < 2 && 2 * cx + sx < src.chunks_x() && s.ok(); ++sx) {
              Result<std::vector<uint8_t>> stored = Error(StatusCode::kInternal, "not read");
              {
                std::lock_guard lock(file_mu);
                stored = file.ReadOwnChunk({{0, c, zc}, l - 1, 2 * cy + sy, 2 * cx + sx});
              }
              s = stored.ok() ? codec::Decompress(*stored, below) : stored.status();
              for (uint32_t z = std::max(zc, sz0); s.ok() && z < std::min(zc + src.chunk_z, sz1); ++z) {
                pyramid::InsertChunk(std::span<const uint8_t>(below).subspan((z - zc) * src.chunk_pixels() * elem), rs,
                                     elem, sy, sx, std::span(region).subspan((z - sz0) * rplane, rplane));
              }
            }
          }
        }
        if (s.ok()) {
          const LevelShape hs{(rs.width + 1) / 2, (rs.height + 1) / 2, dst.chunk_y, dst.chunk_x};
          const size_t hplane = dst.chunk_pixels() * elem;
          half.assign(hs.pixels() * elem, 0);
          std::fill(chunk.begin(), chunk.end(), uint8_t{0});
          for (uint32_t i = 0; i < dn; ++i) {
            auto plane = [&](uint32_t z) { return std::span<const uint8_t>(region).subspan((z - sz0) * rplane, rplane); };
            if (halve_z) {
              const uint32_t a = 2 * (dz + i), b = std::min(a + 1, sz1 - 1);  // an odd depth's last plane pairs with itself
              pyramid::Downsample2x2x2(plane(a), plane(b), rs, fused.dtype, half);
            } else {
              pyramid::Downsample2x(plane(dz + i), rs, fused.dtype, half);
            }
            pyramid::ExtractChunk(half, hs, elem, 0, 0, std::span(chunk).subspan(i * hplane, hplane));
          }
          auto packed = codec::Compress(chunk, elem, fused.codec);
          if (packed.ok()) {
            std::lock_guard lock(file_mu);
            s = file.WriteChunk({{0, c, dz}, l, cy, cx}, *packed, codec::Checksum(*packed));
          } else {
            s = packed.status();
          }
        }
        if (!s.ok() || stop.load()) {
          std::lock_guard lock(error_mu);
          if (error.ok()) error = s.ok() ? Error(StatusCode::kUnavailable, "stitch of {} interrupted", o.slide) : s;
          next = jobs;
          return;
        }
        if (const uint64_t n = ++made; progress && (n % 64 == 0 || n == level_chunks)) {
          std::lock_guard lock(file_mu);  // one progress report at a time
          progress({"pyramid", n, level_chunks});
        }
      }
    };
    {
      std::jthread helper(work);
      work();
    }
    TESSERA_RETURN_IF_ERROR(error);
  }
  return OkStatus();
}

// The fused image of a stitched slide: a slide file of one field of view, the whole mosaic
// with the tiles at their solved positions rounded to the pixel (where the dealer places them),
// every block of level-0 chunks a "fuse" task, then its zoom levels here (FuseLevels). Written under a temporary name and
// renamed when complete, so the fused view is the last whole one.
// `source` is the slide fused: the scan itself, or an oblique scan's deskewed view. Stacks
// solved in 3-D (`solved_z`, planes) are placed in z too, rounded to the plane: the fused
// volume spans every stack, and each fused plane takes from each stack the plane under it.
Status FuseSlide(const StitchOptions& o, const SlideSummary& source, const std::string& slide_path,
                 const std::vector<std::array<double, 2>>& solved, const std::vector<double>& solved_z,
                 const std::string& broker,
                 const std::function<void(const StitchProgress&)>& progress, const std::atomic<bool>& stop,
                 const correct::SlideCorrections& with, StitchResult& r) {
  const ScanPlan& plan = source.plan;
  std::vector<std::array<int64_t, 2>> at;
  int64_t x0 = INT64_MAX, y0 = INT64_MAX, x1 = INT64_MIN, y1 = INT64_MIN;
  for (const auto& p : solved) {
    at.push_back({static_cast<int64_t>(std::floor(p[0] + 0.5)), static_cast<int64_t>(std::floor(p[1] + 0.5))});
    x0 = std::min(x0, at.back()[0]);
    y0 = std::min(y0, at.back()[1]);
    x1 = std::max(x1, at.back()[0] + plan.width);
    y1 = std::max(y1, at.back()[1] + plan.height);
  }
  std::vector<int64_t> at_z(solved.size(), 0);
  int64_t z0 = 0, z1 = plan.z_planes;
  if (!solved_z.empty()) {
    z0 = INT64_MAX, z1 = INT64_MIN;
    for (size_t t = 0; t < solved.size(); ++t) {
      at_z[t] = static_cast<int64_t>(std::floor(solved_z[t] + 0.5));
      z0 = std::min(z0, at_z[t]);
      z1 = std::max(z1, at_z[t] + plan.z_planes);
    }
  }
  ScanPlan fused = plan;
  fused.name = plan.name + " (fused)";
  fused.tiles = {{.name = "fused", .x = static_cast<double>(x0), .y = static_cast<double>(y0), .z = static_cast<double>(z0)}};
  fused.width = static_cast<uint32_t>(x1 - x0);
  fused.height = static_cast<uint32_t>(y1 - y0);
  fused.z_planes = static_cast<uint32_t>(z1 - z0);
  fused.stitch = false;
  if (!solved_z.empty()) {  // a volume: 3-D chunks and levels (docs/benchmarks.md, "Chunk shapes")
    fused.chunk_z = kFusedVolumeChunk[0];
    fused.chunk_y = kFusedVolumeChunk[1];
    fused.chunk_x = kFusedVolumeChunk[2];
  }
  fused.ClampChunks();
  TESSERA_RETURN_IF_ERROR(fused.Validate());
  const mosaic::MosaicIndex index(solved, {plan.width, plan.height});
  const std::string path = storage::FusedPathOf(slide_path), partial = path + ".partial";
  std::error_code ec;
  std::filesystem::remove(partial, ec);
  TESSERA_ASSIGN_OR_RETURN(auto file, storage::SlideFile::Create(partial, fused, o.slide + ":fused"));
  // Tasks of about 1024 x 1024 pixels, one chunk deep (2 x 2 chunks of a plane's 512 x 512, 8 x 8
  // of a volume's 128 x 128 x 8): the tiles' stored chunks under a task are read and decoded
  // once for all of them (a chunk-sized task would decode most of them several times).
  const LevelShape l0 = fused.Level(0);
  const uint32_t group_y = std::clamp(1024 / l0.chunk_y, 1u, 8u), group_x = std::clamp(1024 / l0.chunk_x, 1u, 8u);
  const uint32_t groups_x = (l0.chunks_x() + group_x - 1) / group_x, groups_y = (l0.chunks_y() + group_y - 1) / group_y;
  const size_t per_block = size_t{groups_x} * groups_y, blocks = fused.channels.size() * l0.chunks_z();
  const size_t planes = fused.channels.size() * fused.z_planes;
  std::vector<size_t> block_done(blocks, 0);  // chunks
  struct Group {
    uint32_t c, z, planes, cy, cx, ny, nx;  // the first plane and chunk, how many planes, chunks down and across
  };
  auto group_of = [&](size_t i) {
    const size_t k = i % per_block, block = i / per_block;
    const auto cy = static_cast<uint32_t>(k / groups_x * group_y), cx = static_cast<uint32_t>(k % groups_x * group_x);
    const auto z = static_cast<uint32_t>(block % l0.chunks_z() * l0.chunk_z);
    return Group{static_cast<uint32_t>(block / l0.chunks_z()), z, std::min(l0.chunk_z, l0.depth - z), cy, cx,
                 std::min(group_y, l0.chunks_y() - cy), std::min(group_x, l0.chunks_x() - cx)};
  };
  // Each channel's flat field and dark level, as every task of it carries them (gains are per tile).
  std::vector<std::optional<proto::ChannelCorrections>> task_corrections(plan.channels.size());
  for (const auto& cc : with.channels) {
    correct::ChannelCorrections shared = cc;
    shared.gains.clear();
    correct::ToProto(shared, &task_corrections[cc.channel].emplace());
  }
  const auto started = Clock::now();
  TESSERA_RETURN_IF_ERROR(RunTasks(
      broker, "fuse", blocks * per_block, o,
      [&](size_t i, proto::TaskRequest& t) {
        const Group g = group_of(i);
        proto::FuseTask* f = t.mutable_fuse();
        f->set_slide(source.id);
        f->set_channel(g.c);
        f->set_z(g.z);
        f->set_planes(g.planes);
        f->set_chunk_depth(l0.chunk_z);
        const mosaic::Box box{x0 + int64_t{g.cx} * l0.chunk_x, y0 + int64_t{g.cy} * l0.chunk_y, g.nx * l0.chunk_x,
                              g.ny * l0.chunk_y};
        f->set_x(box.x);
        f->set_y(box.y);
        f->set_width(static_cast<uint32_t>(box.w));
        f->set_height(static_cast<uint32_t>(box.h));
        f->set_chunk_width(l0.chunk_x);
        f->set_chunk_height(l0.chunk_y);
        f->set_blend(static_cast<uint32_t>(o.blend));
        const correct::ChannelCorrections* cc = with.Of(g.c);
        if (task_corrections[g.c]) *f->mutable_corrections() = *task_corrections[g.c];
        for (uint32_t tile : index.Query(0, box)) {
          // The task's planes the stack lies under, and its plane under the first of them.
          const int64_t under = z0 + g.z - at_z[tile];  // the stack's plane under the task's first
          const int64_t first = std::max<int64_t>(0, -under), last = std::min<int64_t>(g.planes, plan.z_planes - under);
          if (first >= last) continue;
          proto::FuseTile* ft = f->add_tiles();
          ft->set_tile(tile);
          ft->set_x(at[tile][0]);
          ft->set_y(at[tile][1]);
          ft->set_z(static_cast<uint32_t>(under + first));
          ft->set_at(static_cast<uint32_t>(first));
          ft->set_planes(static_cast<uint32_t>(last - first));
          if (cc != nullptr && tile < cc->gains.size()) ft->set_gain(cc->gains[tile]);
        }
      },
      [&](size_t i, const proto::TaskResult& res, std::vector<zmq::message_t>& payload) -> Status {
        const Group g = group_of(i);
        if (Status s = wire::FromProto(res.status()); !s.ok()) {
          return Error(s.code(), "fusing chunks ({}, {}) of channel {} z {} of {} failed: {}", g.cy, g.cx, g.c, g.z,
                       o.slide, s.message());
        }
        const auto n = static_cast<size_t>(g.ny * g.nx);
        if (payload.size() != n || static_cast<size_t>(res.chunk().checksums_size()) != n) {
          return Error(StatusCode::kDataLoss, "the fused chunks ({}, {}) of {} came back {} instead of {}", g.cy, g.cx,
                       o.slide, payload.size(), n);
        }
        for (uint32_t k = 0; k < n; ++k) {
          const auto bytes = wire::Bytes(payload[k]);
          const uint64_t sum = res.chunk().checksums(static_cast<int>(k));
          if (codec::Checksum(bytes) != sum) {
            return Error(StatusCode::kDataLoss, "a fused chunk of {} came back damaged", o.slide);
          }
          TESSERA_RETURN_IF_ERROR(file->WriteChunk({{0, g.c, g.z}, 0, g.cy + k / g.nx, g.cx + k % g.nx}, bytes, sum));
        }
        if ((block_done[i / per_block] += n) == l0.chunks_per_frame()) {
          for (uint32_t z = g.z; z < g.z + g.planes; ++z) file->MarkWritten(fused.FrameIndex({0, g.c, z}));
        }
        return OkStatus();
      },
      progress, stop));
  r.fused_bytes = uint64_t{fused.width} * fused.height * planes * DtypeSize(fused.dtype);

  const double level0_s = Seconds(started);
  TESSERA_RETURN_IF_ERROR(FuseLevels(o, *file, progress, stop));
  for (size_t plane = 0; plane < planes; ++plane) {
    file->MarkLevelsWritten(fused.FrameIndex({0, static_cast<uint32_t>(plane / fused.z_planes),
                                              static_cast<uint32_t>(plane % fused.z_planes)}));
  }
  TESSERA_RETURN_IF_ERROR(file->Close());
  TESSERA_RETURN_IF_ERROR(durable::Rename(partial, path));
  r.fuse_s = Seconds(started);  // level 0 and its zoom levels
  log::Get("stitcher")->info("slide={} fused {}x{} level0_s={:.2f} levels_s={:.2f} path={}", o.slide, fused.width,
                             fused.height, level0_s, r.fuse_s - level0_s, path);
  return OkStatus();
}

}  // namespace

bool IsVolume(const ScanPlan& plan, bool deskewed) {
  if (deskewed || plan.oblique || plan.z_planes >= kVolumePlanes) return plan.z_planes > 1;
  return std::any_of(plan.tiles.begin(), plan.tiles.end(), [&](const TilePlacement& t) { return t.z != plan.tiles[0].z; });
}

Result<BrokerState> QueryBroker(const std::string& manager) {
  Client client(manager);
  TESSERA_ASSIGN_OR_RETURN(const std::string broker, BrokerOf(client, manager));
  return Query(broker);
}

Result<StitchResult> Stitch(const StitchOptions& o, const std::function<void(const StitchProgress&)>& progress,
                            const std::atomic<bool>& stop) {
  Client client(o.manager);
  TESSERA_ASSIGN_OR_RETURN(SlideSummary summary, client.Info(o.slide));
  TESSERA_ASSIGN_OR_RETURN(const std::string broker, BrokerOf(client, o.manager));
  StitchResult r;
  const std::string slide_path = summary.path;
  correct::SlideCorrections raw_flat;  // with --destripe --flat-field: the flat field the view was made with
  if (o.destripe) {  // its destriped view is what is stitched
    if (summary.plan.oblique) {
      return Error(StatusCode::kUnimplemented, "slide {} is an oblique scan: destriping before the deskew is not built yet",
                   o.slide);
    }
    // The flat field first, from the raw planes, and divided out of each plane before it is
    // destriped: the wavelet notch would take the illumination's profile along the stripes out
    // with them, and no flat field could be estimated from the view after.
    if (o.flat_field) {
      const auto flat_started = Clock::now();
      internal::CorrectionsRequest req{.flat_field = true, .dark = o.dark, .z = summary.plan.z_planes / 2};
      TESSERA_ASSIGN_OR_RETURN(raw_flat, internal::EstimateCorrections(client, summary, req, [&](uint64_t d, uint64_t t) {
        if (progress) progress({"correct", d, t});
      }));
      r.correct_s += Seconds(flat_started);
    }
    TESSERA_RETURN_IF_ERROR(DestripeSlide(o, client, summary, raw_flat, broker, progress, stop, r));
    TESSERA_ASSIGN_OR_RETURN(summary, client.Info(o.slide + ":destriped"));
  } else if (summary.plan.oblique) {  // deskewed as it lands; its deskewed view is what is stitched
    TESSERA_RETURN_IF_ERROR(DeskewSlide(o, client, summary, broker, progress, stop, r));
    if (o.deskew_only) return r;
    TESSERA_ASSIGN_OR_RETURN(summary, client.Info(o.slide + ":deskewed"));
  } else if (o.deskew_only) {
    return Error(StatusCode::kInvalidArgument, "slide {} is not an oblique scan: it has no deskewed view", o.slide);
  }
  const ScanPlan& plan = summary.plan;
  if (o.channel >= plan.channels.size()) {
    return Error(StatusCode::kInvalidArgument, "channel {}: slide {} has channels 0 to {}", o.channel, o.slide,
                 plan.channels.size() - 1);
  }
  // A z-stack is registered on its maximum projection over z unless a plane is named; stacks
  // that are volumes are registered and solved in z too.
  const bool project_z = o.z < 0 && plan.z_planes > 1;
  const uint32_t z = o.z < 0 ? 0 : static_cast<uint32_t>(o.z);
  if (z >= plan.z_planes) {
    return Error(StatusCode::kInvalidArgument, "z {}: slide {} has planes 0 to {}", z, o.slide, plan.z_planes - 1);
  }
  const bool deskewed = summary.id == o.slide + ":deskewed";
  const bool register_z = project_z && IsVolume(plan, deskewed);
  std::vector<std::array<double, 2>> stage;
  std::vector<double> stage_z;
  std::vector<std::string> names;
  for (const auto& t : plan.tiles) {
    stage.push_back({t.x, t.y});
    stage_z.push_back(t.z);
    names.push_back(t.name);
  }
  r.pairs = stitch::OverlappingPairs(stage, plan.width, plan.height);
  r.links.resize(r.pairs.size());

  // A slide still acquiring: each pair goes out as soon as both its tiles have landed (the
  // dealer's events), and registration ends once the scan has closed and every pair is in; a
  // pair whose tile never landed is an unreliable link.
  std::vector<std::vector<size_t>> pairs_of(plan.tiles.size());
  for (size_t i = 0; i < r.pairs.size(); ++i) {
    pairs_of[r.pairs[i].a].push_back(i);
    pairs_of[r.pairs[i].b].push_back(i);
  }
  std::vector<bool> queued(r.pairs.size()), tile_in(plan.tiles.size());
  std::vector<uint64_t> fresh;
  std::unique_ptr<Landing> landing;
  Feed feed;
  if (summary.state == "acquiring") {
    TESSERA_ASSIGN_OR_RETURN(landing, Landing::Watch(client, summary.id, plan.frame_count()));
    feed = [&](std::vector<size_t>& ready, size_t& settled) {
      fresh.clear();
      const bool closed = landing->Take(fresh);
      for (uint64_t f : fresh) {
        const FrameKey k = plan.KeyOf(f);
        // Registered on a projection, a tile is in once its last plane is (frames land in scan order).
        if (k.c != o.channel || k.z != (project_z ? plan.z_planes - 1 : z) || tile_in[k.t]) continue;
        tile_in[k.t] = true;
        for (size_t i : pairs_of[k.t]) {
          if (!queued[i] && tile_in[r.pairs[i].a] && tile_in[r.pairs[i].b]) {
            queued[i] = true;
            ready.push_back(i);
          }
        }
      }
      if (!closed) return;
      for (size_t i = 0; i < r.pairs.size(); ++i) {  // the scan is over: what has not landed never will
        if (queued[i]) continue;
        queued[i] = true;
        stitch::Link& link = r.links[i];
        link.dx = link.nominal_dx = r.pairs[i].dx;
        link.dy = link.nominal_dy = r.pairs[i].dy;
        link.dz = link.nominal_dz = stage_z[r.pairs[i].b] - stage_z[r.pairs[i].a];
        link.reason = fmt::format("tile {} never landed", tile_in[r.pairs[i].a] ? r.pairs[i].b : r.pairs[i].a);
        ++settled;
      }
    };
  }

  // Registration: every pair a task, a window of them in flight.
  const auto started = Clock::now();
  TESSERA_RETURN_IF_ERROR(RunTasks(
      broker, "register", r.pairs.size(), o,
      [&](size_t i, proto::TaskRequest& t) {
        const stitch::TilePair& p = r.pairs[i];
        proto::RegisterTask* reg = t.mutable_register_pair();
        reg->set_slide(summary.id);
        reg->set_a(p.a);
        reg->set_b(p.b);
        reg->set_channel(o.channel);
        reg->set_z(z);
        reg->set_nominal_dx(p.dx);
        reg->set_nominal_dy(p.dy);
        reg->set_max_shift(static_cast<uint32_t>(o.max_shift));
        reg->set_project_z(project_z);
        reg->set_register_z(register_z);
        reg->set_nominal_dz(stage_z[p.b] - stage_z[p.a]);
        reg->set_max_shift_z(static_cast<uint32_t>(o.max_shift_z));
        reg->set_zero_is_empty(deskewed);  // a deskewed view's corners hold no data
      },
      [&](size_t i, const proto::TaskResult& res, std::vector<zmq::message_t>&) -> Status {
        const Status s = wire::FromProto(res.status());
        stitch::Link& link = r.links[i];
        link.nominal_dx = r.pairs[i].dx;
        link.nominal_dy = r.pairs[i].dy;
        link.dz = link.nominal_dz = stage_z[r.pairs[i].b] - stage_z[r.pairs[i].a];
        if (s.code() == StatusCode::kInvalidArgument) {  // e.g. no overlap within the stage's error
          link.dx = link.nominal_dx;
          link.dy = link.nominal_dy;
          link.reason = s.message();
          return OkStatus();
        }
        if (!s.ok()) {
          return Error(s.code(), "registering tiles {} and {} of {} failed: {}", r.pairs[i].a, r.pairs[i].b, o.slide,
                       s.message());
        }
        if (landing) r.registered_while_acquiring += !landing->closed();
        const proto::LinkResult& l = res.link();
        link.dx = l.dx();
        link.dy = l.dy();
        link.dz = l.dz();
        link.ncc_z = l.ncc_z();
        link.ncc = l.ncc();
        link.margin = l.margin();
        link.texture = l.texture();
        link.reliable = l.reliable();
        link.reason = l.reason();
        return OkStatus();
      },
      progress, stop, feed));
  r.register_s = Seconds(started);

  // The solve, on this side: it is small (a sparse system of two or three unknowns per tile).
  const auto solve_started = Clock::now();
  if (progress) progress({"solve", 0, 1});
  std::vector<stitch::TileLink> links;
  for (size_t i = 0; i < r.pairs.size(); ++i) {
    links.push_back({r.pairs[i].a, r.pairs[i].b, r.links[i].dx, r.links[i].dy, std::max(0.01, r.links[i].ncc),
                     r.links[i].reliable, r.links[i].dz});
  }
  TESSERA_ASSIGN_OR_RETURN(r.solution,
                           stitch::SolvePositions(stage, links, {}, register_z ? stage_z : std::vector<double>{}));
  r.solve_s = Seconds(solve_started);
  if (progress) progress({"solve", 1, 1});
  r.report = stitch::MakeReport(names, stage, r.pairs, r.links, r.solution, o.max_shift, stage_z, o.max_shift_z);
  correct::SlideCorrections fuse_with;  // what the fusion applies (a destriped view's flat field is in it already)
  if (o.flat_field || o.normalize) {
    const auto correct_started = Clock::now();
    const bool flat_here = o.flat_field && raw_flat.empty();
    internal::CorrectionsRequest req{.flat_field = flat_here, .normalize = o.normalize, .dark = o.dark,
                                     .z = project_z ? plan.z_planes / 2 : z, .links = links,
                                     .used = r.solution.used, .positions = r.solution.positions};
    for (const auto& f : raw_flat.channels) {  // the dark levels the view was made with
      if (req.channel_dark.size() <= f.channel) req.channel_dark.resize(f.channel + 1, o.dark);
      req.channel_dark[f.channel] = f.dark;
    }
    TESSERA_ASSIGN_OR_RETURN(r.corrections, internal::EstimateCorrections(client, summary, req, [&](uint64_t d, uint64_t t) {
      if (progress) progress({"correct", d, t});
    }));
    fuse_with = r.corrections;
    // Stored for the raw view: the raw planes' flat field with the view's gains and dark level.
    for (auto& cc : r.corrections.channels) {
      if (const correct::ChannelCorrections* f = raw_flat.Of(cc.channel)) {
        cc.flat = f->flat;
        cc.dark = f->dark;
      }
    }
    r.correct_s += Seconds(correct_started);
    log::Get("stitcher")->info("slide={} corrections estimated channels={} flat_field={} normalize={} s={:.2f}", o.slide,
                               r.corrections.channels.size(), o.flat_field, o.normalize, r.correct_s);
  }
  if (o.store) {
    TESSERA_RETURN_IF_ERROR(client.StoreStitch(o.slide, r.solution.positions, stitch::ReportJson(r.report),
                                               r.solution.z, r.corrections).status());
  }
  if (o.store && o.fuse) {
    TESSERA_RETURN_IF_ERROR(
        FuseSlide(o, summary, slide_path, r.solution.positions, r.solution.z, broker, progress, stop, fuse_with, r));
  }
  return r;
}

// A stitcher's progress reports to its manager: how long one waits for its answer, and how long
// the stitcher stays quiet after one went unanswered (its stitch never waits on them for long).
constexpr int kProgressTimeoutMs = 1000;
constexpr int64_t kProgressQuietMs = 5000;

Status RunAndReport(const StitchOptions& o, const std::atomic<bool>& stop) {
  int64_t last_report = 0;
  StitchProgress reported;  // the last progress the manager heard
  auto report = [&](const std::string& state, const StitchProgress& p, const std::string& error,
                    const std::string& report_json = "", const StitchResult* done = nullptr) {
    proto::ManagerRequest req;
    req.set_version(wire::kProtocolVersion);
    proto::StitchState* st = req.mutable_stitch_progress();
    st->set_slide_id(o.slide);
    st->set_state(state);
    st->set_stage(p.stage);
    st->set_done(p.done);
    st->set_total(p.total);
    st->set_error(error);
    st->set_pid(static_cast<int32_t>(::getpid()));
    st->set_report_json(report_json);
    if (done != nullptr) {
      rusage usage{};
      ::getrusage(RUSAGE_SELF, &usage);
      st->set_register_s(done->register_s);
      st->set_solve_s(done->solve_s);
      st->set_fuse_s(done->fuse_s);
      st->set_fused_bytes(done->fused_bytes);
      st->set_peak_rss_bytes(static_cast<uint64_t>(usage.ru_maxrss) * 1024);
      st->set_registered_while_acquiring(done->registered_while_acquiring);
      st->set_deskew_s(done->deskew_s);
      st->set_deskewed_while_acquiring(done->deskewed_while_acquiring);
    }
    last_report = wire::NowMs();
    // Progress is news, not a promise: it waits a second at most, and a manager that did not
    // answer (busy, or stopping the stack) hears no more of it for a while. The end waits longer.
    return wire::Call(o.manager, req, state == "running" ? kProgressTimeoutMs : 5000).status();
  };
  int64_t quiet_until = 0;  // no progress reports before this (the manager did not answer)
  auto r = Stitch(
      o,
      [&](const StitchProgress& p) {  // a new stage, its end, or news at most five times a second
        const bool news = p.stage != reported.stage || p.done != reported.done;
        if (stop.load() || wire::NowMs() < quiet_until) return;
        if (news && (p.stage != reported.stage || p.done == p.total || wire::NowMs() - last_report > 200)) {
          reported = p;
          if (!report("running", p, "").ok()) quiet_until = wire::NowMs() + kProgressQuietMs;
        }
      },
      stop);
  if (!r.ok()) {
    if (!stop.load()) (void)report("failed", {}, r.status().ToString());  // stopped: the manager is going
    return r.status();
  }
  // A stored report is read from the stitch file; one not stored travels with the end.
  return report("done", {"store", 1, 1}, "", o.store ? "" : stitch::ReportJson(r->report), &*r);
}

}  // namespace tessera::stitcher
