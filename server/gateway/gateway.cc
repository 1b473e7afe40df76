#include "server/gateway/gateway.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "client/client.h"
#include "common/log/log.h"
#include "server/gateway/iiif.h"
#include "server/gateway/render.h"

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

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::string location;  // a redirect's target
  bool cacheable = false;
};

http::status HttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange: return http::status::bad_request;
    case StatusCode::kNotFound: return http::status::not_found;
    case StatusCode::kResourceExhausted: return http::status::payload_too_large;
    case StatusCode::kUnimplemented: return http::status::not_implemented;
    case StatusCode::kUnavailable: return http::status::service_unavailable;
    case StatusCode::kDeadlineExceeded: return http::status::gateway_timeout;
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

// Decodes %XX escapes; INVALID_ARGUMENT for a broken one or a NUL.
Result<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    if (i + 2 >= in.size() || !hex(in[i + 1]) || !hex(in[i + 2])) {
      return Error(StatusCode::kInvalidArgument, "the URL has a broken percent escape at character {}", i);
    }
    const char c = static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
    if (c == '\0') return Error(StatusCode::kInvalidArgument, "the URL holds a NUL character");
    out += c;
    i += 2;
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
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
  int64_t width = 0, height = 0;  // the mosaic at level 0
  uint32_t levels = 1;
  std::vector<ChannelStyle> styles;
  Clock::time_point fetched;
};

}  // namespace

// ---- the request handler: routes, reads pixels, renders (on the worker pool)

class Handler {
 public:
  Handler(const GatewayOptions& o, std::shared_ptr<spdlog::logger> log)
      : options_(o), client_(o.manager), log_(std::move(log)) {}

  Client& client() { return client_; }

  /// True for the event stream, which the session serves itself.
  static std::optional<std::string> EventsSlide(std::string_view path) {
    const auto parts = Split(path, '/');  // "", "api", "slides", id, "events"
    if (parts.size() == 5 && parts[1] == "api" && parts[2] == "slides" && parts[4] == "events") {
      return std::string(parts[3]);
    }
    return std::nullopt;
  }

  Reply Handle(std::string_view target, std::string_view host) {
    const size_t q = target.find('?');
    const std::string_view raw_path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    auto path = PercentDecode(raw_path);
    if (!path.ok()) return ErrorReply(path.status());
    const auto parts = Split(*path, '/');
    if (parts.size() >= 2 && parts[1] == "api") return Api(parts);
    if (parts.size() >= 4 && parts[1] == "iiif" && parts[2] == "3") return Iiif(parts, query, host);
    return Static(*path);
  }

 private:
  Reply Api(const std::vector<std::string_view>& parts) {
    if (parts.size() == 3 && parts[2] == "slides") {
      auto slides = client_.List();
      if (!slides.ok()) return ErrorReply(slides.status());
      std::string body = "[";
      for (size_t i = 0; i < slides->size(); ++i) body += (i ? ",\n" : "\n") + SummaryToJson((*slides)[i]);
      return {http::status::ok, "application/json", body + "\n]\n", {}, false};
    }
    if (parts.size() == 4 && parts[2] == "slides") {
      auto info = client_.Info(std::string(parts[3]));
      if (!info.ok()) return ErrorReply(info.status());
      return {http::status::ok, "application/json", SummaryToJson(*info) + "\n", {}, false};
    }
    return ErrorReply(Error(StatusCode::kNotFound, "no such API path: see docs/protocol.md for the gateway's"));
  }

  Result<SlideGeometry> Geometry(const std::string& id) {
    {
      std::lock_guard lock(mu_);
      if (auto it = geometry_.find(id); it != geometry_.end() && Clock::now() - it->second.fetched < kGeometryTtl) {
        return it->second;
      }
    }
    TESSERA_ASSIGN_OR_RETURN(SlideView view, client_.Describe(id));
    const ScanPlan& plan = view.summary.plan;
    SlideGeometry g;
    g.levels = view.level_count;
    for (const auto& p : view.positions) {
      g.width = std::max(g.width, static_cast<int64_t>(std::floor(p[0] + 0.5)) + plan.width);
      g.height = std::max(g.height, static_cast<int64_t>(std::floor(p[1] + 0.5)) + plan.height);
    }
    g.fetched = Clock::now();
    {
      std::lock_guard lock(mu_);
      if (auto it = geometry_.find(id); it != geometry_.end()) g.styles = it->second.styles;
    }
    if (g.styles.empty() || g.styles.size() != plan.channels.size()) {
      TESSERA_ASSIGN_OR_RETURN(g.styles, DefaultStyles(id, plan, g));
    }
    std::lock_guard lock(mu_);
    geometry_[id] = g;
    return g;
  }

