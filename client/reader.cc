// Client's reads through the tile dealer (or, on its host, from the slide's file): slide
// views, tiles, regions, chunks, events.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>

#include "client/client.h"
#include "client/internal/buffer_pool.h"
#include "client/internal/dealer_link.h"
#include "client/internal/summary.h"
#include "client/internal/thread_pool.h"
#include "common/cache/chunk_cache.h"
#include "common/codec/codec.h"
#include "common/storage/slide_file.h"
#include "common/wire/wire.h"

namespace tessera {
namespace {

constexpr int kChunksPerRequest = 64;  // the dealer's limit
constexpr int kWindow = 16;            // requests in flight per read
constexpr int kFailoverMs = 3000;     // a dealer's silence, with another to turn to
constexpr int64_t kRecheckMs = 1000;   // reads of a local file ask the dealer this often whether they may

// Copies out of one stored chunk into the output planes.
struct Copy {
  uint32_t sx, sy, w, h;
  int64_t dx, dy;
};
struct ChunkCopies {
  uint32_t tile, cy, cx;
  std::vector<Copy> copies;
  uint32_t first_plane = 0;  ///< the tile's first plane among the read's planes (stacks placed in z)
};
// One stored chunk asked for: group `group`'s chunk whose first plane is `z` (among its tile's
// planes at the read's level), planes [from, from + planes) of it into output planes zi.. .
struct Piece {
  size_t group;
  uint32_t z, from, planes;
  int64_t zi;
};

// A slide's (or view's) file opened by this process, on the dealer's host: one handle per
// file for the whole process (HDF5 hands a second open of a file the process has open the
// first one's state, which would not be a SWMR reader's), shared by its clients.
struct LocalFile {
  std::unique_ptr<storage::SlideFile> file;  // every call under storage::Hdf5Mutex(), closing too
  ino_t inode = 0;                           // a view's file made anew (renamed over) is opened anew
  // A file opened while no writer had it (finished, or between a writer's death and its
  // restart) is read as it was then: when it changes on disk it is opened anew, as a live one.
  int64_t mtime_ns = 0;
  off_t size = 0;
  bool Current(const struct stat& st) const {
    return inode == st.st_ino && (file->live() || (mtime_ns == MtimeNs(st) && size == st.st_size));
  }
  static int64_t MtimeNs(const struct stat& st) { return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec; }
  ~LocalFile() {
    std::lock_guard hdf5(storage::Hdf5Mutex());
    file.reset();
  }
};
std::mutex open_files_mu;
std::map<std::string, std::weak_ptr<LocalFile>> open_files;  // by path, under open_files_mu

// The dealer's region plan, checked before a byte is written by it: parallel arrays of one
// length, every chunk inside the slide's level, every copy inside its chunk and inside the
// box, the box inside the request. A plan that fails is DATA_LOSS (a dealer bug or an
// impostor), never an out-of-bounds copy.
Status CheckPlan(const ScanPlan& plan, const RegionRequest& req, const proto::RegionPlan& rp) {
  const uint32_t level = req.level;
  const int n = rp.tile_size();
  for (int size : {rp.cy_size(), rp.cx_size(), rp.sx_size(), rp.sy_size(), rp.w_size(), rp.h_size(), rp.dx_size(),
                   rp.dy_size(), rp.first_plane_size()}) {
    if (size != n) return Error(StatusCode::kDataLoss, "the dealer's region plan has arrays of {} and {} copies", n, size);
  }
  if (level >= plan.level_count()) return Error(StatusCode::kDataLoss, "the dealer planned level {}, which the slide lacks", level);
  const LevelShape s = plan.Level(level);
  if (rp.depth() < s.depth || rp.depth() > uint64_t{kMaxZPlanes} + 2 * static_cast<uint64_t>(kMaxTilePosition)) {
    return Error(StatusCode::kDataLoss, "the dealer's region plan spans {} planes for stacks of {}", rp.depth(),
                 s.depth);
  }
  const proto::Box& b = rp.box();
  // Unsigned differences: b.x() >= req.x is checked first, so they cannot wrap.
  if (b.w() < 0 || b.h() < 0 || b.w() > req.width || b.h() > req.height || b.x() < req.x || b.y() < req.y ||
      static_cast<uint64_t>(b.x()) - static_cast<uint64_t>(req.x) > static_cast<uint64_t>(req.width - b.w()) ||
      static_cast<uint64_t>(b.y()) - static_cast<uint64_t>(req.y) > static_cast<uint64_t>(req.height - b.h())) {
    return Error(StatusCode::kDataLoss, "the dealer's region plan box {}x{} at ({}, {}) is not inside the request",
                 b.w(), b.h(), b.x(), b.y());
  }
  for (int i = 0; i < n; ++i) {
    const bool ok = rp.tile(i) < plan.tiles.size() && rp.cy(i) < s.chunks_y() && rp.cx(i) < s.chunks_x() &&
                    rp.w(i) > 0 && rp.h(i) > 0 && uint64_t{rp.sx(i)} + rp.w(i) <= s.chunk_x &&
                    uint64_t{rp.sy(i)} + rp.h(i) <= s.chunk_y && int64_t{rp.dx(i)} + rp.w(i) <= b.w() &&
                    int64_t{rp.dy(i)} + rp.h(i) <= b.h() && uint64_t{rp.first_plane(i)} + s.depth <= rp.depth();
    if (!ok) {
      return Error(StatusCode::kDataLoss,
                   "the dealer's region plan copy {} (tile {} chunk {},{} from {},{} size {}x{} to {},{}) lies outside "
                   "the slide's chunks or the {}x{} box",
                   i, rp.tile(i), rp.cy(i), rp.cx(i), rp.sx(i), rp.sy(i), rp.w(i), rp.h(i), rp.dx(i), rp.dy(i), b.w(),
                   b.h());
    }
  }
  return OkStatus();
}

// One read in progress: bounded requests in flight, decodes on the pool, first error kept.
struct ReadJob {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, decoding = 0;
  Status error;
  uint64_t missing = 0, decoded = 0;
  bool zero_missing = false;  // the output was not cleared first: a missing chunk's copies are cleared

