#include "server/gateway/gateway.h"

#include "common/status/checked.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "client/client.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/pyramid/pyramid.h"
#include "common/wire/listener.h"
#include "server/gateway/iiif.h"
#include "server/gateway/render.h"
#include "server/gateway/url.h"
#include "server/gateway/zarr.h"
#include "server/stitcher/stitcher.h"
#include "common/codec/codec.h"
#include "common/imageio/tiff.h"

namespace tessera::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Clock = std::chrono::steady_clock;

constexpr auto kGeometryTtl = std::chrono::seconds(2);  // positions change when a slide is stitched
constexpr auto kEventsHeartbeat = std::chrono::seconds(15);
constexpr size_t kMaxQueuedEventBytes = 1 << 20;
constexpr int kIiifTile = 512;  // the tile edge info.json offers: the slides' chunk edge
constexpr size_t kKeptRegionBytes = size_t{8} << 20;  // a worker keeps its IIIF region buffer up to this

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::string location;  // a redirect's target
  bool cacheable = false;
  std::string filename;  // a download's name
  std::string set_cookie;
  std::string etag;  // quoted; empty: the body's xxHash64
};

using Query = std::map<std::string, std::string>;

constexpr std::string_view kTokenCookie = "tessera_token";

http::status HttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange: return http::status::bad_request;
    case StatusCode::kNotFound: return http::status::not_found;
    case StatusCode::kResourceExhausted: return http::status::payload_too_large;
    case StatusCode::kUnimplemented: return http::status::not_implemented;
    case StatusCode::kUnavailable: return http::status::service_unavailable;
    case StatusCode::kDeadlineExceeded: return http::status::gateway_timeout;
    // From the stack: the gateway's own credential was refused, which no browser can mend
    // (a 401 would ask it for a token). The gateway's own 401s are made in Authenticate.
    case StatusCode::kUnauthenticated: return http::status::service_unavailable;
    case StatusCode::kPermissionDenied: return http::status::forbidden;
    case StatusCode::kFailedPrecondition: return http::status::conflict;
    default: return http::status::internal_server_error;
  }
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Reply ErrorReply(const Status& s) {
  return {HttpStatus(s.code()), "application/json",
          fmt::format("{{\"error\": \"{}\", \"message\": {}}}\n", StatusCodeName(s.code()), JsonString(s.message())),
          {}, false};
}

std::string_view ContentType(const std::filesystem::path& p) {
  static const std::map<std::string, std::string_view> types = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".png", "image/png"},
      {".svg", "image/svg+xml"},             {".json", "application/json"},
      {".map", "application/json"},          {".ico", "image/x-icon"}};
  auto it = types.find(p.extension().string());
  return it == types.end() ? std::string_view("application/octet-stream") : it->second;
}

// What the gateway keeps of a slide between requests: its extent and default rendering.
struct SlideGeometry {
  ScanPlan plan;
  std::string state;
  int64_t width = 0, height = 0;  // the mosaic at level 0
  int64_t depth = 1;              // its planes: stacks placed at their z (the dealer's)
  uint32_t levels = 1;
  std::vector<std::array<double, 3>> positions;  // each field's, level-0 pixels
  std::vector<std::array<uint64_t, 2>> extents;  // each level's width and height, as the dealer places tiles
  bool live = false;
  std::vector<ChannelStyle> styles;
  Clock::time_point fetched;
  /// Planes at `level` (a volume view's levels halve z where its voxel allows), and the
  /// level's plane under level-0 plane z.
  int64_t DepthAt(uint32_t level) const { return static_cast<int64_t>(plan.Level(level).DepthOf(static_cast<uint64_t>(depth))); }
  uint32_t PlaneAt(uint32_t level, uint32_t z) const { return z >> plan.Level(level).z_shift; }
};

// Whether `root` holds the viewer page; and what to do when it does not.
bool HasPage(const std::string& root) {
  std::error_code ec;
  return !root.empty() && std::filesystem::exists(std::filesystem::path(root) / "index.html", ec);
}
std::string NoPageReason(const std::string& root) {
  return fmt::format("this gateway serves no viewer page ({}): give --web FOLDER (web/ of the source tree, with "
                     "web/vendor built by scripts/install-deps), or run an installed tessera (cmake --install, the "
                     "Debian package), which finds PREFIX/share/tessera/web itself",
                     root.empty() ? "no --web folder" : "no index.html in " + root);
}
std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

// ---- the request handler: routes, reads pixels, renders (on the worker pool)

class Handler {
 public:
  Handler(const GatewayOptions& o, std::shared_ptr<spdlog::logger> log)
      : options_(o),
        client_(o.manager, ClientOptions{.decoded_cache_bytes = o.decoded_cache_bytes}),
        log_(std::move(log)) {}

  Client& client() { return client_; }

  /// True for the event stream, which the session serves itself.
  static std::optional<std::string> EventsSlide(std::string_view path) {
    const auto parts = Split(path, '/');  // "", "api", "slides", id, "events"
    if (parts.size() == 5 && parts[1] == "api" && parts[2] == "slides" && parts[4] == "events") {
      return std::string(parts[3]);
    }
    return std::nullopt;
  }

  Reply Handle(std::string_view target) {
    const auto start = std::chrono::steady_clock::now();
    std::string_view route = "static";
    Reply reply = Route(target, route);
    Account(route, reply.status, start);
    return reply;
  }

