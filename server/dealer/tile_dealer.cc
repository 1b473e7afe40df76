#include "server/dealer/tile_dealer.h"

#include "common/metrics/metrics.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <thread>

#include "common/codec/codec.h"
#include "common/log/log.h"
#include "common/mosaic/mosaic.h"
#include "common/wire/rpc.h"
#include "common/cache/chunk_cache.h"
#include "server/dealer/internal/slide_registry.h"

namespace tessera::dealer {
namespace {

using cache::CacheKey;
using cache::CachedChunk;

constexpr int kMaxChunksPerRequest = 64;
constexpr size_t kMaxReadAhead = 256;             // queued neighbour reads; more are dropped
constexpr uint64_t kMaxBandPixels = 64ull << 20;  // one page of a region plan
constexpr const char* kResultsEndpoint = "inproc://dealer-results";

ChunkKey KeyOf(const proto::ChunkRef& r) { return {{r.t(), r.c(), r.z()}, r.level(), r.cy(), r.cx()}; }

// A reply on its way to a client: routing identity, header, payload frames.
struct Outgoing {
  zmq::message_t identity;
  proto::DealerReply reply;
  std::vector<zmq::message_t> payload;
};

struct Task {
  zmq::message_t identity;
  proto::DealerRequest request;
  int64_t received_us = 0;
};

}  // namespace

struct TileDealer::Impl {
  DealerOptions options;
  std::optional<wire::Server<proto::DealerRequest, proto::DealerReply>> front;
  zmq::socket_t events, publish, results;
  std::string endpoint, events_endpoint, publish_endpoint;
  cache::ChunkCache cache{options.cache_bytes};
  metrics::LatencyHistogram read_latency;  // read_chunks, arrival to answer
  std::atomic<uint64_t> requests{0};
  std::unique_ptr<internal::SlideRegistry> registry;
  std::shared_ptr<spdlog::logger> log = log::Get("dealer");

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Task> tasks;
  std::deque<CacheKey> read_ahead;
  bool stopping = false;
  std::vector<std::jthread> workers;

  explicit Impl(const DealerOptions& o) : options(o) {}

  ~Impl() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    workers.clear();
  }

  static proto::DealerReply ReplyTo(const proto::DealerRequest& req) {
    proto::DealerReply r;
    r.set_version(wire::kProtocolVersion);
    r.set_request_id(req.request_id());
    return r;
  }

  // ---- chunks

  // The chunk from the cache, or read from the file and checked against its stored checksum.
  Result<CachedChunk> Fetch(internal::OpenSlide& slide, const ChunkKey& key) {
    const CacheKey ck{slide.id, key};
    if (auto hit = cache.Get(ck)) return *hit;
    std::vector<uint8_t> bytes;
    uint64_t expected = 0, generation = 0;
    {
      std::lock_guard lock(registry->hdf5_mutex());
      if (!slide.file) return Error(StatusCode::kUnavailable, "slide {}'s file is being reopened: try again", slide.id);
      auto read = slide.file->ReadChunk(key);
      if (read.status().code() == StatusCode::kNotFound && registry->RefreshOnMiss(slide)) {
        read = slide.file->ReadChunk(key);
      }
      TESSERA_ASSIGN_OR_RETURN(bytes, std::move(read));
      expected = slide.file->StoredChecksum(key);
      generation = slide.generation;
    }
    const uint64_t sum = codec::Checksum(bytes);
    if (expected != 0 && sum != expected) {
      Status s = Error(StatusCode::kDataLoss,
                       "chunk (t={} c={} z={} level={} cy={} cx={}) of slide {} fails its checksum "
                       "on disk: the file is damaged there",
                       key.frame.t, key.frame.c, key.frame.z, key.level, key.cy, key.cx, slide.id);
      log->error("slide={} status=DATA_LOSS {}", slide.id, s.message());
      return s;
    }
    CachedChunk c{std::make_shared<const std::vector<uint8_t>>(std::move(bytes)), sum};
    std::lock_guard lock(registry->hdf5_mutex());
    // Not if the file was replaced since the read: the cache was emptied of it then.
    if (slide.generation == generation) cache.Put(ck, c);
    return c;
  }