  void Fail(const Status& s) {
    std::lock_guard lock(mu);
    if (error.ok()) error = s;
  }
  // A decode counted in `decoding` ended with `s`.
  void Decoded(const Status& s) {
    std::lock_guard lock(mu);
    if (!s.ok() && error.ok()) error = s;
    --decoding;
    cv.notify_all();
  }
};

void ToRef(const ChunkKey& k, proto::ChunkRef* ref) {
  ref->set_t(k.frame.t);
  ref->set_c(k.frame.c);
  ref->set_z(k.frame.z);
  ref->set_level(k.level);
  ref->set_cy(k.cy);
  ref->set_cx(k.cx);
}

// A slide's description from the dealer, checked: its plan must parse and validate, and
// the positions and landed map must have one entry per tile and per frame.
Result<SlideView> ViewFromProto(const proto::SlideInfo& p) {
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan plan, PlanFromJson(p.summary().plan_json()));
  if (static_cast<size_t>(p.positions_size()) != 3 * plan.tiles.size() || p.landed().size() != plan.frame_count() ||
      p.level_count() != plan.level_count() || p.depth() < plan.z_planes ||
      p.depth() > uint64_t{kMaxZPlanes} + 2 * static_cast<uint64_t>(kMaxTilePosition)) {
    return Error(StatusCode::kDataLoss,
                 "the dealer described slide {} with {} position values, {} landed entries, {} levels and {} planes "
                 "for a plan of {} tiles, {} frames, {} levels and stacks of {} planes",
                 p.summary().slide_id(), p.positions_size(), p.landed().size(), p.level_count(), p.depth(),
                 plan.tiles.size(), plan.frame_count(), plan.level_count(), plan.z_planes);
  }
  SlideView v;
  v.summary = internal::SummaryFromProto(p.summary());
  v.level_count = p.level_count();
  for (int i = 0; i + 2 < p.positions_size(); i += 3) {
    v.positions.push_back({p.positions(i), p.positions(i + 1), p.positions(i + 2)});
  }
  v.landed.assign(p.landed().begin(), p.landed().end());
  v.live = p.live();
  v.depth = p.depth();
  v.host = p.host();
  return v;
}

}  // namespace