 private:
  Reply Route(std::string_view target, std::string_view& route) {
    const size_t q = target.find('?');
    auto path = PercentDecode(target.substr(0, q));
    if (!path.ok()) return ErrorReply(path.status());
    auto query = ParseQuery(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    if (!query.ok()) return ErrorReply(query.status());
    const auto parts = Split(*path, '/');
    if (parts.size() >= 2) {
      for (std::string_view r : {"api", "iiif", "precomputed", "zarr", "zarr3", "metrics"}) {
        if (parts[1] == r) route = r;
      }
    }
    Result<Reply> reply = Error(StatusCode::kNotFound, "no such path");
    if (parts.size() == 2 && parts[1] == "metrics") reply = Metrics();
    else if (parts.size() >= 2 && parts[1] == "api") reply = Api(parts, *query);
    else if (parts.size() >= 4 && parts[1] == "iiif" && parts[2] == "3") reply = Iiif(parts, *query);
    else if (parts.size() >= 4 && parts[1] == "precomputed") reply = Precomputed(parts);
    else if (parts.size() >= 3 && (parts[1] == "zarr" || parts[1] == "zarr3")) {
      reply = Zarr(parts, parts[1] == "zarr" ? zarr::Version::kV2 : zarr::Version::kV3);
    }
    else reply = Static(*path);
    return reply.ok() ? std::move(*reply) : ErrorReply(reply.status());
  }

  // Counts a request of `route` answered with `status` and times it.
  void Account(std::string_view route, http::status status, std::chrono::steady_clock::time_point start) {
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::lock_guard lock(accounts_mu_);
    auto& a = accounts_[std::string(route)];
    a.latency.Observe(ms);
    ++a.by_code[static_cast<int>(status)];
  }

  // /metrics: the whole stack in Prometheus's text format (docs/operating.md, "Metrics"). Each
  // part that does not answer is left out and its `_up` says so; the reply is always 200.
  Result<Reply> Metrics() {
    metrics::Exposition e;
    e.Gauge("tessera_build_info", "The gateway's version", {{"version", "0.1.0"}}, 1);
    auto slides = client_.List();
    e.Gauge("tessera_manager_up", "Whether the slide manager answered", {}, slides.ok() ? 1 : 0);
    if (slides.ok()) {
      std::map<std::string, int> by_state{{"acquiring", 0}, {"acquired", 0}, {"failed", 0}};
      uint64_t frames = 0, bytes = 0;
      for (const auto& sl : *slides) {
        ++by_state[sl.state];
        frames += sl.frames_written;
        bytes += sl.bytes_stored;
        if (sl.state != "acquiring") continue;  // per-slide series only while a slide takes frames
        const metrics::Labels l{{"slide", sl.id}};
        e.Counter("tessera_slide_frames_written_total", "Durable frames of a slide being acquired", l,
                  static_cast<double>(sl.frames_written));
        e.Counter("tessera_slide_frames_received_total", "Frames its proxy took (duplicates included)", l,
                  static_cast<double>(sl.frames_received));
        e.Gauge("tessera_fifo_held_bytes", "Compressed bytes the slide's proxy holds, not yet durable", l,
                static_cast<double>(sl.fifo_held_bytes));
        e.Gauge("tessera_fifo_window_bytes", "The slide's proxy's FIFO bound (the scanner's credit)", l,
                static_cast<double>(sl.fifo_window_bytes));
        e.Histogram("tessera_ack_latency_seconds", "From a frame's arrival at the proxy to its acknowledgement",
                    l, {sl.ack_latency_counts, sl.ack_latency_sum_ms});
      }
      for (const auto& [state, n] : by_state) e.Gauge("tessera_slides", "Slides in the catalog by state", {{"state", state}}, n);
      e.Counter("tessera_frames_written_total", "Durable frames of every slide", {}, static_cast<double>(frames));
      e.Counter("tessera_bytes_stored_total", "Compressed bytes stored, every slide", {}, static_cast<double>(bytes));
    }
    if (auto dealers = client_.DealersStats(); dealers.ok()) {
      for (const auto& d : *dealers) {
        const metrics::Labels l{{"dealer", d.endpoint}};
        e.Gauge("tessera_dealer_up", "Whether the tile dealer answered", l, d.answered ? 1 : 0);
        if (!d.answered) continue;
        e.Gauge("tessera_dealer_cache_bytes", "Compressed chunks the dealer caches", l, static_cast<double>(d.cache_bytes));
        e.Gauge("tessera_dealer_cache_capacity_bytes", "The dealer's cache bound", l, static_cast<double>(d.cache_capacity));
        e.Counter("tessera_dealer_cache_hits_total", "Chunks answered from the dealer's cache", l,
                  static_cast<double>(d.cache_hits));
        e.Counter("tessera_dealer_cache_misses_total", "Chunks the dealer read from a file", l,
                  static_cast<double>(d.cache_misses));
        const uint64_t looked = d.cache_hits + d.cache_misses;
        e.Gauge("tessera_dealer_cache_hit_ratio", "Hits over lookups since the dealer started", l,
                looked == 0 ? 0 : static_cast<double>(d.cache_hits) / static_cast<double>(looked));
        e.Counter("tessera_dealer_requests_total", "Requests the dealer answered", l, static_cast<double>(d.requests));
        e.Histogram("tessera_dealer_read_seconds", "A chunk request at the dealer, arrival to answer", l,
                    {d.read_latency_counts, d.read_latency_sum_ms});
      }
    }
    auto broker = stitcher::QueryBroker(options_.manager);
    e.Gauge("tessera_broker_up", "Whether the task broker answered", {}, broker.ok() ? 1 : 0);
    if (broker.ok()) {
      e.Gauge("tessera_workers", "Workers registered with the broker", {}, static_cast<double>(broker->workers.size()));
      for (const auto& q : broker->queues) {
        const metrics::Labels l{{"service", q.service}};
        e.Gauge("tessera_service_workers", "Workers offering the service", l, q.workers);
        e.Gauge("tessera_tasks_queued", "Tasks waiting for a worker", l, q.queued);
        e.Gauge("tessera_tasks_running", "Tasks on a worker", l, q.running);
        e.Gauge("tessera_task_queue_bytes", "Bytes of the tasks waiting", l, static_cast<double>(q.queued_bytes));
        e.Counter("tessera_tasks_done_total", "Tasks done", l, static_cast<double>(q.done));
        e.Counter("tessera_tasks_failed_total", "Tasks failed for good", l, static_cast<double>(q.failed));
        e.Counter("tessera_tasks_retried_total", "Tasks given to another worker", l, static_cast<double>(q.retried));
      }
    }
    {
      std::lock_guard lock(accounts_mu_);
      for (const auto& [route, a] : accounts_) {
        for (const auto& [code, n] : a.by_code) {
          e.Counter("tessera_gateway_requests_total", "HTTP requests answered, by route and status",
                    {{"route", route}, {"code", std::to_string(code)}}, static_cast<double>(n));
        }
        e.Histogram("tessera_gateway_request_seconds", "HTTP requests, arrival to the reply's body (IIIF: a tile)",
                    {{"route", route}}, a.latency.Read());
      }
    }
    return Reply{http::status::ok, "text/plain; version=0.0.4; charset=utf-8", e.Text(), {}, false, {}};
  }

  static Reply Json(std::string body) { return {http::status::ok, "application/json", std::move(body), {}, false, {}}; }

  Result<Reply> Api(const std::vector<std::string_view>& parts, const Query& query) {
    if (parts.size() == 3 && parts[2] == "slides") {
      TESSERA_ASSIGN_OR_RETURN(auto slides, client_.List());
      std::string body = "[";
      for (size_t i = 0; i < slides.size(); ++i) body += (i ? ",\n" : "\n") + SummaryToJson(slides[i]);
      return Json(body + "\n]\n");
    }
    if (parts.size() == 4 && parts[2] == "slides") {
      TESSERA_ASSIGN_OR_RETURN(auto info, client_.Info(std::string(parts[3])));
      return Json(SummaryToJson(info) + "\n");
    }
    if (parts.size() == 5 && parts[2] == "slides") {
      if (parts[4] == "display") return Display(std::string(parts[3]));
      TESSERA_ASSIGN_OR_RETURN(const std::string id, ViewOf(parts[3], query));
      if (parts[4] == "pixel") return Pixel(id, query);
      if (parts[4] == "section.png" || parts[4] == "section.jpg") return Section(id, query, parts[4] == "section.png");
      if (parts[4] == "region.npy" || parts[4] == "region.tiff") return RawRegion(id, query, parts[4] == "region.npy");
    }
    return Error(StatusCode::kNotFound, "no such API path: see docs/protocol.md for the gateway's");
  }

  // The slide id a request reads: `view=fused` is the stitched slide's fused image (the
  // slide "<id>:fused"), `view=deskewed` an oblique scan's deskewed stacks, `view=destriped` its
  // destriped planes (tessera stitch --destripe), `view=raw` (the
  // default) the fields of view as acquired.
  static Result<std::string> ViewOf(std::string_view id, const Query& query) {
    auto it = query.find("view");
    if (it == query.end() || it->second == "raw") return std::string(id);
    if (it->second == "fused" || it->second == "deskewed" || it->second == "destriped") {
      return fmt::format("{}:{}", id, it->second);
    }
    return Error(StatusCode::kInvalidArgument, "view={}: give raw, deskewed, destriped or fused", it->second);
  }

  // A plane of the mosaic's (z=N, default 0), checked against its depth.
  // `corrected=1` (or true): the fields with the slide's corrections applied (flat field, tile
  // gains; the raw values where it has none); 0, false or absent: as the camera gave them.
  static Result<bool> CorrectedOf(const Query& query) {
    auto it = query.find("corrected");
    if (it == query.end() || it->second == "0" || it->second == "false") return false;
    if (it->second == "1" || it->second == "true") return true;
    return Error(StatusCode::kInvalidArgument, "corrected={}: give 1 (the slide's corrections applied) or 0 (raw)",
                 it->second);
  }

  static Result<uint32_t> PlaneOf(const Query& query, const SlideGeometry& g) {
    TESSERA_ASSIGN_OR_RETURN(int64_t z, Count(query, "z", 0));
    if (z >= g.depth) return Error(StatusCode::kOutOfRange, "z={}: the slide has planes 0 to {}", z, g.depth - 1);
    return static_cast<uint32_t>(z);
  }

  Result<SlideGeometry> Geometry(const std::string& id) {
    {
      std::lock_guard lock(mu_);
      if (auto it = geometry_.find(id); it != geometry_.end() && Clock::now() - it->second.fetched < kGeometryTtl) {
        return it->second;
      }
    }
    TESSERA_ASSIGN_OR_RETURN(SlideView view, client_.Describe(id));
    SlideGeometry g;
    g.plan = view.summary.plan;
    g.state = view.summary.state;
    g.levels = view.level_count;
    for (const auto& p : view.positions) {
      g.width = std::max(g.width, static_cast<int64_t>(std::floor(p[0] + 0.5)) + g.plan.width);
      g.height = std::max(g.height, static_cast<int64_t>(std::floor(p[1] + 0.5)) + g.plan.height);
    }
    g.depth = static_cast<int64_t>(view.depth);
    g.positions = view.positions;
    g.extents = zarr::MosaicExtents(g.plan, view.positions, g.levels);
    g.live = view.live;
    g.fetched = Clock::now();
    {
      std::lock_guard lock(mu_);
      if (auto it = geometry_.find(id); it != geometry_.end()) g.styles = it->second.styles;
    }
    // Defaults once the slide's first tiles are there; while it is acquiring, again each time.
    if (g.styles.size() != g.plan.channels.size() || g.state == "acquiring") {
      TESSERA_ASSIGN_OR_RETURN(g.styles, DefaultStyles(id, g));
    }
    std::lock_guard lock(mu_);
    geometry_[id] = g;
    return g;
  }

  // Windows from the whole slide at its coarsest level (a few hundred pixels a side).
  Result<std::vector<ChannelStyle>> DefaultStyles(const std::string& id, const SlideGeometry& g) {
    const uint32_t level = g.levels - 1, z = g.PlaneAt(level, static_cast<uint32_t>(g.depth / 2));
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion({.slide = id, .level = level, .x = 0, .y = 0,
                                                           .width = std::max<int64_t>(1, g.width >> level),
                                                           .height = std::max<int64_t>(1, g.height >> level),
                                                           .z_begin = z, .z_end = z + 1}));
    return gateway::DefaultStyles(a, g.plan.channels);
  }