  void QueueReadAhead(const std::string& slide, const ScanPlan& plan, const ChunkKey& key) {
    const LevelShape s = plan.Level(key.level);
    std::lock_guard lock(mu);
    for (auto [dy, dx] : {std::pair{0, 1}, {1, 0}, {0, -1}, {-1, 0}}) {
      const int64_t cy = int64_t{key.cy} + dy, cx = int64_t{key.cx} + dx;
      if (cy < 0 || cx < 0 || cy >= s.chunks_y() || cx >= s.chunks_x()) continue;
      if (read_ahead.size() >= kMaxReadAhead) return;
      CacheKey n{slide, {key.frame, key.level, static_cast<uint32_t>(cy), static_cast<uint32_t>(cx)}};
      if (!cache.Contains(n)) read_ahead.push_back(std::move(n));
    }
    cv.notify_one();
  }

  void AddChunk(Outgoing& out, Result<CachedChunk> c) {
    auto* result = out.reply.mutable_chunks()->add_results();
    wire::ToProto(c.status(), result->mutable_status());
    if (!c.ok()) return;
    result->set_xxh64(c->xxh64);
    out.payload.push_back(wire::Share(c->bytes));
  }

  // Answers from the cache alone, on the socket thread; false when something is missing.
  bool TryFromCache(const proto::ReadChunks& req, Outgoing& out) {
    if (req.chunks_size() == 0 || req.chunks_size() > kMaxChunksPerRequest) return false;
    std::vector<CachedChunk> hits;
    for (const auto& ref : req.chunks()) {
      auto hit = cache.Get({req.slide_id(), KeyOf(ref)});
      if (!hit) return false;
      hits.push_back(std::move(*hit));
    }
    for (auto& h : hits) AddChunk(out, std::move(h));
    return true;
  }

  Status ReadChunks(const proto::ReadChunks& req, Outgoing& out) {
    TESSERA_ASSIGN_OR_RETURN(auto slide, registry->Get(req.slide_id()));
    for (const auto& ref : req.chunks()) {
      const ChunkKey key = KeyOf(ref);
      auto c = Fetch(*slide, key);
      if (c.ok()) QueueReadAhead(slide->id, slide->plan, key);
      AddChunk(out, std::move(c));
    }
    out.reply.mutable_chunks();  // present even for an empty list
    return OkStatus();
  }

  // ---- slides

  Status SlideInfo(const std::string& id, Outgoing& out) {
    TESSERA_ASSIGN_OR_RETURN(auto slide, registry->Get(id));
    auto* info = out.reply.mutable_slide_info();
    const ScanPlan& plan = slide->plan;
    info->set_level_count(plan.level_count());
    const auto placement = slide->placement.load();
    info->set_depth(placement->depth);
    for (size_t i = 0; i < plan.tiles.size(); ++i) {
      info->add_positions(placement->positions[i][0]);
      info->add_positions(placement->positions[i][1]);
      info->add_positions(placement->z[i]);
    }
    std::string landed(plan.frame_count(), '\0');
    std::lock_guard lock(registry->hdf5_mutex());
    if (!slide->file) return Error(StatusCode::kUnavailable, "slide {}'s file is being reopened: try again", slide->id);
    *info->mutable_summary() = slide->summary;
    for (uint64_t f = 0; f < landed.size(); ++f) {
      landed[f] = static_cast<char>(slide->file->LevelsWritten(f) ? 2 : slide->file->IsWritten(f) ? 1 : 0);
    }
    info->set_landed(std::move(landed));
    info->set_live(slide->file->live());
    info->set_host(wire::HostId());
    return OkStatus();
  }

  Status ListSlides(Outgoing& out) {
    proto::ManagerRequest req;
    req.set_version(wire::kProtocolVersion);
    req.mutable_list_slides();
    TESSERA_ASSIGN_OR_RETURN(wire::Message in, wire::Call(options.manager, req, 5000));
    proto::ManagerReply reply;
    TESSERA_RETURN_IF_ERROR(wire::ParseHeader(in, &reply));
    TESSERA_RETURN_IF_ERROR(wire::FromProto(reply.status()));
    *out.reply.mutable_slides() = reply.slides();
    return OkStatus();
  }

  // ---- regions