struct Subscription::Impl {
  std::jthread thread;
};
Subscription::Subscription(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Subscription::Subscription(Subscription&&) noexcept = default;
Subscription::~Subscription() = default;

struct Client::Reader {
  // The stack's tile dealers, in the manager's order; each slide is read through the first of
  // its rendezvous order that answers (wire::RankDealers).
  std::vector<std::string> dealer_endpoints;
  std::vector<std::unique_ptr<internal::DealerLink>> links;
  std::vector<std::string> publish;  // each dealer's events, in the same order
  ClientOptions options;
  internal::ThreadPool pool;
  internal::BufferPool decoded_buffers{64};  // chunks the decoded cache let go, reused
  std::unique_ptr<cache::ChunkCache> decoded;      // ClientOptions::decoded_cache_bytes; null: none
  std::mutex views_mu;
  std::map<std::string, std::shared_ptr<const SlideView>> views;  // plans never change
  std::map<std::string, int64_t> described_ms;  // when each view was last asked for (its corrections may change)
  std::mutex local_mu;
  std::map<std::string, std::shared_ptr<LocalFile>> local;  // by slide id; nullptr: not local
  std::map<std::string, int64_t> checked;  // by slide id: when the dealer last let this client read it

  Reader(std::vector<std::string> dealers, std::vector<std::string> publish_eps, ClientOptions o)
      : dealer_endpoints(std::move(dealers)),
        publish(std::move(publish_eps)),
        options(o),
        pool(o.decode_threads > 0 ? static_cast<unsigned>(o.decode_threads) : std::thread::hardware_concurrency()),
        decoded(o.decoded_cache_bytes > 0 ? std::make_unique<cache::ChunkCache>(o.decoded_cache_bytes) : nullptr) {
    // With another dealer to turn to, a silent one is given up on sooner.
    const int timeout_ms = dealer_endpoints.size() > 1 ? std::min(o.timeout_ms, kFailoverMs) : o.timeout_ms;
    for (const auto& d : dealer_endpoints) links.push_back(std::make_unique<internal::DealerLink>(d, timeout_ms));
  }

  // The link to the dealer `slide` is read through: the first of its rendezvous order that is
  // answering (the first of all when none is).
  internal::DealerLink& link(const std::string& slide) {
    const std::vector<size_t> order = wire::RankDealers(slide, dealer_endpoints);
    for (size_t i : order) {
      if (links[i]->Answering()) return *links[i];
    }
    return *links[order.front()];
  }

  // `read` again, on the slide's next dealer, while it fails UNAVAILABLE (a dealer gone silent:
  // its link then says so) and another dealer answers.
  template <typename Read>
  auto Failover(Read read) -> decltype(read()) {
    auto result = read();
    for (size_t tried = 1; tried < links.size() && StatusOf(result).code() == StatusCode::kUnavailable; ++tried) {
      if (std::none_of(links.begin(), links.end(), [](const auto& l) { return l->Answering(); })) break;
      result = read();
    }
    return result;
  }
  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static Status StatusOf(const Result<T>& r) { return r.status(); }

  Result<StoredChunk> Chunk(const std::string& slide, const ChunkKey& key);

  Result<SlideView> Describe(const std::string& id) {
    proto::DealerRequest req;
    req.mutable_slide_info()->set_slide_id(id);
    TESSERA_ASSIGN_OR_RETURN(internal::DealerLink::Reply in, link(id).Call(std::move(req)).get());
    TESSERA_ASSIGN_OR_RETURN(SlideView view, ViewFromProto(in.header.slide_info()));
    std::lock_guard lock(views_mu);
    views[id] = std::make_shared<const SlideView>(view);
    described_ms[id] = wire::NowMs();
    return view;
  }

  // The view for a corrected read: its corrections as the dealer knew them within kRecheckMs
  // (a re-stitch replaces them; the dealer places the tiles itself, so plain reads need no refresh).
  Result<std::shared_ptr<const SlideView>> FreshView(const std::string& id) {
    {
      std::lock_guard lock(views_mu);
      auto it = views.find(id);
      if (it != views.end() && wire::NowMs() - described_ms[id] < kRecheckMs) return it->second;
    }
    TESSERA_RETURN_IF_ERROR(Describe(id).status());
    std::lock_guard lock(views_mu);
    return views[id];
  }

  Result<std::shared_ptr<const SlideView>> View(const std::string& id) {
    {
      std::lock_guard lock(views_mu);
      if (auto it = views.find(id); it != views.end()) return it->second;
    }
    TESSERA_RETURN_IF_ERROR(Describe(id).status());
    std::lock_guard lock(views_mu);
    return views[id];
  }

  // Shapes `out` for channels x z x height x width at `level`; z among `depth` planes of
  // that level (a tile's own, or the mosaic's: stacks placed in z). Its buffer is reused
  // (resized, not made anew) and cleared to 0 unless `covered` (every pixel will be written).
  Status Prepare(const ScanPlan& plan, const std::vector<uint32_t>& channels, uint32_t z_begin,
                 uint32_t z_end, uint32_t level, int64_t height, int64_t width, Array& out, bool covered,
                 uint64_t depth = 0) {
    if (level >= plan.level_count()) {
      return Error(StatusCode::kNotFound, "level {} does not exist: the slide has levels 0..{}", level,
                   plan.level_count() - 1);
    }
    const LevelShape shape = plan.Level(level);
    if (depth == 0) depth = shape.depth;
    out.channels = channels;
    out.x = out.y = 0;
    out.clipped = out.local = false;
    out.missing_chunks = out.chunks_read = 0;
    if (out.channels.empty()) {
      for (uint32_t c = 0; c < plan.channels.size(); ++c) out.channels.push_back(c);
    }
    for (uint32_t c : out.channels) {
      if (c >= plan.channels.size()) {
        return Error(StatusCode::kNotFound, "channel {} does not exist: the slide has {} channels", c,
                     plan.channels.size());
      }
    }
    if (z_end == 0) z_end = static_cast<uint32_t>(depth);
    if (z_begin >= z_end || z_end > depth) {
      return Error(StatusCode::kOutOfRange, "z planes [{}, {}) are outside the slide's 0..{}", z_begin, z_end, depth);
    }
    out.dtype = plan.dtype;
    out.level = level;
    out.z_begin = z_begin;
    out.shape = {static_cast<int64_t>(out.channels.size()), z_end - z_begin, height, width};
    const double scale = static_cast<double>(uint64_t{1} << level);
    out.pixel_size_um = {plan.pixel_size_um[0] * scale, plan.pixel_size_um[1] * scale,
                         plan.pixel_size_um[2] * shape.z_scale()};
    const uint64_t bytes = out.elements() * DtypeSize(plan.dtype);
    if (bytes > options.max_region_bytes) {
      return Error(StatusCode::kResourceExhausted,
                   "the read would be {} bytes, over the client's limit of {}: read it in parts, at a "
                   "coarser level, or raise ClientOptions::max_region_bytes",
                   bytes, options.max_region_bytes);
    }
    const bool fresh = out.data.empty();  // resized from nothing: zeroed already
    out.data.resize(bytes);
    if (!covered && !fresh) std::fill(out.data.begin(), out.data.end(), uint8_t{0});
    return OkStatus();
  }

  // The decoded chunk if the cache holds this very one (decoded from bytes of checksum `xxh64`).
  std::shared_ptr<const std::vector<uint8_t>> Cached(const cache::CacheKey& key, uint64_t xxh64) {
    if (!decoded || xxh64 == 0) return nullptr;
    auto hit = decoded->Get(key);
    return hit && hit->xxh64 == xxh64 ? hit->bytes : nullptr;
  }

  // Decodes one chunk (stored `bytes` of checksum `xxh64`, 0 when the file holds none yet;
  // checked here unless `checked` already, as a local chunk read at its place is) and applies
  // its group's copies to channel ci of `out`; kept in the decoded cache under `key` when there
  // is one and the checksum is known.
  Status Apply(const ScanPlan& plan, uint32_t level, const ChunkCopies& g, const Piece& piece,
               std::span<const uint8_t> bytes, uint64_t xxh64, bool checked, int64_t ci, Array& out,
               const cache::CacheKey& key) {
    if (!checked && xxh64 != 0 && codec::Checksum(bytes) != xxh64) {
      return Error(StatusCode::kDataLoss, "chunk ({}, {}) of level {} of frame t={} c={} z={} failed its checksum",
                   g.cy, g.cx, level, g.tile, out.channels[static_cast<size_t>(ci)], piece.z);
    }
    const LevelShape s = plan.Level(level);
    const size_t elem = DtypeSize(plan.dtype);
    const int64_t width = out.shape[3];
    if (decoded && xxh64 != 0) {
      std::shared_ptr<std::vector<uint8_t>> pixels = decoded_buffers.Get();  // not cleared: decoded over
      pixels->resize(s.chunk_voxels() * elem);
      TESSERA_RETURN_IF_ERROR(codec::Decompress(bytes, *pixels));
      CopyOut(plan, level, g, piece, *pixels, ci, out);
      decoded->Put(key, {std::move(pixels), xxh64});
      return OkStatus();
    }
    // A whole one-plane chunk as wide as the output (a tile read chunk by chunk): decoded in place.
    if (g.copies.size() == 1 && s.chunk_z == 1 && piece.planes == 1) {
      const Copy& c = g.copies[0];
      if (c.sx == 0 && c.sy == 0 && c.w == s.chunk_x && c.h == s.chunk_y && c.dx == 0 && c.w == width) {
        uint8_t* at = out.data.data() + out.index(ci, piece.zi, c.dy, 0) * elem;
        return codec::Decompress(bytes, {at, s.chunk_pixels() * elem});
      }
    }
    thread_local std::vector<uint8_t> chunk;
    chunk.resize(s.chunk_voxels() * elem);
    TESSERA_RETURN_IF_ERROR(codec::Decompress(bytes, chunk));
    CopyOut(plan, level, g, piece, chunk, ci, out);
    return OkStatus();
  }

  // Applies a group's copies from the planes of its decoded chunk to channel ci of `out`.
  static void CopyOut(const ScanPlan& plan, uint32_t level, const ChunkCopies& g, const Piece& piece,
                      std::span<const uint8_t> chunk, int64_t ci, Array& out) {
    const LevelShape s = plan.Level(level);
    const size_t elem = DtypeSize(plan.dtype);
    const int64_t width = out.shape[3];
    for (uint32_t k = 0; k < piece.planes; ++k) {
      uint8_t* plane = out.data.data() + out.index(ci, piece.zi + k, 0, 0) * elem;
      const uint8_t* from = chunk.data() + (piece.from + k) * s.chunk_pixels() * elem;
      for (const Copy& c : g.copies) {
        for (uint32_t r = 0; r < c.h; ++r) {
          std::memcpy(plane + (static_cast<size_t>((c.dy + r) * width + c.dx)) * elem,
                     from + (size_t{c.sy + r} * s.chunk_x + c.sx) * elem, size_t{c.w} * elem);
        }
      }
    }
  }

  // The slide's corrections (common/correct) applied to what `groups`' copies put in `out`
  // (disjoint copies: each pixel once), each copy as the part of its tile it is.
  static void CorrectCopies(const ScanPlan& plan, const correct::SlideCorrections& corrections,
                            const std::vector<ChunkCopies>& groups, Array& out) {
    const LevelShape s = plan.Level(out.level);
    const uint32_t scale = 1u << out.level;
    const size_t elem = DtypeSize(plan.dtype);
    const uint16_t max_value = elem == 1 ? 255 : 65535;
    const int64_t width = out.shape[3];
    std::vector<uint16_t> in, fixed;
    for (int64_t ci = 0; ci < out.shape[0]; ++ci) {
      const correct::ChannelCorrections* cc = corrections.Of(out.channels[static_cast<size_t>(ci)]);
      if (cc == nullptr) continue;
      for (const ChunkCopies& g : groups) {
        // The output's planes the tile has.
        const int64_t z0 = std::max<int64_t>(0, g.first_plane - int64_t{out.z_begin});
        const int64_t z1 = std::min<int64_t>(out.shape[1], g.first_plane + int64_t{s.depth} - out.z_begin);
        for (int64_t zi = z0; zi < z1; ++zi) {
          uint8_t* plane = out.data.data() + out.index(ci, zi, 0, 0) * elem;
          for (const Copy& c : g.copies) {
            in.resize(size_t{c.w} * c.h);
            fixed.resize(in.size());
            for (uint32_t r = 0; r < c.h; ++r) {
              for (uint32_t k = 0; k < c.w; ++k) {
                const size_t at = (static_cast<size_t>(c.dy + r) * width + c.dx + k) * elem;
                uint16_t v = plane[at];
                if (elem == 2) std::memcpy(&v, plane + at, 2);
                in[size_t{r} * c.w + k] = v;
              }
            }
            const int64_t tx = (int64_t{g.cx} * s.chunk_x + c.sx) * scale, ty = (int64_t{g.cy} * s.chunk_y + c.sy) * scale;
            correct::CorrectWindow(*cc, g.tile, {in.data(), c.w, c.h, 0}, tx, ty, scale, fixed, max_value);
            for (uint32_t r = 0; r < c.h; ++r) {
              for (uint32_t k = 0; k < c.w; ++k) {
                const size_t at = (static_cast<size_t>(c.dy + r) * width + c.dx + k) * elem;
                const uint16_t v = fixed[size_t{r} * c.w + k];
                if (elem == 1) {
                  plane[at] = static_cast<uint8_t>(v);
                } else {
                  std::memcpy(plane + at, &v, 2);
                }
              }
            }
          }
        }
      }
    }
  }

  // Clears a missing chunk's copies in channel ci of `out` (when it was not cleared first).
  static void ZeroOut(const ScanPlan& plan, const ChunkCopies& g, const Piece& piece, int64_t ci, Array& out) {
    const size_t elem = DtypeSize(plan.dtype);
    const int64_t width = out.shape[3];
    for (uint32_t k = 0; k < piece.planes; ++k) {
      uint8_t* plane = out.data.data() + out.index(ci, piece.zi + k, 0, 0) * elem;
      for (const Copy& c : g.copies) {
        for (uint32_t r = 0; r < c.h; ++r) {
          std::memset(plane + (static_cast<size_t>((c.dy + r) * width + c.dx)) * elem, 0, size_t{c.w} * elem);
        }
      }
    }
  }

  // The stored chunks under `out`'s planes: for each group, the chunks of its tile's planes
  // (a chunk of several planes asked for once), in the order of the output's planes.
  static std::vector<Piece> PiecesOf(const ScanPlan& plan, const std::vector<ChunkCopies>& groups, const Array& out) {
    const LevelShape s = plan.Level(out.level);
    std::vector<Piece> pieces;
    for (size_t i = 0; i < groups.size(); ++i) {
      // The tile's planes under the output's: [z0, z1) of its own.
      const int64_t z0 = std::max<int64_t>(0, int64_t{out.z_begin} - groups[i].first_plane);
      const int64_t z1 = std::min<int64_t>(s.depth, int64_t{out.z_begin} + out.shape[1] - groups[i].first_plane);
      for (int64_t z = z0; z < z1;) {
        const auto first = static_cast<uint32_t>(z - z % s.chunk_z);
        const auto end = std::min<int64_t>(z1, first + s.chunk_z);
        pieces.push_back({i, first, static_cast<uint32_t>(z - first), static_cast<uint32_t>(end - z),
                          z + groups[i].first_plane - out.z_begin});
        z = end;
      }
    }
    std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.zi < b.zi; });
    return pieces;
  }

  // Applies piece k of channel ci of `slide` (its chunk `bytes`, which `keep` holds) on the
  // pool; the caller counted it in job.decoding, which this gives back.
  void Decode(ReadJob& job, const std::string& slide, const ScanPlan& plan, const std::vector<ChunkCopies>& groups,
              Array& out, const std::shared_ptr<const std::vector<Piece>>& pieces, size_t k, int64_t ci,
              std::span<const uint8_t> bytes, uint64_t xxh64, std::shared_ptr<const void> keep) {
    pool.Submit([this, &job, &slide, &plan, &groups, &out, pieces, k, ci, bytes, xxh64, keep = std::move(keep)] {
      const Piece& piece = (*pieces)[k];
      const ChunkCopies& g = groups[piece.group];
      const cache::CacheKey key{slide, {{g.tile, out.channels[static_cast<size_t>(ci)], piece.z}, out.level, g.cy, g.cx}};
      Status ds;
      if (auto hit = Cached(key, xxh64)) {
        CopyOut(plan, out.level, g, piece, *hit, ci, out);
      } else {
        ds = Apply(plan, out.level, g, piece, bytes, xxh64, /*checked=*/false, ci, out, key);
      }
      job.Decoded(ds);
    });
  }

  // The slide's file when this process may read it itself: on the dealer's host (the same
  // wire::HostId), readable, and holding the plan the dealer described. nullptr otherwise
  // (asked once per slide): its chunks come through the dealer.
  std::shared_ptr<LocalFile> Local(const std::string& id, const SlideView& view) {
    if (!options.local_files || view.host.empty() || view.host != wire::HostId()) return nullptr;
    const std::string& path = view.summary.path;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return nullptr;
    std::lock_guard lock(local_mu);
    if (auto it = local.find(id); it != local.end() && (!it->second || it->second->Current(st))) {
      return it->second;
    }
    local.erase(id);  // this client's hold on a file that changed since: opened anew below
    std::shared_ptr<LocalFile> lf;
    std::lock_guard files(open_files_mu);
    if (auto it = open_files.find(path); it != open_files.end()) {
      lf = it->second.lock();
      if (lf && !lf->Current(st)) lf.reset();
    }
    if (!lf && ::access(path.c_str(), R_OK) == 0) {
      std::lock_guard hdf5(storage::Hdf5Mutex());
      auto file = storage::SlideFile::OpenForRead(path);
      if (file.ok()) {
        lf = std::make_shared<LocalFile>();
        lf->file = std::move(*file);
        lf->inode = st.st_ino;
        lf->mtime_ns = LocalFile::MtimeNs(st);
        lf->size = st.st_size;
        std::erase_if(open_files, [](const auto& entry) { return entry.second.expired(); });
        open_files[path] = lf;
      } else {
        spdlog::debug("slide={} file={} read through the dealer: {}", id, path, file.status().ToString());
      }
    }
    const ScanPlan& plan = view.summary.plan;
    if (lf && (lf->file->plan().frame_count() != plan.frame_count() ||
               lf->file->plan().level_count() != plan.level_count() ||
               lf->file->plan().chunk_bytes() != plan.chunk_bytes())) {
      spdlog::debug("slide={} file={} read through the dealer: its plan differs from the dealer's", id, path);
      lf.reset();
    }
    local[id] = lf;
    checked[id] = wire::NowMs();  // the dealer described the slide to this client just now
    return lf;
  }

  // A local chunk's stored bytes and their checksum: at its recorded place in the mapped file,
  // without HDF5's lock or a copy (`checked` there), else through HDF5 into `buf` (the stored
  // checksum, for Apply to check; 0 if the file holds none yet).
  static Result<std::span<const uint8_t>> Fetch(const LocalFile& lf, const ChunkKey& key,
                                                const storage::SlideFile::ChunkPlace& place,
                                                std::vector<uint8_t>& buf, uint64_t& sum, bool& checked) {
    if (place.size > 0) {
      auto at = lf.file->ReadPlace(place);
      if (at.ok()) {
        sum = place.checksum;
        checked = true;
        return at;
      }
      spdlog::debug("file={} {}: read through HDF5", lf.file->path(), at.status().ToString());
    }
    checked = false;
    std::lock_guard hdf5(storage::Hdf5Mutex());
    TESSERA_RETURN_IF_ERROR(lf.file->ReadChunk(key, buf));
    sum = lf.file->StoredChecksum(key);
    return std::span<const uint8_t>(buf);
  }

  // Piece p of channel ci from a local file: decoded from the cache when it holds this very
  // chunk (its place's checksum), else fetched and decoded.
  Status ApplyLocal(const LocalFile& lf, const std::string& slide, const ScanPlan& plan, const ChunkCopies& g,
                    const Piece& p, const ChunkKey& key, const storage::SlideFile::ChunkPlace& place, int64_t ci,
                    Array& out) {
    const cache::CacheKey ck{slide, key};
    if (auto hit = Cached(ck, place.checksum)) {
      CopyOut(plan, out.level, g, p, *hit, ci, out);
      return OkStatus();
    }
    thread_local std::vector<uint8_t> buf;  // a chunk read through HDF5
    uint64_t sum = 0;
    bool checked = false;
    TESSERA_ASSIGN_OR_RETURN(const std::span<const uint8_t> chunk, Fetch(lf, key, place, buf, sum, checked));
    return Apply(plan, out.level, g, p, chunk, sum, checked, ci, out, ck);
  }

  // Reads the chunks of `groups` for every channel and plane of `out` from a local file, and
  // composes them: every chunk's place looked up first (one hold of HDF5's lock; a live file
  // refreshed once when a chunk is missing), then the chunks read and decoded by this thread
  // and the pool's, each taking the next (a chunk whose place the file records needs no HDF5
  // lock; the one chunk of a viewer's tile on this thread alone).
  Status ComposeLocal(const std::shared_ptr<const LocalFile>& lf, const std::string& slide, const ScanPlan& plan,
                      const std::vector<ChunkCopies>& groups, Array& out, ReadJob& job) {
    const std::vector<Piece> pieces = PiecesOf(plan, groups, out);
    struct Item {
      int64_t ci;
      size_t k;
      ChunkKey key;
      storage::SlideFile::ChunkPlace place;
    };
    std::vector<Item> items;
    items.reserve(pieces.size() * static_cast<size_t>(out.shape[0]));
    {
      bool refreshed = false;
      std::lock_guard hdf5(storage::Hdf5Mutex());
      for (int64_t ci = 0; ci < out.shape[0]; ++ci) {
        for (size_t k = 0; k < pieces.size(); ++k) {
          const Piece& p = pieces[k];
          const ChunkKey key{{groups[p.group].tile, out.channels[static_cast<size_t>(ci)], p.z}, out.level,
                             groups[p.group].cy, groups[p.group].cx};
          Result<storage::SlideFile::ChunkPlace> place = lf->file->Place(key);
          // Not there yet: what the writer synced since the last look (once per read, so that
          // a frame a landed event announced is read, whenever the event came).
          if (place.status().code() == StatusCode::kNotFound && lf->file->live() && !refreshed) {
            refreshed = true;
            if (Status r = lf->file->Refresh(); r.ok()) place = lf->file->Place(key);
          }
          if (place.status().code() == StatusCode::kNotFound) {  // not landed yet: 0
            ++job.missing;
            if (job.zero_missing) ZeroOut(plan, groups[p.group], p, ci, out);
            continue;
          }
          if (!place.ok()) return place.status();
          items.push_back({ci, k, key, *place});
        }
      }
    }
    job.decoded += items.size();
    out.local = true;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    auto work = [&] {
      for (size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < items.size();) {
        const Item& it = items[i];
        const Piece& p = pieces[it.k];
        if (Status ds = ApplyLocal(*lf, slide, plan, groups[p.group], p, it.key, it.place, it.ci, out); !ds.ok()) {
          failed = true;
          job.Fail(ds);
        }
      }
    };
    // Helpers from the pool for a read of several chunks; each counted in job.decoding, and
    // waited for below (they refer to this frame's locals).
    const size_t helpers = std::min<size_t>(pool.size() > 1 ? pool.size() - 1 : 1, items.size() > 1 ? items.size() - 1 : 0);
    {
      std::lock_guard lock(job.mu);
      job.decoding += static_cast<int>(helpers);
    }
    for (size_t h = 0; h < helpers; ++h) {
      pool.Submit([&] {
        work();
        job.Decoded(OkStatus());
      });
    }
    work();
    std::unique_lock lock(job.mu);
    job.cv.wait(lock, [&] { return job.decoding == 0; });
    return job.error;
  }

  // Fetches the chunks of `groups` for every channel and plane of `out`, and composes them:
  // from the slide's file when it is local, else through the dealer. Returns only once no
  // reply or decode in flight refers to `groups`, `out` or `job`.
  Status Compose(const std::string& slide, const SlideView& view, const std::vector<ChunkCopies>& groups,
                 Array& out, ReadJob& job) {
    const ScanPlan& plan = view.summary.plan;
    if (auto lf = Local(slide, view)) {
      // The dealer still decides who may read: a credential revoked since is refused here
      // within kRecheckMs, as it would be on the dealer's socket (regions ask it per read).
      bool due = false;
      {
        std::lock_guard lock(local_mu);
        due = wire::NowMs() - checked[slide] >= kRecheckMs;
      }
      if (due) {
        proto::DealerRequest req;
        req.mutable_slide_info()->set_slide_id(slide);
        TESSERA_RETURN_IF_ERROR(link(slide).Call(std::move(req)).get().status());
        std::lock_guard lock(local_mu);
        checked[slide] = wire::NowMs();
      }
      return ComposeLocal(lf, slide, plan, groups, out, job);
    }
    const auto pieces = std::make_shared<const std::vector<Piece>>(PiecesOf(plan, groups, out));
    for (int64_t ci = 0; ci < out.shape[0]; ++ci) {
      for (size_t first = 0; first < pieces->size(); first += kChunksPerRequest) {
        const size_t end = std::min(pieces->size(), first + kChunksPerRequest);
        proto::DealerRequest req;
        auto* rc = req.mutable_read_chunks();
        rc->set_slide_id(slide);
        for (size_t k = first; k < end; ++k) {
          const Piece& p = (*pieces)[k];
          const FrameKey frame{groups[p.group].tile, out.channels[static_cast<size_t>(ci)], p.z};
          ToRef({frame, out.level, groups[p.group].cy, groups[p.group].cx}, rc->add_chunks());
        }
        {
          std::unique_lock lock(job.mu);
          job.cv.wait(lock, [&] { return job.in_flight < kWindow || !job.error.ok(); });
          if (!job.error.ok()) break;  // stop asking; what is in flight still refers to us
          ++job.in_flight;
        }
        link(slide).Send(std::move(req), [this, &job, &slide, &groups, &plan, &out, pieces, first, end, ci](Result<internal::DealerLink::Reply> r) {
          OnChunks(std::move(r), job, slide, groups, plan, out, pieces, first, end, ci);
        });
      }
    }
    std::unique_lock lock(job.mu);
    job.cv.wait(lock, [&] { return job.in_flight == 0 && job.decoding == 0; });
    return job.error;
  }

  // The reply to pieces [first, end) of channel ci, in order.
  void OnChunks(Result<internal::DealerLink::Reply> r, ReadJob& job, const std::string& slide,
                const std::vector<ChunkCopies>& groups,
                const ScanPlan& plan, Array& out, const std::shared_ptr<const std::vector<Piece>>& pieces,
                size_t first, size_t end, int64_t ci) {
    Status s = r.status();
    const size_t count = end - first;
    if (s.ok() && static_cast<size_t>(r->header.chunks().results_size()) != count) {
      s = Error(StatusCode::kInternal, "the dealer answered {} chunks for {}", r->header.chunks().results_size(), count);
    }
    std::lock_guard lock(job.mu);
    --job.in_flight;
    if (!s.ok()) {
      if (job.error.ok()) job.error = s;
      job.cv.notify_all();
      return;
    }
    const proto::DealerReply& reply = r->header;
    auto message = std::make_shared<wire::Message>(std::move(r->message));
    size_t payload = 0;
    for (size_t k = 0; k < count; ++k) {
      const auto& result = reply.chunks().results(static_cast<int>(k));
      Status cs = wire::FromProto(result.status());
      if (cs.code() == StatusCode::kNotFound) {  // not landed yet: 0
        ++job.missing;
        if (job.zero_missing) {
          const Piece& piece = (*pieces)[first + k];
          ZeroOut(plan, groups[piece.group], piece, ci, out);
        }
        continue;
      }
      if (!cs.ok()) {
        if (job.error.ok()) job.error = cs;
        continue;
      }
      if (payload >= message->payload.size()) {
        if (job.error.ok()) job.error = Error(StatusCode::kInternal, "the dealer's reply lacks chunk payloads");
        break;
      }
      const size_t p = payload++;
      ++job.decoding;
      ++job.decoded;
      Decode(job, slide, plan, groups, out, pieces, first + k, ci, wire::Bytes(message->payload[p]), result.xxh64(),
             message);
    }
    job.cv.notify_all();
  }

  Status Region(const RegionRequest& req, Array& out) {
    TESSERA_ASSIGN_OR_RETURN(auto view, req.corrected ? FreshView(req.slide) : View(req.slide));
    const ScanPlan& plan = view->summary.plan;
    if (req.width <= 0 || req.height <= 0) {
      return Error(StatusCode::kInvalidArgument, "region {}x{} is empty", req.width, req.height);
    }
    uint64_t cursor = 0;
    bool first = true;
    ReadJob job;
    do {
      proto::DealerRequest dr;
      auto* pr = dr.mutable_plan_region();
      pr->set_slide_id(req.slide);
      pr->set_level(req.level);
      pr->mutable_box()->set_x(req.x);
      pr->mutable_box()->set_y(req.y);
      pr->mutable_box()->set_w(req.width);
      pr->mutable_box()->set_h(req.height);
      pr->set_cursor(cursor);
      TESSERA_ASSIGN_OR_RETURN(internal::DealerLink::Reply in, link(req.slide).Call(std::move(dr)).get());
      const proto::RegionPlan& rp = in.header.region();
      TESSERA_RETURN_IF_ERROR(CheckPlan(plan, req, rp));
      if (!first && (rp.box().x() != out.x || rp.box().y() != out.y || rp.box().w() != out.shape[3] ||
                     rp.box().h() != out.shape[2])) {
        return Error(StatusCode::kDataLoss, "the dealer's region plan changed its box between pages");
      }
      if (first) {
        // z as x and y: a box reaching past the mosaic's planes is clipped to them.
        const bool deeper = req.z_end > rp.depth() && req.z_begin < rp.depth();
        // A plane whose one page of copies (disjoint, mosaic::PlanRegion) covers the whole box
        // needs no clearing first (a tile's box inside the mosaic, as a viewer asks).
        uint64_t area = 0;
        for (int i = 0; i < rp.w_size(); ++i) area += uint64_t{rp.w(i)} * rp.h(i);
        const bool covered = rp.next_cursor() == 0 && rp.depth() == 1 && rp.box().w() > 0 &&
                             area == static_cast<uint64_t>(rp.box().w()) * static_cast<uint64_t>(rp.box().h());
        job.zero_missing = covered;
        TESSERA_RETURN_IF_ERROR(Prepare(plan, req.channels, req.z_begin,
                                        deeper ? static_cast<uint32_t>(rp.depth()) : req.z_end, req.level,
                                        rp.box().h(), rp.box().w(), out, covered, rp.depth()));
        out.x = rp.box().x();
        out.y = rp.box().y();
        out.clipped = rp.clipped() || deeper;
        first = false;
      }
      std::vector<ChunkCopies> groups;
      for (int i = 0; i < rp.tile_size(); ++i) {
        if (groups.empty() || groups.back().tile != rp.tile(i) || groups.back().cy != rp.cy(i) ||
            groups.back().cx != rp.cx(i)) {
          groups.push_back({rp.tile(i), rp.cy(i), rp.cx(i), {}, rp.first_plane(i)});
        }
        groups.back().copies.push_back({rp.sx(i), rp.sy(i), rp.w(i), rp.h(i), rp.dx(i), rp.dy(i)});
      }
      TESSERA_RETURN_IF_ERROR(Compose(req.slide, *view, groups, out, job));
      if (req.corrected) CorrectCopies(plan, view->summary.corrections, groups, out);
      cursor = rp.next_cursor();
    } while (cursor != 0);
    out.missing_chunks = job.missing;
    out.chunks_read = job.decoded;
    return OkStatus();
  }

  Status Tile(const TileRequest& req, Array& out) {
    TESSERA_ASSIGN_OR_RETURN(auto view, req.corrected ? FreshView(req.slide) : View(req.slide));
    const ScanPlan& plan = view->summary.plan;
    if (req.tile >= plan.tiles.size()) {
      return Error(StatusCode::kNotFound, "tile {} does not exist: slide {} has tiles 0..{}", req.tile, req.slide,
                   plan.tiles.size() - 1);
    }
    const LevelShape s = plan.Level(req.level);
    const bool whole = req.width == 0 && req.height == 0;
    if (!whole && req.level < plan.level_count() &&  // Prepare refuses a level the slide does not have
        (req.x < 0 || req.y < 0 || req.width <= 0 || req.height <= 0 || req.x + req.width > s.width ||
         req.y + req.height > s.height)) {
      return Error(StatusCode::kOutOfRange, "window {}x{} at ({}, {}) is not inside tile {}'s {}x{} pixels at level {}",
                   req.width, req.height, req.x, req.y, req.tile, s.width, s.height, req.level);
    }
    const int64_t x0 = whole ? 0 : req.x, y0 = whole ? 0 : req.y;
    const int64_t w = whole ? s.width : req.width, h = whole ? s.height : req.height;
    // The window's chunks cover it, and a read missing one fails: nothing to clear first.
    TESSERA_RETURN_IF_ERROR(Prepare(plan, req.channels, req.z_begin, req.z_end, req.level, h, w, out, /*covered=*/true));
    out.x = x0;
    out.y = y0;
    std::vector<ChunkCopies> groups;
    const int64_t ch = s.chunk_y, cw = s.chunk_x;
    for (int64_t cy = y0 / ch; cy * ch < y0 + h; ++cy) {
      for (int64_t cx = x0 / cw; cx * cw < x0 + w; ++cx) {
        const int64_t bx = std::max(x0, cx * cw), by = std::max(y0, cy * ch);
        const int64_t ex = std::min(x0 + w, (cx + 1) * cw), ey = std::min(y0 + h, (cy + 1) * ch);
        groups.push_back({req.tile, static_cast<uint32_t>(cy), static_cast<uint32_t>(cx),
                          {{static_cast<uint32_t>(bx - cx * cw), static_cast<uint32_t>(by - cy * ch),
                            static_cast<uint32_t>(ex - bx), static_cast<uint32_t>(ey - by), bx - x0, by - y0}}});
      }
    }
    ReadJob job;
    TESSERA_RETURN_IF_ERROR(Compose(req.slide, *view, groups, out, job));
    if (req.corrected) CorrectCopies(plan, view->summary.corrections, groups, out);
    if (job.missing > 0) {
      return Error(StatusCode::kNotFound, "tile {} of slide {} is not stored yet at level {}", req.tile, req.slide,
                   req.level);
    }
    out.chunks_read = job.decoded;
    return OkStatus();
  }
};