  // Windows from the whole slide at its coarsest level (a few hundred pixels a side).
  Result<std::vector<ChannelStyle>> DefaultStyles(const std::string& id, const ScanPlan& plan, const SlideGeometry& g) {
    const uint32_t level = g.levels - 1;
    TESSERA_ASSIGN_OR_RETURN(Array a, client_.ReadRegion({.slide = id, .level = level, .x = 0, .y = 0,
                                                           .width = std::max<int64_t>(1, g.width >> level),
                                                           .height = std::max<int64_t>(1, g.height >> level),
                                                           .z_begin = 0, .z_end = 1}));
    std::vector<ChannelStyle> styles;
    const size_t plane = static_cast<size_t>(a.shape[2] * a.shape[3]);
    std::vector<uint16_t> values(plane);
    for (uint32_t c = 0; c < a.shape[0]; ++c) {
      for (size_t i = 0; i < plane; ++i) {
        const size_t at = a.index(c, 0, 0, 0) + i;
        values[i] = a.dtype == Dtype::kUint16 ? a.values<uint16_t>()[at] : a.values<uint8_t>()[at];
      }
      styles.push_back(DefaultStyle(values, c, static_cast<uint32_t>(a.shape[0]), plan.channels[c]));
    }
    return styles;
  }

  Reply Iiif(const std::vector<std::string_view>& parts, std::string_view query, std::string_view host) {
    const std::string id(parts[3]);
    auto g = Geometry(id);
    if (!g.ok()) return ErrorReply(g.status());
    const IiifLimits limits{.max_width = 8192, .max_height = 8192, .max_area = options_.max_output_pixels};
    const std::string base = fmt::format("http://{}/iiif/3/{}", host, id);
    if (parts.size() == 4) return {http::status::see_other, "text/plain", "", base + "/info.json", false};
    if (parts.size() == 5 && parts[4] == "info.json") {
      return {http::status::ok, "application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\"",
              InfoJson(base, g->width, g->height, static_cast<int>(g->levels), 512, limits), {}, false};
    }
    if (parts.size() != 8) {
      return ErrorReply(Error(StatusCode::kInvalidArgument,
                              "an IIIF image URL is /iiif/3/{{id}}/{{region}}/{{size}}/{{rotation}}/{{quality}}.{{format}}"));
    }
    const std::string spec = fmt::format("{}/{}/{}/{}", parts[4], parts[5], parts[6], parts[7]);
    auto req = ParseImageRequest(spec, g->width, g->height, limits);
    if (!req.ok()) return ErrorReply(req.status());
    auto styles = ApplyStyleQuery(g->styles, query);
    if (!styles.ok()) return ErrorReply(styles.status());
    const int level = ChooseLevel(*req, static_cast<int>(g->levels));
    // The region at that level: whole level pixels covering the asked box.
    const int64_t x0 = req->x >> level, y0 = req->y >> level;
    const int64_t x1 = std::max(x0 + 1, (req->x + req->w + (int64_t{1} << level) - 1) >> level);
    const int64_t y1 = std::max(y0 + 1, (req->y + req->h + (int64_t{1} << level) - 1) >> level);
    std::vector<uint32_t> channels;
    for (uint32_t c = 0; c < styles->size(); ++c) {
      if ((*styles)[c].on) channels.push_back(c);
    }
    if (channels.empty()) channels.push_back(0);  // all off: black, but of the right size
    auto a = client_.ReadRegion({.slide = id, .level = static_cast<uint32_t>(level), .x = x0, .y = y0,
                                 .width = x1 - x0, .height = y1 - y0, .channels = channels, .z_begin = 0, .z_end = 1});
    if (!a.ok()) return ErrorReply(a.status());
    std::vector<ChannelStyle> used;
    for (uint32_t c : channels) used.push_back((*styles)[c]);
    if (channels.size() == 1 && !(*styles)[channels[0]].on) used[0].on = false;
    auto image = Render(a->data, static_cast<int>(DtypeSize(a->dtype)), static_cast<int>(a->shape[0]),
                        a->shape[3], a->shape[2], used, *req);
    if (!image.ok()) return ErrorReply(image.status());
    const bool png = req->format == IiifImageRequest::Format::kPng;
    auto encoded = png ? EncodePng(*image) : EncodeJpeg(*image);
    if (!encoded.ok()) return ErrorReply(encoded.status());
    return {http::status::ok, png ? "image/png" : "image/jpeg", std::move(*encoded), {}, !a->missing_chunks};
  }