  // What the viewer page needs to draw a slide: its extent, levels, scale and default rendering.
  Result<Reply> Display(const std::string& id) {
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    nlohmann::json j;
    j["id"] = id;
    j["state"] = g.state;
    j["width"] = g.width;
    j["height"] = g.height;
    j["levels"] = g.levels;
    j["tile"] = kIiifTile;
    j["pixel_size_um"] = g.plan.pixel_size_um;
    j["dtype"] = DtypeName(g.plan.dtype);
    j["depth"] = g.depth;
    j["views"] = {"raw"};
    j["depths"] = {{"raw", g.depth}};  // each view's planes (a fused volume spans every stack)
    for (const char* view : {"deskewed", "destriped", "fused"}) {
      if (std::string_view(view) == "deskewed" && !g.plan.oblique) continue;
      if (auto v = Geometry(fmt::format("{}:{}", id, view)); v.ok()) {
        j["views"].push_back(view);
        j["depths"][view] = v->depth;
      }
    }
    auto& channels = j["channels"] = nlohmann::json::array();
    for (size_t c = 0; c < g.styles.size(); ++c) {
      const ChannelStyle& s = g.styles[c];
      channels.push_back({{"index", c}, {"name", s.name}, {"on", s.on}, {"min", s.min}, {"max", s.max},
                          {"color", fmt::format("{:02x}{:02x}{:02x}", s.r, s.g, s.b)}});
    }
    return Json(j.dump(2) + "\n");
  }

  // A query parameter that is a whole number; `fallback` when absent (nullopt: required).
  static Result<int64_t> Count(const Query& query, const std::string& key, std::optional<int64_t> fallback) {
    auto it = query.find(key);
    if (it == query.end()) {
      if (fallback) return *fallback;
      return Error(StatusCode::kInvalidArgument, "the query needs {}= (a whole number)", key);
    }
    auto v = ParseCount(it->second);
    if (!v) return Error(StatusCode::kInvalidArgument, "{}={} is not a whole number", key, it->second);
    return *v;
  }