Client::Client(std::string server, int timeout_ms)
    : Client(std::move(server), ClientOptions{.timeout_ms = timeout_ms}) {}
Client::Client(std::string server, ClientOptions options)
    : server_(server.empty() ? DefaultServer() : std::move(server)),
      options_(options),
      credential_(internal::LoadEnvCredential()),
      reader_mu_(std::make_unique<std::mutex>()) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;

Result<Client::Reader*> Client::reader() {
  std::lock_guard lock(*reader_mu_);
  if (reader_) return reader_.get();
  TESSERA_ASSIGN_OR_RETURN(auto eps, Endpoints());
  // One dealer, or several ("tcp://a:7401,tcp://b:7401", their events endpoints in the same order).
  const std::vector<std::string> dealers = wire::SplitEndpoints(eps["dealer"]);
  if (dealers.empty()) {
    return Error(StatusCode::kUnavailable,
                 "the stack at {} has no tile dealer: `tessera up` runs one, or start `tessera serve "
                 "dealer --manager {}`",
                 server_, server_);
  }
  reader_ = std::make_unique<Reader>(dealers, wire::SplitEndpoints(eps["dealer_publish"]), options_);
  return reader_.get();
}

Result<std::vector<DealerStats>> Client::DealersStats() {
  TESSERA_ASSIGN_OR_RETURN(Reader * r, reader());
  std::vector<std::future<Result<internal::DealerLink::Reply>>> replies;
  for (auto& link : r->links) {
    proto::DealerRequest req;
    req.mutable_stats();
    replies.push_back(link->Call(std::move(req)));
  }
  std::vector<DealerStats> out;
  for (size_t i = 0; i < replies.size(); ++i) {
    DealerStats d{.endpoint = r->dealer_endpoints[i]};
    if (auto in = replies[i].get(); in.ok() && in->header.has_stats()) {
      const proto::DealerStats& st = in->header.stats();
      d.answered = true;
      d.cache_bytes = st.cache_bytes();
      d.cache_capacity = st.cache_capacity();
      d.cache_hits = st.cache_hits();
      d.cache_misses = st.cache_misses();
      d.requests = st.requests();
      d.read_latency_counts.assign(st.read_latency_counts().begin(), st.read_latency_counts().end());
      d.read_latency_sum_ms = st.read_latency_sum_ms();
    }
    out.push_back(std::move(d));
  }
  return out;
}