  Status PlanRegion(const proto::PlanRegion& req, Outgoing& out) {
    TESSERA_ASSIGN_OR_RETURN(auto slide, registry->Get(req.slide_id()));
    const ScanPlan& plan = slide->plan;
    if (req.level() >= plan.level_count()) {
      return Error(StatusCode::kOutOfRange, "level {} does not exist: slide {} has levels 0..{}",
                   req.level(), slide->id, plan.level_count() - 1);
    }
    const auto& b = req.box();
    const int level = static_cast<int>(req.level());
    const mosaic::Box asked{b.x(), b.y(), b.w(), b.h()};
    const auto placement = slide->placement.load();  // this request's, even if a stitch lands meanwhile
    const mosaic::Box bounds = placement->index.Bounds(level);
    const mosaic::Box box = mosaic::Intersect(asked, bounds);
    if (box.empty()) {
      return Error(StatusCode::kOutOfRange,
                   "region ({}, {}, {}x{}) lies wholly outside slide {} at level {}, which spans ({}, {}, {}x{})",
                   b.x(), b.y(), b.w(), b.h(), slide->id, level, bounds.x, bounds.y, bounds.w, bounds.h);
    }
    auto* plan_out = out.reply.mutable_region();
    *plan_out->mutable_box() = ToProto(box);
    plan_out->set_clipped(!(box == asked));
    // Pages are bands of rows, so that no plan grows with the size of the region asked.
    const int64_t band = std::max<int64_t>(1, static_cast<int64_t>(kMaxBandPixels) / box.w);
    const int64_t bands = (box.h + band - 1) / band;
    const int64_t page = static_cast<int64_t>(req.cursor());
    if (page >= bands) {
      return Error(StatusCode::kInvalidArgument, "cursor {} is past the plan's {} pages", page, bands);
    }
    mosaic::Box part{box.x, box.y + page * band, box.w, std::min(band, box.h - page * band)};
    const LevelShape shape = plan.Level(req.level());
    for (const auto& c : mosaic::PlanRegion(placement->index, level, part, shape.chunk_y, shape.chunk_x)) {
      plan_out->add_tile(c.tile);
      plan_out->add_cy(c.cy);
      plan_out->add_cx(c.cx);
      plan_out->add_sx(c.sx);
      plan_out->add_sy(c.sy);
      plan_out->add_w(c.w);
      plan_out->add_h(c.h);
      plan_out->add_dx(c.dx);
      plan_out->add_dy(static_cast<uint32_t>(c.dy + page * band));
      plan_out->add_first_plane(placement->first_plane[c.tile] >> shape.z_shift);
    }
    plan_out->set_depth(shape.DepthOf(placement->depth));  // the level's planes (a volume's levels halve z)
    plan_out->set_next_cursor(page + 1 < bands ? static_cast<uint64_t>(page + 1) : 0);
    plan_out->set_total_copies(static_cast<uint64_t>(plan_out->tile_size()));
    return OkStatus();
  }

  static proto::Box ToProto(const mosaic::Box& b) {
    proto::Box p;
    p.set_x(b.x);
    p.set_y(b.y);
    p.set_w(b.w);
    p.set_h(b.h);
    return p;
  }

  // ---- threads

  Outgoing Serve(Task& task) {
    Outgoing out{std::move(task.identity), ReplyTo(task.request), {}};
    const auto& req = task.request;
    Status s;
    switch (req.body_case()) {
      case proto::DealerRequest::kListSlides: s = ListSlides(out); break;
      case proto::DealerRequest::kSlideInfo: s = SlideInfo(req.slide_info().slide_id(), out); break;
      case proto::DealerRequest::kReadChunks: s = ReadChunks(req.read_chunks(), out); break;
      case proto::DealerRequest::kPlanRegion: s = PlanRegion(req.plan_region(), out); break;
      case proto::DealerRequest::kStats: Stats(out); break;
      default: s = Error(StatusCode::kInvalidArgument, "empty or unknown dealer request");
    }
    if (!s.ok()) {
      out.reply.clear_body();
      out.payload.clear();
      log->info("request={} status={} {}", req.request_id(), StatusCodeName(s.code()), s.message());
    }
    wire::ToProto(s, out.reply.mutable_status());
    return out;
  }