  // The values of every channel at one level-0 pixel: the viewer's cursor readout.
  Result<Reply> Pixel(const std::string& id, const Query& query) {
    TESSERA_ASSIGN_OR_RETURN(int64_t x, Count(query, "x", std::nullopt));
    TESSERA_ASSIGN_OR_RETURN(int64_t y, Count(query, "y", std::nullopt));
    TESSERA_ASSIGN_OR_RETURN(int64_t z, Count(query, "z", 0));
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    if (x >= g.width || y >= g.height || z >= g.depth) {
      return Error(StatusCode::kInvalidArgument, "pixel ({}, {}, {}) lies outside the {} x {} x {} slide", x, y, z,
                   g.width, g.height, g.depth);
    }
    TESSERA_ASSIGN_OR_RETURN(const bool corrected, CorrectedOf(query));
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion({.slide = id, .level = 0, .x = x, .y = y, .width = 1,
                                                           .height = 1, .z_begin = static_cast<uint32_t>(z),
                                                           .z_end = static_cast<uint32_t>(z + 1),
                                                           .corrected = corrected}));
    std::vector<uint32_t> values;
    for (int64_t c = 0; c < a.shape[0]; ++c) {
      const size_t at = a.index(c, 0, 0, 0);
      values.push_back(a.dtype == Dtype::kUint16 ? a.values<uint16_t>()[at] : a.values<uint8_t>()[at]);
    }
    nlohmann::json j = {{"x", x}, {"y", y}, {"z", z}, {"values", values}, {"missing", a.missing_chunks > 0}};
    return Json(j.dump() + "\n");
  }

  // Raw pixels of a box at one level, for scripts: .npy (C x Z x Y x X) or a TIFF page per plane.
  Result<Reply> RawRegion(const std::string& id, const Query& query, bool npy) {
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    TESSERA_ASSIGN_OR_RETURN(int64_t level, Count(query, "level", 0));
    if (level >= g.levels) {
      return Error(StatusCode::kNotFound, "level={}: the slide has levels 0 to {}", level, g.levels - 1);
    }
    TESSERA_ASSIGN_OR_RETURN(int64_t x, Count(query, "x", 0));
    TESSERA_ASSIGN_OR_RETURN(int64_t y, Count(query, "y", 0));
    TESSERA_ASSIGN_OR_RETURN(int64_t w, Count(query, "width", std::nullopt));
    TESSERA_ASSIGN_OR_RETURN(int64_t h, Count(query, "height", std::nullopt));
    RegionRequest r{.slide = id, .level = static_cast<uint32_t>(level), .x = x, .y = y, .width = w, .height = h};
    TESSERA_ASSIGN_OR_RETURN(r.corrected, CorrectedOf(query));
    if (auto it = query.find("channels"); it != query.end()) {
      for (std::string_view c : Split(it->second, ',')) {
        auto v = ParseCount(c);
        if (!v || *v >= static_cast<int64_t>(g.plan.channels.size())) {
          return Error(StatusCode::kInvalidArgument, "channels={}: the slide has channels 0 to {}", it->second,
                       g.plan.channels.size() - 1);
        }
        r.channels.push_back(static_cast<uint32_t>(*v));
      }
    }
    if (auto it = query.find("z"); it != query.end()) {  // "3" or "2:5"
      const auto range = ParseRange(it->second, ':');
      if (!range || range->second > g.DepthAt(r.level)) {
        return Error(StatusCode::kInvalidArgument, "z={}: give a plane or begin:end within 0:{} (level {}'s planes)",
                     it->second, g.DepthAt(r.level), r.level);
      }
      r.z_begin = static_cast<uint32_t>(range->first);
      r.z_end = static_cast<uint32_t>(range->second);
    }
    const uint64_t planes = (r.channels.empty() ? g.plan.channels.size() : r.channels.size()) *
                            ((r.z_end ? r.z_end : static_cast<uint64_t>(g.DepthAt(r.level))) - r.z_begin);
    const auto bytes = CheckedProduct({static_cast<uint64_t>(w), static_cast<uint64_t>(h), planes,
                                       DtypeSize(g.plan.dtype)});
    if (!bytes || *bytes > options_.max_raw_bytes) {
      return Error(StatusCode::kResourceExhausted,
                   "the region of {}x{} pixels x {} planes is over this gateway's {} MB a request: ask for it in "
                   "parts (or use the C++ client library, which streams)",
                   w, h, planes, options_.max_raw_bytes >> 20);
    }
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion(r));
    const std::string name = fmt::format("{}_L{}_x{}_y{}_{}x{}", id, level, a.x, a.y, a.shape[3], a.shape[2]);
    if (npy) return Reply{http::status::ok, "application/octet-stream", NpyBytes(a), {}, false, name + ".npy"};
    imageio::Image image{static_cast<uint32_t>(a.shape[3]), static_cast<uint32_t>(a.shape[2]),
                         static_cast<uint32_t>(a.shape[0] * a.shape[1]), a.dtype, std::move(a.data)};
    TESSERA_ASSIGN_OR_RETURN(std::string tiff, imageio::EncodeTiff(image));
    return Reply{http::status::ok, "image/tiff", std::move(tiff), {}, false, name + ".tif"};
  }

  // NumPy's .npy format 1.0: magic, header length, a Python dict literal, the C-order data.
  static std::string NpyBytes(const Array& a) {
    std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
                                     a.dtype == Dtype::kUint16 ? "<u2" : "|u1", a.shape[0], a.shape[1], a.shape[2],
                                     a.shape[3]);
    header.append(63 - (10 + header.size()) % 64, ' ');
    header += '\n';  // magic (6) + version (2) + length (2) + header: a multiple of 64
    std::string out = "\x93NUMPY\x01";
    out += '\0';
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    out += header;
    out.append(reinterpret_cast<const char*>(a.data.data()), a.data.size());
    return out;
  }

  // The channels a rendering reads and their styles: those that are on; when every one is
  // off, channel 0 switched off (black, but of the right size).
  static std::pair<std::vector<uint32_t>, std::vector<ChannelStyle>> ChannelsToRead(const std::vector<ChannelStyle>& styles) {
    std::vector<uint32_t> channels;
    std::vector<ChannelStyle> used;
    for (uint32_t c = 0; c < styles.size(); ++c) {
      if (styles[c].on) {
        channels.push_back(c);
        used.push_back(styles[c]);
      }
    }
    if (channels.empty()) {
      channels.push_back(0);
      used.push_back(styles[0]);
      used[0].on = false;
    }
    return {channels, used};
  }

  Result<Reply> Iiif(const std::vector<std::string_view>& parts, const Query& query) {
    TESSERA_ASSIGN_OR_RETURN(const std::string id, ViewOf(parts[3], query));
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    const IiifLimits limits{.max_width = options_.max_output_edge, .max_height = options_.max_output_edge,
                            .max_area = options_.max_output_pixels};
    const std::string base = fmt::format("{}/iiif/3/{}", options_.public_url, id);
    if (parts.size() == 4) return Reply{http::status::see_other, "text/plain", "", base + "/info.json", false, {}};
    if (parts.size() == 5 && parts[4] == "info.json") {
      return Reply{http::status::ok, "application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\"",
                   InfoJson(base, g.width, g.height, static_cast<int>(g.levels), kIiifTile, limits), {}, false, {}};
    }
    if (parts.size() != 8) {
      return Error(StatusCode::kInvalidArgument,
                   "an IIIF image URL is /iiif/3/{{id}}/{{region}}/{{size}}/{{rotation}}/{{quality}}.{{format}}");
    }
    TESSERA_ASSIGN_OR_RETURN(auto req, ParseImageRequest(fmt::format("{}/{}/{}/{}", parts[4], parts[5], parts[6], parts[7]),
                                                         g.width, g.height, limits));
    TESSERA_ASSIGN_OR_RETURN(auto styles, ApplyStyleQuery(g.styles, query));
    const int level = ChooseLevel(req, static_cast<int>(g.levels));
    // Whole pixels of that level covering the asked box.
    const int64_t f = int64_t{1} << level;
    const int64_t x0 = req.x / f, y0 = req.y / f;
    const int64_t x1 = (req.x + req.w + f - 1) / f, y1 = (req.y + req.h + f - 1) / f;
    const auto [channels, used] = ChannelsToRead(styles);
    TESSERA_ASSIGN_OR_RETURN(const uint32_t z0, PlaneOf(query, g));
    TESSERA_ASSIGN_OR_RETURN(const bool corrected, CorrectedOf(query));
    const uint32_t z = g.PlaneAt(static_cast<uint32_t>(level), z0);  // the level's plane under it
    // Each worker reads its tiles into one buffer (no fresh pages per tile), kept between
    // requests only up to kKeptRegionBytes.
    thread_local Array kept;
    Array a = std::move(kept);
    TESSERA_RETURN_IF_ERROR(client_.ReadRegion({.slide = id, .level = static_cast<uint32_t>(level), .x = x0,
                                                .y = y0, .width = x1 - x0, .height = y1 - y0, .channels = channels,
                                                .z_begin = z, .z_end = z + 1, .corrected = corrected},
                                               a));
    const double fd = static_cast<double>(f);
    const SourceBox box{static_cast<double>(req.x) / fd - static_cast<double>(a.x),
                        static_cast<double>(req.y) / fd - static_cast<double>(a.y), static_cast<double>(req.w) / fd,
                        static_cast<double>(req.h) / fd};
    const Planes planes{a.data, static_cast<int>(DtypeSize(a.dtype)), static_cast<int>(a.shape[0]), a.shape[3],
                        a.shape[2]};
    TESSERA_ASSIGN_OR_RETURN(Image8 image, Render(planes, box, used, req));
    const bool png = req.format == IiifImageRequest::Format::kPng;
    TESSERA_ASSIGN_OR_RETURN(std::string encoded, png ? EncodePng(image) : EncodeJpeg(image));
    // A finished slide's tiles do not change; an acquiring one's fill in as frames land.
    const bool cacheable = a.missing_chunks == 0 && g.state != "acquiring";
    if (a.data.capacity() <= kKeptRegionBytes) kept = std::move(a);
    return Reply{http::status::ok, png ? "image/png" : "image/jpeg", std::move(encoded), {}, cacheable, {}};
  }

  // The XZ section of a volume through level-0 row y (y=, required): every plane of the mosaic
  // at the coarsest level at most 1024 pixels wide (or level=), rendered as tiles are (the
  // style query applies), stretched in z to the voxel's aspect: what the viewer shows beside XY.
  Result<Reply> Section(const std::string& id, const Query& query, bool png) {
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    TESSERA_ASSIGN_OR_RETURN(int64_t y, Count(query, "y", std::nullopt));
    if (y >= g.height) return Error(StatusCode::kOutOfRange, "y={}: the slide has rows 0 to {}", y, g.height - 1);
    int64_t level = 0;
    while (level + 1 < g.levels && (g.width >> level) > 1024) ++level;
    TESSERA_ASSIGN_OR_RETURN(level, Count(query, "level", level));
    if (level >= g.levels) return Error(StatusCode::kNotFound, "no level {} in slide {}", level, id);
    TESSERA_ASSIGN_OR_RETURN(auto styles, ApplyStyleQuery(g.styles, query));
    const auto [channels, used] = ChannelsToRead(styles);
    const int64_t width = std::max<int64_t>(1, (g.width + (int64_t{1} << level) - 1) >> level);
    const int64_t depth = g.DepthAt(static_cast<uint32_t>(level));
    const auto bytes = CheckedProduct({static_cast<uint64_t>(width), static_cast<uint64_t>(depth), channels.size(),
                                       DtypeSize(g.plan.dtype)});
    if (!bytes || *bytes > options_.max_raw_bytes) {
      return Error(StatusCode::kResourceExhausted, "the section is over this gateway's {} MB: ask for a coarser level=",
                   options_.max_raw_bytes >> 20);
    }
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion({.slide = id, .level = static_cast<uint32_t>(level), .x = 0,
                                                           .y = y >> level, .width = width, .height = 1,
                                                           .channels = channels, .z_begin = 0,
                                                           .z_end = static_cast<uint32_t>(depth)}));
    // C x Z x 1 x X: each channel a Z x X picture.
    const Planes planes{a.data, static_cast<int>(DtypeSize(a.dtype)), static_cast<int>(a.shape[0]), a.shape[3],
                        a.shape[1]};
    const double aspect = g.plan.pixel_size_um[2] * g.plan.Level(static_cast<uint32_t>(level)).z_scale() /
                          (g.plan.pixel_size_um[0] * static_cast<double>(int64_t{1} << level));
    IiifImageRequest req;
    req.w = a.shape[3];
    req.h = a.shape[1];
    req.out_w = req.w;
    req.out_h = std::clamp<int64_t>(std::llround(static_cast<double>(req.h) * aspect), 1, options_.max_output_edge);
    req.format = png ? IiifImageRequest::Format::kPng : IiifImageRequest::Format::kJpg;
    TESSERA_ASSIGN_OR_RETURN(Image8 image, Render(planes, {0, 0, static_cast<double>(req.w), static_cast<double>(req.h)},
                                                  used, req));
    TESSERA_ASSIGN_OR_RETURN(std::string encoded, png ? EncodePng(image) : EncodeJpeg(image));
    const bool cacheable = a.missing_chunks == 0 && g.state != "acquiring";
    return Reply{http::status::ok, png ? "image/png" : "image/jpeg", std::move(encoded), {}, cacheable, {}};
  }

  // OME-Zarr (zarr.h): /zarr/{id}/ the mosaic, composed from the fields at their current
  // positions; /zarr/{id}/fields/{t}/ field of view t as stored, its chunks the stored bytes.
  // The same under /zarr3/ as Zarr v3. {id} may name a view ("s000001:fused"); a view of one
  // field (a fused image) is served as that field, as stored.
  Result<Reply> Zarr(const std::vector<std::string_view>& parts, zarr::Version version) {
    const std::string id(parts[2]);
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    const bool v2 = version == zarr::Version::kV2;
    auto join = [&](size_t from) {
      std::string key;
      for (size_t i = from; i < parts.size(); ++i) key += (i > from ? "/" : "") + std::string(parts[i]);
      return key;
    };
    if (parts.size() >= 4 && parts[3] == "fields") {
      const std::string rest = join(4);
      if (rest.empty() || rest == ".zgroup" || rest == "zarr.json" || rest == ".zattrs") {
        const std::string attrs = zarr::FieldsAttributes(g.plan, g.positions);
        return ZarrMetadata(rest == ".zattrs" ? attrs + "\n" : zarr::PlainGroup(version, attrs), g);
      }
      const auto t = ParseCount(parts[4]);
      if (!t || *t >= static_cast<int64_t>(g.positions.size())) {
        return Error(StatusCode::kNotFound, "no field '{}' in slide {}: it has fields 0 to {}", parts[4], id,
                     static_cast<int64_t>(g.positions.size()) - 1);
      }
      const zarr::Image image =
          zarr::FieldImage(g.plan, g.levels, g.positions[static_cast<size_t>(*t)], g.styles);
      TESSERA_ASSIGN_OR_RETURN(zarr::Key key, zarr::ParseKey(image, version, join(5)));
      if (key.kind != zarr::Key::kChunk) return ZarrMetadata(image, version, key, g);
      return StoredZarrChunk(id, static_cast<uint32_t>(*t), image, key);
    }
    // A view of one field (a fused image, a slide of one tile) is that field, as stored, placed
    // by its translation; else the mosaic, composed.
    const bool one_field = g.positions.size() == 1;
    const zarr::Image image = one_field ? zarr::FieldImage(g.plan, g.levels, g.positions[0], g.styles)
                                        : zarr::MosaicImage(g.plan, g.extents, g.depth, g.styles);
    TESSERA_ASSIGN_OR_RETURN(zarr::Key key, zarr::ParseKey(image, version, join(3)));
    if (key.kind != zarr::Key::kChunk) {
      if (key.kind == zarr::Key::kGroup && parts.size() == 4 && parts[3].empty() && v2) {
        // The image's folder itself: what a person opening the link should know.
        return Json(fmt::format("{{\"zarr_format\": 2, \"ome\": \"0.4\", \"levels\": {}, \"fields\": {}, "
                                "\"open_with\": \"zarr.open_consolidated(fsspec.get_mapper(THIS_URL))\"}}\n",
                                g.levels, g.positions.size()));
      }
      return ZarrMetadata(image, version, key, g);
    }
    if (one_field) return StoredZarrChunk(id, 0, image, key);
    return ComposedZarrChunk(id, image, key);
  }

  Reply ZarrMetadata(std::string body, const SlideGeometry& g) {
    // Fixed by the plan; positions (translations, the mosaic's extent) change once stitched.
    Reply r = Json(std::move(body));
    r.cacheable = !g.live && g.state != "acquiring";
    return r;
  }
  Reply ZarrMetadata(const zarr::Image& image, zarr::Version version, const zarr::Key& key, const SlideGeometry& g) {
    switch (key.kind) {
      case zarr::Key::kConsolidated: return ZarrMetadata(zarr::ConsolidatedV2(image), g);
      case zarr::Key::kArray: return ZarrMetadata(zarr::ArrayMetadata(image, version, key.level), g);
      case zarr::Key::kArrayAttributes: return ZarrMetadata("{}\n", g);
      default: return ZarrMetadata(zarr::GroupMetadata(image, version, key.kind), g);
    }
  }

  // A field's chunk as the writer stored it (a Blosc frame, checked against its checksum by
  // the client library): 404 until it has landed, then never changing.
  Result<Reply> StoredZarrChunk(const std::string& id, uint32_t t, const zarr::Image& image, const zarr::Key& key) {
    const auto& chunks = image.levels[key.level].chunks;
    const ChunkKey ck{{t, static_cast<uint32_t>(key.chunk[0]), static_cast<uint32_t>(key.chunk[1] * chunks[1])},
                      key.level, static_cast<uint32_t>(key.chunk[2]), static_cast<uint32_t>(key.chunk[3])};
    TESSERA_ASSIGN_OR_RETURN(StoredChunk chunk, client_.ReadChunk(id, ck));
    TESSERA_RETURN_IF_ERROR(codec::Inspect(chunk.bytes).status());  // never anything but a Blosc frame
    Reply r{http::status::ok, "application/octet-stream",
            std::string(reinterpret_cast<const char*>(chunk.bytes.data()), chunk.bytes.size()), {}, true, {}};
    r.etag = fmt::format("\"{:016x}\"", chunk.xxh64);
    return r;
  }

  // A mosaic chunk: the region it covers read at its level (each pixel from its owner field,
  // as every region is), padded with zeros to the chunk's edges and compressed as stored chunks are.
  Result<Reply> ComposedZarrChunk(const std::string& id, const zarr::Image& image, const zarr::Key& key) {
    const zarr::Box b = zarr::ChunkBox(image.levels[key.level], key.chunk);
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion({.slide = id, .level = key.level, .x = static_cast<int64_t>(b.x),
                                                           .y = static_cast<int64_t>(b.y),
                                                           .width = static_cast<int64_t>(b.width),
                                                           .height = static_cast<int64_t>(b.height),
                                                           .channels = {static_cast<uint32_t>(key.chunk[0])},
                                                           .z_begin = static_cast<uint32_t>(b.z_begin),
                                                           .z_end = static_cast<uint32_t>(b.z_end)}));
    TESSERA_ASSIGN_OR_RETURN(auto packed, zarr::EncodeChunk(image, key.level, a.data,
                                                            {static_cast<uint64_t>(a.shape[1]),
                                                             static_cast<uint64_t>(a.shape[2]),
                                                             static_cast<uint64_t>(a.shape[3])}));
    // A finished slide's mosaic changes only when it is stitched again: revalidated by its ETag.
    return Reply{http::status::ok, "application/octet-stream",
                 std::string(reinterpret_cast<const char*>(packed.data()), packed.size()), {}, false, {}};
  }

  // Neuroglancer's "precomputed" volume: /precomputed/{id}/info and raw chunks
  // /precomputed/{id}/{level}/{x0}-{x1}_{y0}-{y1}_{z0}-{z1} (x fastest, then y, z, channel).
  Result<Reply> Precomputed(const std::vector<std::string_view>& parts) {
    const std::string id(parts[2]);
    TESSERA_ASSIGN_OR_RETURN(SlideGeometry g, Geometry(id));
    auto level_size = [&](int64_t level) {
      const int64_t f = int64_t{1} << level;
      return std::array<int64_t, 3>{(g.width + f - 1) / f, (g.height + f - 1) / f, g.DepthAt(static_cast<uint32_t>(level))};
    };
    if (parts.size() == 4 && parts[3] == "info") {
      nlohmann::json j;
      j["@type"] = "neuroglancer_multiscale_volume";
      j["type"] = "image";
      j["data_type"] = DtypeName(g.plan.dtype);
      j["num_channels"] = g.plan.channels.size();
      auto& scales = j["scales"] = nlohmann::json::array();
      // A volume's chunks are boxes (an XZ or YZ view then reads a few, not a plane per row);
      // a slide's, its stored chunks.
      for (uint32_t l = 0; l < g.levels; ++l) {
        const double f = static_cast<double>(int64_t{1} << l);
        const double fz = g.plan.Level(l).z_scale();
        const auto& um = g.plan.pixel_size_um;
        const int64_t depth = level_size(l)[2];
        const std::array<int64_t, 3> chunk =
            depth > 1 ? std::array<int64_t, 3>{std::min<int64_t>(128, g.plan.chunk_x), std::min<int64_t>(128, g.plan.chunk_y),
                                               std::min<int64_t>(32, depth)}
                      : std::array<int64_t, 3>{g.plan.chunk_x, g.plan.chunk_y, 1};
        scales.push_back({{"key", std::to_string(l)},
                          {"size", level_size(l)},
                          {"resolution", {um[0] * 1000 * f, um[1] * 1000 * f, um[2] * 1000 * fz}},  // nanometres
                          {"voxel_offset", {0, 0, 0}},
                          {"chunk_sizes", {chunk}},
                          {"encoding", "raw"}});
      }
      return Json(j.dump(2) + "\n");
    }
    if (parts.size() != 5) {
      return Error(StatusCode::kNotFound,
                   "a precomputed URL is /precomputed/{{id}}/info or /precomputed/{{id}}/{{level}}/x0-x1_y0-y1_z0-z1");
    }
    const auto level = ParseCount(parts[3]);
    if (!level || *level >= g.levels) return Error(StatusCode::kNotFound, "no level '{}' in slide {}", parts[3], id);
    int64_t box[6];
    const auto axes = Split(parts[4], '_');
    for (size_t a = 0; a < 3 && axes.size() == 3; ++a) {
      const auto range = ParseRange(axes[a], '-');
      if (!range || range->second > level_size(*level)[a]) {
        return Error(StatusCode::kInvalidArgument, "chunk '{}' is not x0-x1_y0-y1_z0-z1 inside the level", parts[4]);
      }
      box[2 * a] = range->first;
      box[2 * a + 1] = range->second;
    }
    if (axes.size() != 3) return Error(StatusCode::kInvalidArgument, "chunk '{}' is not x0-x1_y0-y1_z0-z1", parts[4]);
    const auto bytes = CheckedProduct({static_cast<uint64_t>(box[1] - box[0]), static_cast<uint64_t>(box[3] - box[2]),
                                       static_cast<uint64_t>(box[5] - box[4]), g.plan.channels.size(),
                                       DtypeSize(g.plan.dtype)});
    if (!bytes || *bytes > options_.max_raw_bytes) {
      return Error(StatusCode::kResourceExhausted, "chunk '{}' is over this gateway's {} MB", parts[4],
                   options_.max_raw_bytes >> 20);
    }
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion({.slide = id, .level = static_cast<uint32_t>(*level),
                                                           .x = box[0], .y = box[2], .width = box[1] - box[0],
                                                           .height = box[3] - box[2],
                                                           .z_begin = static_cast<uint32_t>(box[4]),
                                                           .z_end = static_cast<uint32_t>(box[5])}));
    // C x Z x Y x X row-major is the layout precomputed's raw encoding wants (little-endian).
    std::string body = PadTo(a, box[0], box[2], box[1] - box[0], box[3] - box[2]);
    return Reply{http::status::ok, "application/octet-stream", std::move(body), {}, a.missing_chunks == 0, {}};
  }

  // `a` placed at its own position in a zero block of width x height per plane from (x, y):
  // a region clipped at the mosaic's edge.
  static std::string PadTo(const Array& a, int64_t x, int64_t y, int64_t width, int64_t height) {
    if (a.x == x && a.y == y && a.shape[3] == width && a.shape[2] == height) {
      return std::string(a.data.begin(), a.data.end());
    }
    const size_t elem = DtypeSize(a.dtype);
    std::string out(static_cast<size_t>(a.shape[0] * a.shape[1] * width * height) * elem, '\0');
    for (int64_t p = 0; p < a.shape[0] * a.shape[1]; ++p) {
      for (int64_t row = 0; row < a.shape[2]; ++row) {
        const int64_t at = (p * height + (a.y - y) + row) * width + (a.x - x);
        std::memcpy(out.data() + static_cast<size_t>(at) * elem,
                    a.data.data() + static_cast<size_t>((p * a.shape[2] + row) * a.shape[3]) * elem,
                    static_cast<size_t>(a.shape[3]) * elem);
      }
    }
    return out;
  }

  Result<Reply> Static(const std::string& path) {
    if (!HasPage(options_.web_root)) {
      if (path != "/" && path != "/index.html") return Error(StatusCode::kNotFound, "{}", NoPageReason(options_.web_root));
      // A person opening the gateway's address: say why there is no page, and what still works.
      return Reply{http::status::not_found, "text/html; charset=utf-8",
                   fmt::format("<!doctype html><title>Tessera gateway: no viewer page</title><h1>No viewer page</h1>"
                               "<p>{}</p><p>What this gateway serves without it: <a href=\"api/slides\">api/slides</a>, "
                               "IIIF at <code>iiif/3/ID/info.json</code>, OME-Zarr at <code>zarr/ID/</code> "
                               "(docs/protocol.md).</p>\n",
                               HtmlEscape(NoPageReason(options_.web_root))),
                   {}, false, {}};
    }
    // No way out of the web root: no "..", no hidden files, the resolved path inside it.
    for (std::string_view part : Split(path, '/')) {
      if (part == ".." || (part.size() > 1 && part[0] == '.')) return Error(StatusCode::kNotFound, "no such file");
    }
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root = fs::weakly_canonical(options_.web_root, ec);
    fs::path file = fs::weakly_canonical(root / fs::path(path).relative_path(), ec);
    if (!ec && fs::is_directory(file, ec)) file /= "index.html";
    const auto rel = file.lexically_relative(root);
    if (ec || rel.empty() || *rel.begin() == ".." || !fs::is_regular_file(file, ec)) {
      return Error(StatusCode::kNotFound, "no such file: {}", path);
    }
    std::ifstream in(file, std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return Reply{http::status::ok, std::string(ContentType(file)), std::move(body), {}, false, {}};
  }

  const GatewayOptions& options_;
  Client client_;
  std::shared_ptr<spdlog::logger> log_;
  struct RouteCounts {
    metrics::LatencyHistogram latency;
    std::map<int, uint64_t> by_code;
  };
  std::mutex accounts_mu_;
  std::map<std::string, RouteCounts, std::less<>> accounts_;  // by route: a handful
  std::mutex mu_;
  std::map<std::string, SlideGeometry> geometry_;
};