Result<SlideView> Client::Describe(const std::string& id) {
  TESSERA_ASSIGN_OR_RETURN(Reader * r, reader());
  return r->Failover([&] { return r->Describe(id); });
}

Result<Array> Client::ReadRegion(const RegionRequest& request) {
  Array out;
  TESSERA_RETURN_IF_ERROR(ReadRegion(request, out));
  return out;
}

Status Client::ReadRegion(const RegionRequest& request, Array& out) {
  TESSERA_ASSIGN_OR_RETURN(Reader * r, reader());
  return r->Failover([&] { return r->Region(request, out); });
}

std::future<Result<Array>> Client::ReadRegionAsync(RegionRequest request) {
  return std::async(std::launch::async, [this, request = std::move(request)] { return ReadRegion(request); });
}

Result<Array> Client::ReadTile(const TileRequest& request) {
  Array out;
  TESSERA_RETURN_IF_ERROR(ReadTile(request, out));
  return out;
}

Status Client::ReadTile(const TileRequest& request, Array& out) {
  TESSERA_ASSIGN_OR_RETURN(Reader * r, reader());
  return r->Failover([&] { return r->Tile(request, out); });
}

std::future<Result<Array>> Client::ReadTileAsync(TileRequest request) {
  return std::async(std::launch::async, [this, request = std::move(request)] { return ReadTile(request); });
}