  Reply Static(const std::string& path) {
    if (options_.web_root.empty()) {
      return ErrorReply(Error(StatusCode::kNotFound, "this gateway serves no viewer page (no --web root)"));
    }
    // No way out of the web root: no "..", no hidden files, the resolved path inside it.
    for (std::string_view part : Split(path, '/')) {
      if (part == ".." || (part.size() > 1 && part[0] == '.')) {
        return ErrorReply(Error(StatusCode::kNotFound, "no such file"));
      }
    }
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root = fs::weakly_canonical(options_.web_root, ec);
    fs::path file = fs::weakly_canonical(root / fs::path(path).relative_path(), ec);
    if (!ec && fs::is_directory(file, ec)) file /= "index.html";
    const auto rel = file.lexically_relative(root);
    if (ec || rel.empty() || *rel.begin() == ".." || !fs::is_regular_file(file, ec)) {
      return ErrorReply(Error(StatusCode::kNotFound, "no such file: {}", path));
    }
    std::ifstream in(file, std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return {http::status::ok, std::string(ContentType(file)), std::move(body), {}, false};
  }

  const GatewayOptions& options_;
  Client client_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  std::map<std::string, SlideGeometry> geometry_;
};

// ---- one connection

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Handler& handler, net::thread_pool& workers, const GatewayOptions& o)
      : stream_(std::move(socket)), handler_(handler), workers_(workers), options_(o), heartbeat_(stream_.get_executor()) {}

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(options_.max_header_bytes);
    parser_->body_limit(options_.max_body_bytes);
    stream_.expires_after(std::chrono::seconds(options_.timeout_s));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
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
    const std::string target(req.target());
    if (auto slide = Handler::EventsSlide(target.substr(0, target.find('?')))) return StartEvents(*slide);
    const std::string host(req[http::field::host].empty() ? std::string_view("localhost") : req[http::field::host]);
    net::post(workers_, [self = shared_from_this(), target, host] {
      Reply r = self->handler_.Handle(target, host);
      net::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable { self->Write(std::move(r)); });
    });
  }

  void Write(Reply r) {
    auto res = std::make_shared<http::response<http::string_body>>(r.status, 11);
    res->set(http::field::server, "tessera");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::access_control_allow_origin, "*");
    res->set(http::field::access_control_allow_methods, "GET, HEAD, OPTIONS");
    res->set(http::field::access_control_allow_headers, "*");
    res->set(http::field::cache_control, r.cacheable ? "public, max-age=3600" : "no-cache");
    if (!r.location.empty()) res->set(http::field::location, r.location);
    res->keep_alive(keep_alive_);
    res->content_length(r.body.size());
    if (!head_) res->body() = std::move(r.body);
    stream_.expires_after(std::chrono::seconds(options_.timeout_s));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !self->keep_alive_) return self->Close();
      self->Read();
    });
  }

  // Server-Sent Events: one "data:" line per LandedEvent until the client goes away.
  void StartEvents(const std::string& slide) {
    auto info = handler_.client().Info(slide);
    if (!info.ok()) return Write(ErrorReply(info.status()));
    std::weak_ptr<Session> weak = weak_from_this();
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
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n: tessera events\n\n");
    Heartbeat();
  }

  void Heartbeat() {
    heartbeat_.expires_after(kEventsHeartbeat);
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
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
    stream_.expires_after(std::chrono::seconds(options_.timeout_s));
    net::async_write(stream_, net::buffer(outbox_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
    // The subscription's thread may be the one running this: let it go elsewhere.
    if (subscription_) std::thread([s = std::move(*subscription_)]() mutable {}).detach();
    subscription_.reset();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Handler& handler_;
  net::thread_pool& workers_;
  const GatewayOptions& options_;
  bool keep_alive_ = false, head_ = false, closed_ = false, writing_ = false;
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

  void Accept() {
    acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(socket), *handler, *workers, options)->Start();
      Accept();
    });
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
  const tcp::endpoint ep(address, options.port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(StatusCode::kUnavailable, "cannot listen on {}:{}: {} (another program has the port? try --port 0)",
                 options.host, options.port, ec.message());
  }
  impl->url = fmt::format("http://{}:{}", options.host, impl->acceptor.local_endpoint().port());
  impl->workers = std::make_unique<net::thread_pool>(static_cast<size_t>(std::max(1, impl->options.workers)));
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
  m.io.run();
  threads.clear();
  return OkStatus();
}

}  // namespace tessera::gateway