// ---- one connection

// One connection: plain HTTP over `beast::tcp_stream`, or HTTPS over an ssl_stream of one.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;


 public:
  // `stream_args`: the socket (and the TLS context).
  template <class... StreamArgs>
  Session(Handler& handler, net::thread_pool& workers, const GatewayOptions& o, StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        handler_(handler),
        workers_(workers),
        options_(o),
        heartbeat_(stream_.get_executor()) {}

  void Start() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Lowest().expires_after(std::chrono::seconds(self->options_.timeout_s));
        self->stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->Close();  // not TLS, or a certificate the client refused
          self->Read();
        });
      } else {
        self->Read();
      }
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(options_.max_header_bytes);
    parser_->body_limit(options_.max_body_bytes);
    Lowest().expires_after(std::chrono::seconds(options_.timeout_s));
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->OnRead(ec);
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::connection_reset ||
        ec == net::error::operation_aborted) {
      return Close();
    }
    if (ec) {  // malformed or over a limit: say so, then close
      const bool big = ec == http::error::header_limit || ec == http::error::body_limit;
      Reply r = ErrorReply(Error(big ? StatusCode::kResourceExhausted : StatusCode::kInvalidArgument,
                                 "bad HTTP request: {}", ec.message()));
      if (ec == http::error::header_limit) r.status = http::status::request_header_fields_too_large;
      keep_alive_ = false;
      return Write(std::move(r));
    }
    Request req = parser_->release();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    if (req.method() == http::verb::options) return Write({http::status::no_content, "text/plain", "", {}, false});
    if (req.method() != http::verb::get && !head_) {
      Reply r = ErrorReply(Error(StatusCode::kInvalidArgument, "only GET, HEAD and OPTIONS are served"));
      r.status = http::status::method_not_allowed;
      return Write(std::move(r));
    }
    if (auto refused = Authenticate(req)) return Write(std::move(*refused));
    const std::string target(req.target());
    target_ = target;
    started_ = Clock::now();
    origin_ = std::string(req[http::field::origin]);  // before the event stream, which answers CORS too
    range_ = std::string(req[http::field::range]);
    if_none_match_ = std::string(req[http::field::if_none_match]);
    if_match_ = std::string(req[http::field::if_match]);
    if (auto slide = Handler::EventsSlide(target.substr(0, target.find('?')))) return StartEvents(*slide);
    net::post(workers_, [self = this->shared_from_this(), target] {
      Reply r = self->handler_.Handle(target);
      net::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable { self->Write(std::move(r)); });
    });
  }

  // With a token configured: the request carries it (Authorization: Bearer, or the cookie),
  // or it is the viewer link with ?token=, answered with the cookie and a redirect to the same
  // URL without it (so the token leaves the address bar and the history). Else a 401.
  std::optional<Reply> Authenticate(const Request& req) const {
    const std::string& token = options_.token;
    if (token.empty()) return std::nullopt;
    const auto sv = [](auto v) { return std::string_view(v.data(), v.size()); };
    const std::string_view target = sv(req.target());
    if (const size_t q = target.find('?'); q != std::string_view::npos) {
      std::string rest;
      std::optional<std::string_view> given;
      for (std::string_view query = target.substr(q + 1); !query.empty();) {
        const size_t amp = query.find('&');
        const std::string_view part = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (part.starts_with("token=")) {
          given = part.substr(6);
        } else if (!part.empty()) {
          rest += (rest.empty() ? "" : "&") + std::string(part);
        }
      }
      if (given) {
        if (!SameToken(*given, token)) return Unauthorized("the token in the link is not this gateway's");
        Reply r{http::status::found, "text/plain", "", std::string(target.substr(0, q)) + (rest.empty() ? "" : "?" + rest)};
        r.set_cookie = std::string(kTokenCookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Strict" +
                       (options_.public_url.starts_with("https:") ? "; Secure" : "");
        return r;
      }
    }
    if (const std::string_view auth = sv(req[http::field::authorization]); auth.starts_with("Bearer ")) {
      if (SameToken(auth.substr(7), token)) return std::nullopt;
      return Unauthorized("the bearer token is not this gateway's");
    }
    for (std::string_view cookies = sv(req[http::field::cookie]); !cookies.empty();) {
      const size_t semi = cookies.find(';');
      std::string_view c = cookies.substr(0, semi);
      cookies = semi == std::string_view::npos ? std::string_view() : cookies.substr(semi + 1);
      while (c.starts_with(' ')) c.remove_prefix(1);
      if (c.starts_with(kTokenCookie) && c.substr(kTokenCookie.size()).starts_with('=') &&
          SameToken(c.substr(kTokenCookie.size() + 1), token)) {
        return std::nullopt;
      }
    }
    return Unauthorized("this gateway needs its token: open the viewer link `tessera up` printed (…/?token=…), "
                        "or send Authorization: Bearer TOKEN (TOKEN is in DATA/security/http.token)");
  }

  static Reply Unauthorized(std::string_view why) {
    Reply r = ErrorReply(Error(StatusCode::kUnauthenticated, "{}", why));
    r.status = http::status::unauthorized;
    return r;
  }

  // Compares in time that does not depend on where the first difference is.
  static bool SameToken(std::string_view given, std::string_view token) {
    unsigned diff = given.size() == token.size() ? 0 : 1;
    for (size_t i = 0; i < token.size(); ++i) diff |= static_cast<unsigned>(token[i] ^ (i < given.size() ? given[i] : 0));
    return diff == 0;
  }

  // The request's Origin when the gateway is configured to let pages of that origin read its
  // answers (CORS), else "": a page of any other site open in the user's browser cannot read
  // the slides of a stack it reaches.
  std::string AllowedOrigin() const {
    if (origin_.empty() || origin_.find_first_of("\r\n") != std::string::npos) return "";
    for (const auto& o : options_.cors_origins) {
      if (o == "*" || o == origin_) return origin_;
    }
    return "";
  }

  void Write(Reply r) {
    if (log_->should_log(spdlog::level::debug)) {
      log_->debug("request target={} status={} bytes={} ms={:.1f}", target_, static_cast<int>(r.status), r.body.size(),
                  std::chrono::duration<double, std::milli>(Clock::now() - started_).count());
    }
    auto res = std::make_shared<http::response<http::string_body>>(r.status, 11);
    res->set(http::field::server, "tessera");
    res->set(http::field::content_type, r.content_type);
    if (const std::string allowed = AllowedOrigin(); !allowed.empty()) {
      res->set(http::field::access_control_allow_origin, allowed);
      res->set(http::field::access_control_allow_methods, "GET, HEAD, OPTIONS");
      res->set(http::field::access_control_allow_headers, "Authorization, Range, If-None-Match, If-Match");
      res->set(http::field::access_control_expose_headers, "Content-Range, Content-Length, ETag, Accept-Ranges");
      res->set(http::field::vary, "Origin");
    }
    if (r.status == http::status::ok) ApplyConditions(r, *res);
    res->set(http::field::cache_control, r.cacheable ? "public, max-age=3600" : "no-cache");
    if (!r.location.empty()) res->set(http::field::location, r.location);
    if (!r.set_cookie.empty()) res->set(http::field::set_cookie, r.set_cookie);
    if (r.status == http::status::unauthorized) res->set(http::field::www_authenticate, "Bearer realm=\"tessera\"");
    if (!r.filename.empty()) res->set(http::field::content_disposition, "attachment; filename=\"" + r.filename + "\"");
    res->keep_alive(keep_alive_);
    if (r.status != http::status::not_modified) res->content_length(r.body.size());  // a 304 has no body
    if (!head_) res->body() = std::move(r.body);
    Lowest().expires_after(std::chrono::seconds(options_.timeout_s));
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !self->keep_alive_) return self->Close();
      self->Read();
    });
  }

  // A successful answer's entity tag (strong: the body's xxHash64), then the request's
  // conditions (If-None-Match: 304; If-Match: 412) and byte range (206, 416): what
  // TensorStore, Neuroglancer and Zarr v3 shard readers use.
  void ApplyConditions(Reply& r, http::response<http::string_body>& res) const {
    if (r.etag.empty()) r.etag = fmt::format("\"{:016x}\"", codec::Checksum(std::span(reinterpret_cast<const uint8_t*>(r.body.data()), r.body.size())));
    res.set(http::field::etag, r.etag);
    res.set(http::field::accept_ranges, "bytes");
    if (!if_match_.empty() && !EtagListMatches(if_match_, r.etag)) {
      r = ErrorReply(Error(StatusCode::kFailedPrecondition, "If-Match: the entity is now {}", r.etag));
      r.status = http::status::precondition_failed;
      res.result(r.status);
      res.set(http::field::content_type, r.content_type);
      return;
    }
    if (!if_none_match_.empty() && EtagListMatches(if_none_match_, r.etag)) {
      r.status = http::status::not_modified;
      r.body.clear();
      res.result(r.status);
      return;
    }
    if (range_.empty()) return;
    auto range = ParseByteRange(range_, r.body.size());
    if (!range.ok()) {
      res.set(http::field::content_range, fmt::format("bytes */{}", r.body.size()));
      r = ErrorReply(range.status());
      r.status = http::status::range_not_satisfiable;
      res.result(r.status);
      res.set(http::field::content_type, r.content_type);
      return;
    }
    if (!*range) return;
    const auto [begin, count] = **range;
    res.set(http::field::content_range, fmt::format("bytes {}-{}/{}", begin, begin + count - 1, r.body.size()));
    r.body = r.body.substr(begin, count);
    r.status = http::status::partial_content;
    res.result(r.status);
  }

  // Server-Sent Events: one "data:" line per LandedEvent until the client goes away.
  void StartEvents(const std::string& slide) {
    auto info = handler_.client().Info(slide);
    if (!info.ok()) return Write(ErrorReply(info.status()));
    std::weak_ptr<Session> weak = this->weak_from_this();
    auto executor = stream_.get_executor();
    auto sub = handler_.client().Subscribe(slide, [weak, executor](const LandedEvent& e) {
      std::string text = fmt::format("data: {{\"slide\": {}, \"landed\": [{}], \"levels\": [{}], \"closed\": {}}}\n\n",
                                     JsonString(e.slide), fmt::join(e.landed, ","), fmt::join(e.levels, ","), e.closed);
      net::post(executor, [weak, text = std::move(text)]() mutable {
        if (auto self = weak.lock()) self->Queue(std::move(text));
      });
    });
    if (!sub.ok()) return Write(ErrorReply(sub.status()));
    subscription_.emplace(std::move(*sub));
    keep_alive_ = false;
    Queue(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
        (AllowedOrigin().empty() ? std::string() : "Access-Control-Allow-Origin: " + AllowedOrigin() + "\r\nVary: Origin\r\n") +
        "Connection: close\r\n\r\n: tessera events\n\n");
    Heartbeat();
  }

  void Heartbeat() {
    heartbeat_.expires_after(kEventsHeartbeat);
    heartbeat_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->Queue(": keep-alive\n\n");
      self->Heartbeat();
    });
  }

  void Queue(std::string text) {
    if (closed_) return;
    queued_bytes_ += text.size();
    outbox_.push_back(std::move(text));
    while (queued_bytes_ > kMaxQueuedEventBytes && outbox_.size() > 1) {  // a stalled viewer: drop the oldest
      queued_bytes_ -= outbox_[1].size();
      outbox_.erase(outbox_.begin() + 1);
    }
    if (!writing_) WriteNextEvent();
  }

  void WriteNextEvent() {
    if (outbox_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    Lowest().expires_after(std::chrono::seconds(options_.timeout_s));
    net::async_write(stream_, net::buffer(outbox_.front()), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->queued_bytes_ -= self->outbox_.front().size();
      self->outbox_.pop_front();
      self->WriteNextEvent();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    heartbeat_.cancel();
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    Lowest().socket().close(ec);
    // The subscription's thread may be the one running this: let it go elsewhere.
    if (subscription_) std::thread([s = std::move(*subscription_)]() mutable {}).detach();
    subscription_.reset();
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Handler& handler_;
  net::thread_pool& workers_;
  const GatewayOptions& options_;
  bool keep_alive_ = false, head_ = false, closed_ = false, writing_ = false;
  std::string target_;  // the request being answered, for the log
  std::string origin_;  // its Origin header, for CORS
  std::string range_, if_none_match_, if_match_;  // its Range and conditions
  Clock::time_point started_;
  std::shared_ptr<spdlog::logger> log_ = log::Get("gateway");
  std::optional<Subscription> subscription_;
  std::deque<std::string> outbox_;
  size_t queued_bytes_ = 0;
  net::steady_timer heartbeat_;
};

// ---- the server

struct Gateway::Impl {
  GatewayOptions options;
  std::shared_ptr<spdlog::logger> log = log::Get("gateway");
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::unique_ptr<net::thread_pool> workers;
  std::unique_ptr<Handler> handler;
  std::string url;
  std::optional<net::ssl::context> tls;  // HTTPS: the certificate and key

  void Accept() {
    acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec && tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(*handler, *workers, options, std::move(socket), *tls)
            ->Start();
      } else if (!ec) {
        std::make_shared<Session<beast::tcp_stream>>(*handler, *workers, options, std::move(socket))->Start();
      }
      Accept();
    });
  }

  // TLS 1.2 or later with the PEM certificate chain and key of the options.
  Status LoadTls() {
    if (options.tls_cert.empty() && options.tls_key.empty()) return OkStatus();
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return Error(StatusCode::kInvalidArgument, "HTTPS needs both --tls-cert and --tls-key");
    }
    tls.emplace(net::ssl::context::tls_server);
    tls->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                     net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls->use_certificate_chain_file(options.tls_cert, ec);
    if (ec) return Error(StatusCode::kInvalidArgument, "--tls-cert {}: {} (a PEM certificate chain)", options.tls_cert, ec.message());
    tls->use_private_key_file(options.tls_key, net::ssl::context::pem, ec);
    if (ec) return Error(StatusCode::kInvalidArgument, "--tls-key {}: {} (the certificate's PEM private key)", options.tls_key, ec.message());
    return OkStatus();
  }
};

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() {
  if (impl_->workers) impl_->workers->join();
}
const std::string& Gateway::url() const { return impl_->url; }