  void Worker() {
    zmq::socket_t back = wire::MakeSocket(zmq::socket_type::push);
    back.connect(kResultsEndpoint);
    while (true) {
      std::optional<Task> task;
      std::optional<CacheKey> ahead;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return stopping || !tasks.empty() || !read_ahead.empty(); });
        if (stopping) return;
        if (!tasks.empty()) {
          task = std::move(tasks.front());
          tasks.pop_front();
        } else {
          ahead = std::move(read_ahead.front());
          read_ahead.pop_front();
        }
      }
      if (ahead) {
        if (auto slide = registry->Get(ahead->slide); slide.ok()) (void)Fetch(**slide, ahead->chunk);
        continue;
      }
      Outgoing out = Serve(*task);
      Served(task->request, task->received_us);
      wire::Send(back, &out.identity, out.reply, std::move(out.payload));
    }
  }

  void Submit(Task task) {
    {
      std::lock_guard lock(mu);
      tasks.push_back(std::move(task));
    }
    cv.notify_one();
  }

  // What a request may ask, whatever the slide: checked before any handler sees it.
  static Status Validate(const proto::DealerRequest& req) {
    switch (req.body_case()) {
      case proto::DealerRequest::kReadChunks:
        if (req.read_chunks().chunks_size() > kMaxChunksPerRequest) {
          return Error(StatusCode::kInvalidArgument, "{} chunks in one request; ask for at most {}",
                       req.read_chunks().chunks_size(), kMaxChunksPerRequest);
        }
        return OkStatus();
      case proto::DealerRequest::kPlanRegion: {
        const auto& b = req.plan_region().box();
        if (b.w() <= 0 || b.h() <= 0) {
          return Error(StatusCode::kInvalidArgument, "region {}x{} is empty: width and height must be positive",
                       b.w(), b.h());
        }
        // Far beyond any mosaic, and small enough that sums of these never overflow.
        constexpr int64_t kMaxCoordinate = int64_t{1} << 40;
        for (int64_t v : {b.x(), b.y(), b.w(), b.h()}) {
          if (v > kMaxCoordinate || v < -kMaxCoordinate) {
            return Error(StatusCode::kOutOfRange, "region {},{} {}x{}: coordinates are at most 2^40", b.x(), b.y(),
                         b.w(), b.h());
          }
        }
        return OkStatus();
      }
      case proto::DealerRequest::kListSlides:
      case proto::DealerRequest::kSlideInfo:
      case proto::DealerRequest::kStats: return OkStatus();
      default: return Error(StatusCode::kInvalidArgument, "empty or unknown dealer request");
    }
  }

  // Every role may read.
  static Status Authorize(const wire::Message& in, const proto::DealerRequest&) {
    return wire::Authorize(in, {"viewer", "scanner", "worker"}, "read tiles");
  }

  void HandleFront(wire::Incoming<proto::DealerRequest>& call) {
    const int64_t received_us = wire::NowUs();
    if (call.request.has_read_chunks()) {
      Outgoing out{{}, ReplyTo(call.request), {}};
      if (TryFromCache(call.request.read_chunks(), out)) {
        front->Answer(call, std::move(out.reply), OkStatus(), std::move(out.payload));
        Served(call.request, received_us);
        return;
      }
    }
    Submit({std::move(*call.message.identity), std::move(call.request), received_us});
  }

  // Counts an answered request (read_chunks timed from its arrival).
  void Served(const proto::DealerRequest& req, int64_t received_us) {
    requests.fetch_add(1, std::memory_order_relaxed);
    if (req.has_read_chunks()) read_latency.Observe(static_cast<double>(wire::NowUs() - received_us) / 1000);
  }

  void Stats(Outgoing& out) {
    auto* st = out.reply.mutable_stats();
    st->set_cache_bytes(cache.bytes());
    st->set_cache_capacity(options.cache_bytes);
    st->set_cache_hits(cache.hits());
    st->set_cache_misses(cache.misses());
    st->set_requests(requests.load(std::memory_order_relaxed));
    const metrics::HistogramData d = read_latency.Read();
    for (uint64_t n : d.counts) st->add_read_latency_counts(n);
    st->set_read_latency_sum_ms(d.sum_ms);
  }

  void HandleEvent(wire::Message& in) {
    // [topic = slide id][SlideEvent]: note it, and pass it on to subscribed viewers.
    proto::SlideEvent e;
    if (Status s = wire::Authorize(in, {}, "announce slide events"); !s.ok()) {
      log->warn("status={} {}", StatusCodeName(s.code()), s.message());
      return;
    }
    if (in.payload.size() != 1 ||
        !e.ParseFromArray(in.payload[0].data(), static_cast<int>(in.payload[0].size()))) {
      log->warn("status=INVALID_ARGUMENT malformed slide event ignored");
      return;
    }
    registry->MarkChanged(e.slide_id(), e.closed(), e.positions(), e.writer_incarnation());
    publish.send(in.header, zmq::send_flags::sndmore);
    publish.send(in.payload[0], zmq::send_flags::dontwait);
  }
};