Result<StoredChunk> Client::ReadChunk(const std::string& slide, const ChunkKey& key) {
  TESSERA_ASSIGN_OR_RETURN(Reader * r, reader());
  return r->Failover([&]() -> Result<StoredChunk> { return r->Chunk(slide, key); });
}

Result<StoredChunk> Client::Reader::Chunk(const std::string& slide, const ChunkKey& key) {
  proto::DealerRequest req;
  auto* rc = req.mutable_read_chunks();
  rc->set_slide_id(slide);
  ToRef(key, rc->add_chunks());
  TESSERA_ASSIGN_OR_RETURN(internal::DealerLink::Reply in, link(slide).Call(std::move(req)).get());
  const proto::DealerReply& reply = in.header;
  if (reply.chunks().results_size() != 1) return Error(StatusCode::kInternal, "the dealer answered no chunk");
  TESSERA_RETURN_IF_ERROR(wire::FromProto(reply.chunks().results(0).status()));
  if (in.message.payload.size() != 1) return Error(StatusCode::kInternal, "the dealer's reply lacks the chunk");
  auto message = std::make_shared<wire::Message>(std::move(in.message));
  StoredChunk chunk{wire::Bytes(message->payload[0]), reply.chunks().results(0).xxh64(), message};
  if (codec::Checksum(chunk.bytes) != chunk.xxh64) {
    return Error(StatusCode::kDataLoss, "chunk failed its checksum on arrival");
  }
  return chunk;
}