Result<std::unique_ptr<Gateway>> Gateway::Open(const GatewayOptions& options) {
  if (options.manager.empty()) {
    return Error(StatusCode::kInvalidArgument, "the gateway needs the manager's endpoint (--manager)");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  beast::error_code ec;
  const auto address = net::ip::make_address(options.host, ec);
  if (ec) return Error(StatusCode::kInvalidArgument, "--host {} is not an IP address", options.host);
  if (options.token.empty() && !options.http_public && !address.is_loopback()) {
    return Error(StatusCode::kFailedPrecondition,
                 "refusing to serve every slide to anyone who reaches {}: give the stack's --security folder "
                 "(requests then need its token), or --http-public for published data",
                 options.host);
  }
  const tcp::endpoint ep(address, options.port);
  // The socket the supervisor holds for this port (wire/listener.h: IPv4), else one of ours.
  const std::string at = fmt::format("tcp://{}:{}", options.host, options.port);
  if (const int fd = options.port != 0 ? wire::TakeInheritedListener(at) : -1; fd >= 0) {
    impl->acceptor.assign(ep.protocol(), fd, ec);
  } else {
    impl->acceptor.open(ep.protocol(), ec);
    if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) impl->acceptor.bind(ep, ec);
    if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return Error(StatusCode::kUnavailable, "cannot listen on {}:{}: {} (another program has the port? try --port 0)",
                 options.host, options.port, ec.message());
  }
  TESSERA_RETURN_IF_ERROR(impl->LoadTls());
  impl->url = fmt::format("{}://{}:{}", impl->tls ? "https" : "http", options.host, impl->acceptor.local_endpoint().port());
  impl->workers = std::make_unique<net::thread_pool>(static_cast<size_t>(std::max(1, impl->options.workers)));
  if (impl->options.public_url.empty()) impl->options.public_url = impl->url;
  while (impl->options.public_url.ends_with('/')) impl->options.public_url.pop_back();
  impl->handler = std::make_unique<Handler>(impl->options, impl->log);
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Status Gateway::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  m.Accept();
  std::vector<std::jthread> threads;
  for (int i = 1; i < std::max(1, m.options.threads); ++i) threads.emplace_back([&m] { m.io.run(); });
  net::steady_timer watch(m.io);
  std::function<void()> check = [&] {
    if (stop.load()) {
      m.io.stop();
      return;
    }
    watch.expires_after(std::chrono::milliseconds(100));
    watch.async_wait([&](beast::error_code) { check(); });
  };
  check();
  m.log->info("gateway serving url={}", m.url);
  if (!HasPage(m.options.web_root)) m.log->warn("{}", NoPageReason(m.options.web_root));
  m.io.run();
  threads.clear();
  // Requests queued for the workers are dropped (their connections close with the process);
  // the ones being read finish.
  m.workers->stop();
  m.workers->join();
  return OkStatus();
}

}  // namespace tessera::gateway