TileDealer::TileDealer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TileDealer::~TileDealer() = default;
const std::string& TileDealer::endpoint() const { return impl_->endpoint; }
const std::string& TileDealer::events_endpoint() const { return impl_->events_endpoint; }
const std::string& TileDealer::publish_endpoint() const { return impl_->publish_endpoint; }

Result<std::unique_ptr<TileDealer>> TileDealer::Open(const DealerOptions& options) {
  if (options.manager.empty()) {
    return Error(StatusCode::kInvalidArgument, "the dealer needs the manager's endpoint (--manager)");
  }
  auto impl = std::make_unique<Impl>(options);
  cache::ChunkCache* cache = &impl->cache;
  impl->registry = std::make_unique<internal::SlideRegistry>(
      options.manager, [cache](const std::string& id) { cache->DropSlide(id); });
  impl->events = wire::MakeSocket(zmq::socket_type::sub, wire::kRequestLimits);
  impl->events.set(zmq::sockopt::subscribe, "");
  impl->publish = wire::MakeSocket(zmq::socket_type::xpub, wire::kRequestLimits);
  impl->results = wire::MakeSocket(zmq::socket_type::pull);
  TESSERA_ASSIGN_OR_RETURN(impl->front, (wire::Server<proto::DealerRequest, proto::DealerReply>::Bind(
                                             options.bind, wire::kRequestLimits,
                                             {.authorize = &Impl::Authorize, .validate = &Impl::Validate, .log = "dealer"})));
  impl->endpoint = impl->front->endpoint();
  TESSERA_ASSIGN_OR_RETURN(impl->events_endpoint, wire::Bind(impl->events, options.events_bind));
  TESSERA_ASSIGN_OR_RETURN(impl->publish_endpoint, wire::Bind(impl->publish, options.publish_bind));
  TESSERA_RETURN_IF_ERROR(wire::Bind(impl->results, kResultsEndpoint).status());
  Impl* m = impl.get();
  for (int i = 0; i < std::max(1, options.io_threads); ++i) m->workers.emplace_back([m] { m->Worker(); });
  return std::unique_ptr<TileDealer>(new TileDealer(std::move(impl)));
}

Status TileDealer::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  zmq::pollitem_t items[] = {{m.front->socket().handle(), 0, ZMQ_POLLIN, 0},
                             {m.results.handle(), 0, ZMQ_POLLIN, 0},
                             {m.events.handle(), 0, ZMQ_POLLIN, 0},
                             {m.publish.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stop.load()) {
    wire::Poll(items, 4, 100);
    // Replies first: they free clients to ask for more.
    while (auto in = wire::Receive(m.results, 0, /*router=*/true)) {
      wire::Forward(m.front->socket(), *in);
    }
    for (int i = 0; i < 256; ++i) {
      auto call = m.front->Next(0);
      if (!call) break;
      m.HandleFront(*call);
    }
    while (auto in = wire::Receive(m.events, 0)) m.HandleEvent(*in);
    while (auto in = wire::Receive(m.publish, 0)) {}  // subscriptions: nothing to do
  }
  m.log->info("dealer stops cache_bytes={} hits={} misses={}", m.cache.bytes(), m.cache.hits(),
              m.cache.misses());
  return OkStatus();
}

}  // namespace tessera::dealer