Result<Subscription> Client::Subscribe(const std::string& slide, std::function<void(const LandedEvent&)> on_event) {
  TESSERA_ASSIGN_OR_RETURN(Reader * r, reader());
  if (r->publish.empty()) return Error(StatusCode::kUnavailable, "the tile dealer publishes no events");
  // Every dealer republishes every writer's events: subscribed to all of them, the viewer hears
  // on while any one is up, and each event is passed on once (the copies are byte for byte the
  // same; the last 64 seen are remembered).
  auto socket = std::make_shared<zmq::socket_t>(wire::MakeSocket(zmq::socket_type::sub));
  socket->set(zmq::sockopt::subscribe, slide);
  for (const auto& publish : r->publish) TESSERA_RETURN_IF_ERROR(wire::Connect(*socket, publish));
  const bool several = r->publish.size() > 1;
  auto impl = std::make_unique<Subscription::Impl>();
  impl->thread = std::jthread([socket, slide, several, on_event = std::move(on_event)](std::stop_token stop) {
    std::deque<uint64_t> seen;
    while (!stop.stop_requested()) {
      auto in = wire::Receive(*socket, 100);
      if (!in || in->payload.size() != 1 || in->header.to_string() != slide) continue;
      if (several) {
        const uint64_t sum = codec::Checksum({static_cast<const uint8_t*>(in->payload[0].data()), in->payload[0].size()});
        if (std::find(seen.begin(), seen.end(), sum) != seen.end()) continue;
        seen.push_back(sum);
        if (seen.size() > 64) seen.pop_front();
      }
      proto::SlideEvent e;
      if (!e.ParseFromArray(in->payload[0].data(), static_cast<int>(in->payload[0].size()))) continue;
      on_event({e.slide_id(), {e.landed().begin(), e.landed().end()}, {e.levels().begin(), e.levels().end()}, e.closed()});
    }
  });
  return Subscription(std::move(impl));
}

}  // namespace tessera
