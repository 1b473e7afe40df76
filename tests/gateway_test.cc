// The HTTP gateway as a browser or a script meets it: real `tessera up` processes on
// loopback, requests over real sockets.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "client/client.h"
#include "client/scanner.h"
#include "common/codec/codec.h"
#include "common/imageio/tiff.h"
#include "common/pyramid/pyramid.h"
#include "common/synth/synthetic_mosaic.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

const std::string kMist = "../shared/data/mist-5x5";

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

// One connection to the gateway; requests on it keep it alive.
class HttpConnection {
 public:
  explicit HttpConnection(const std::string& url) : socket_(io_) {
    const auto hostport = url.substr(url.find("//") + 2);
    const auto colon = hostport.rfind(':');
    tcp::resolver resolver(io_);
    net::connect(socket_, resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
  }

  Response Get(const std::string& target) { return Send(http::verb::get, target, {}); }

  // Any method, with extra headers (Range, If-None-Match, ...); the stack's token unless `auth` is false.
  Response Send(http::verb verb, const std::string& target, const std::map<std::string, std::string>& headers,
                bool auth = true) {
    http::request<http::empty_body> req(verb, target, 11);
    req.set(http::field::host, "localhost");
    if (auth && !CurrentToken().empty()) req.set(http::field::authorization, "Bearer " + CurrentToken());
    for (const auto& [name, value] : headers) req.set(name, value);
    req.keep_alive(true);
    http::write(socket_, req);
    return Read(verb == http::verb::head);
  }

  // Raw bytes, for malformed requests; the answer, or status 0 if the gateway closed.
  Response Raw(const std::string& bytes) {
    net::write(socket_, net::buffer(bytes));
    try {
      return Read();
    } catch (const std::exception&) {
      return {};
    }
  }

  // Raw bytes, and what comes back until the end of the response's headers (for an event
  // stream, which never ends).
  std::string RawHead(const std::string& bytes) {
    net::write(socket_, net::buffer(bytes));
    std::string head;
    beast::error_code ec;
    net::read_until(socket_, net::dynamic_buffer(head), "\r\n\r\n", ec);
    return head;
  }

 private:
  Response Read(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);  // a HEAD answer's Content-Length announces a body that does not follow
    parser.body_limit(64 << 20);
    http::read(socket_, buffer_, parser);
    auto res = parser.release();
    Response r{static_cast<int>(res.result_int()), {}, res.body()};
    for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
    return r;
  }

  net::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

Response Get(const std::string& url, const std::string& target) { return HttpConnection(url).Get(target); }

// The header a raw request needs on the stack under test.
std::string Auth() { return CurrentToken().empty() ? "" : "Authorization: Bearer " + CurrentToken() + "\r\n"; }

std::string ScanMist(const Stack& stack) {
  auto scan = RunTessera({"scan", "--tile-config", kMist + "/TileConfiguration.txt", "--server", stack.manager()});
  EXPECT_EQ(scan.exit_code, 0) << scan.err;
  return scan.LastLine();
}

TEST(GatewayTest, RestListsSlidesAndGivesWhatInfoJsonGives) {
  Stack stack;
  const std::string id = ScanMist(stack);
  const std::string url = stack.endpoint("http");
  ASSERT_FALSE(url.empty()) << "the ready line names no http endpoint";

  auto list = Get(url, "/api/slides");
  ASSERT_EQ(list.status, 200) << list.body;
  auto slides = nlohmann::json::parse(list.body);
  ASSERT_EQ(slides.size(), 1u);
  EXPECT_EQ(slides[0]["id"], id);
  EXPECT_FALSE(list.headers.contains("Access-Control-Allow-Origin")) << "no origin is allowed unless configured";

  auto one = Get(url, "/api/slides/" + id);
  ASSERT_EQ(one.status, 200);
  auto info = RunTessera({"info", id, "--json", "--server", stack.manager()});
  EXPECT_EQ(nlohmann::json::parse(one.body), nlohmann::json::parse(info.out));
  EXPECT_EQ(nlohmann::json::parse(one.body)["tiles"].size(), 25u);

  auto missing = Get(url, "/api/slides/s999999");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(nlohmann::json::parse(missing.body)["error"], "NOT_FOUND");
}

TEST(GatewayTest, IiifInfoAndTilesFromTheZoomLevels) {
  Stack stack;
  const std::string id = ScanMist(stack);
  HttpConnection conn(stack.endpoint("http"));  // every request below on one kept-alive connection

  auto info = conn.Get("/iiif/3/" + id + "/info.json");
  ASSERT_EQ(info.status, 200) << info.body;
  auto j = nlohmann::json::parse(info.body);
  EXPECT_EQ(j["@context"], "http://iiif.io/api/image/3/context.json");
  EXPECT_EQ(j["type"], "ImageService3");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["id"], stack.endpoint("http") + "/iiif/3/" + id);  // its own URL, not the Host header
  // The mist mosaic: the extreme tile positions plus a 245 x 183 tile (tessera info --json).
  auto slide = nlohmann::json::parse(RunTessera({"info", id, "--json", "--server", stack.manager()}).out);
  int64_t w = 0, h = 0;
  for (const auto& t : slide["tiles"]) {
    w = std::max<int64_t>(w, static_cast<int64_t>(std::floor(t["x"].get<double>() + 0.5)) + 245);
    h = std::max<int64_t>(h, static_cast<int64_t>(std::floor(t["y"].get<double>() + 0.5)) + 183);
  }
  EXPECT_EQ(j["width"], w);
  EXPECT_EQ(j["height"], h);
  ASSERT_FALSE(j["tiles"].empty());
  ASSERT_FALSE(j["sizes"].empty());

  auto tile = conn.Get("/iiif/3/" + id + "/0,0,512,512/256,/0/default.jpg");
  ASSERT_EQ(tile.status, 200) << tile.body;
  EXPECT_EQ(tile.headers["Content-Type"], "image/jpeg");
  ASSERT_GT(tile.body.size(), 100u);
  EXPECT_EQ(static_cast<unsigned char>(tile.body[0]), 0xFF);
  EXPECT_EQ(static_cast<unsigned char>(tile.body[1]), 0xD8);

  auto png = conn.Get("/iiif/3/" + id + "/full/max/0/gray.png");
  ASSERT_EQ(png.status, 200) << png.body;
  EXPECT_EQ(png.body.substr(1, 3), "PNG");
  // IHDR: width and height, big-endian, at bytes 16..23.
  auto be32 = [&](size_t at) {
    return (static_cast<uint32_t>(static_cast<unsigned char>(png.body[at])) << 24) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png.body[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<unsigned char>(png.body[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<unsigned char>(png.body[at + 3]));
  };
  EXPECT_EQ(be32(16), static_cast<uint32_t>(w));
  EXPECT_EQ(be32(20), static_cast<uint32_t>(h));
}

TEST(GatewayTest, BadRequestsGetTheStatusTheSpecNames) {
  Stack stack;
  const std::string id = ScanMist(stack);
  HttpConnection conn(stack.endpoint("http"));
  const std::string base = "/iiif/3/" + id;
  EXPECT_EQ(conn.Get(base + "/0,0,0,10/max/0/default.jpg").status, 400);       // empty region
  EXPECT_EQ(conn.Get(base + "/99999,0,10,10/max/0/default.jpg").status, 400);  // wholly outside
  EXPECT_EQ(conn.Get(base + "/full/max/45/default.jpg").status, 501);          // rotation
  EXPECT_EQ(conn.Get(base + "/full/max/0/default.webp").status, 501);          // format
  EXPECT_EQ(conn.Get(base + "/full/99999,/0/default.jpg").status, 400);        // upscale without ^
  EXPECT_EQ(conn.Get(base + "/full/max/0").status, 400);
  EXPECT_EQ(conn.Get("/iiif/3/s999999/info.json").status, 404);
  EXPECT_EQ(conn.Get("/../../etc/passwd").status, 404);
  EXPECT_EQ(conn.Get("/%2e%2e/%2e%2e/etc/passwd").status, 404);
  EXPECT_EQ(conn.Get("/%zz").status, 400);
  EXPECT_EQ(conn.Get(base + "/info.json").status, 200);  // still serving, same connection
}

// The pixels of a .npy body: its header parsed just enough to check dtype and shape.
std::vector<uint8_t> NpyData(const std::string& body, std::array<int64_t, 4> shape) {
  EXPECT_EQ(body.substr(0, 6), "\x93NUMPY");
  const size_t header_len = static_cast<unsigned char>(body[8]) | (static_cast<unsigned char>(body[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  const std::string header = body.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<u2'"), std::string::npos) << header;
  EXPECT_NE(header.find(fmt::format("'shape': ({}, {}, {}, {})", shape[0], shape[1], shape[2], shape[3])),
            std::string::npos)
      << header;
  return {body.begin() + static_cast<std::ptrdiff_t>(10 + header_len), body.end()};
}

TEST(GatewayTest, RawRegionsAsNpyAndTiffEqualTheClientLibrarys) {
  Stack stack;
  const std::string id = ScanMist(stack);
  HttpConnection conn(stack.endpoint("http"));
  Client client(stack.manager());
  auto want = client.ReadRegion({.slide = id, .level = 1, .x = 100, .y = 50, .width = 300, .height = 200});
  ASSERT_TRUE(want.ok()) << want.status().ToString();

  auto npy = conn.Get("/api/slides/" + id + "/region.npy?level=1&x=100&y=50&width=300&height=200");
  ASSERT_EQ(npy.status, 200) << npy.body;
  EXPECT_EQ(npy.headers["Content-Disposition"], "attachment; filename=\"" + id + "_L1_x100_y50_300x200.npy\"");
  EXPECT_EQ(NpyData(npy.body, {1, 1, 200, 300}), want->data);

  auto tiff = conn.Get("/api/slides/" + id + "/region.tiff?level=1&x=100&y=50&width=300&height=200&channels=0&z=0");
  ASSERT_EQ(tiff.status, 200) << tiff.body;
  EXPECT_EQ(tiff.headers["Content-Type"], "image/tiff");
  const auto path = std::filesystem::path(stack.data_dir()) / "region.tif";
  std::ofstream(path, std::ios::binary) << tiff.body;
  auto image = imageio::ReadTiff(path.string());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 300u);
  EXPECT_EQ(image->height, 200u);
  EXPECT_EQ(image->pixels, want->data);

  // Wrong input: a clear 4xx, and the connection keeps serving.
  const std::string base = "/api/slides/" + id + "/region.npy?";
  EXPECT_EQ(conn.Get(base + "x=0&y=0&width=10").status, 400);                  // no height
  EXPECT_EQ(conn.Get(base + "x=-1&y=0&width=10&height=10").status, 400);       // not a count
  EXPECT_EQ(conn.Get(base + "width=10&height=10&level=40").status, 404);       // no such level
  EXPECT_EQ(conn.Get(base + "width=10&height=10&channels=3").status, 400);     // no such channel
  EXPECT_EQ(conn.Get(base + "width=10&height=10&z=1:1").status, 400);          // empty planes
  EXPECT_EQ(conn.Get(base + "x=99999&y=0&width=10&height=10").status, 400);    // outside the mosaic
  EXPECT_EQ(conn.Get(base + "width=100000&height=100000").status, 413);        // over the limit
  EXPECT_EQ(conn.Get("/api/slides/s999999/region.npy?width=1&height=1").status, 404);
  EXPECT_EQ(conn.Get(base + "width=1&height=1").status, 200);
}

TEST(GatewayTest, DisplayAndPixelGiveWhatTheViewerShows) {
  Stack stack;
  const std::string id = ScanMist(stack);
  HttpConnection conn(stack.endpoint("http"));
  auto display = conn.Get("/api/slides/" + id + "/display");
  ASSERT_EQ(display.status, 200) << display.body;
  auto d = nlohmann::json::parse(display.body);
  auto info = nlohmann::json::parse(conn.Get("/iiif/3/" + id + "/info.json").body);
  EXPECT_EQ(d["width"], info["width"]);
  EXPECT_EQ(d["height"], info["height"]);
  EXPECT_EQ(d["levels"], info["tiles"][0]["scaleFactors"].size());
  ASSERT_EQ(d["channels"].size(), 1u);
  const auto& c = d["channels"][0];
  EXPECT_EQ(c["color"], "ffffff");  // the only channel
  EXPECT_LT(c["min"].get<int>(), c["max"].get<int>());
  EXPECT_EQ(d["views"], nlohmann::json({"raw"}));

  Client client(stack.manager());
  auto want = client.ReadRegion({.slide = id, .x = 300, .y = 200, .width = 1, .height = 1});
  ASSERT_TRUE(want.ok());
  auto pixel = conn.Get("/api/slides/" + id + "/pixel?x=300&y=200");
  ASSERT_EQ(pixel.status, 200) << pixel.body;
  EXPECT_EQ(nlohmann::json::parse(pixel.body)["values"], nlohmann::json({want->values<uint16_t>()[0]}));
  EXPECT_EQ(conn.Get("/api/slides/" + id + "/pixel?x=300").status, 400);
  EXPECT_EQ(conn.Get("/api/slides/" + id + "/pixel?x=300&y=99999").status, 400);

  // The window decides the picture: everything above max is white, everything below min black.
  auto white = conn.Get("/iiif/3/" + id + "/full/64,/0/gray.png?window0=0,1");
  auto black = conn.Get("/iiif/3/" + id + "/full/64,/0/gray.png?channels=");
  ASSERT_EQ(white.status, 200);
  ASSERT_EQ(black.status, 200);
  EXPECT_NE(white.body, black.body);
  EXPECT_EQ(conn.Get("/iiif/3/" + id + "/full/64,/0/gray.png?window0=9,1").status, 400);
  EXPECT_EQ(conn.Get("/iiif/3/" + id + "/full/64,/0/gray.png?color5=ffffff").status, 400);
}

TEST(GatewayTest, NeuroglancerPrecomputedChunksAreTheLevelsRawPixels) {
  Stack stack;
  const std::string id = ScanMist(stack);
  HttpConnection conn(stack.endpoint("http"));
  auto info_reply = conn.Get("/precomputed/" + id + "/info");
  ASSERT_EQ(info_reply.status, 200) << info_reply.body;
  auto info = nlohmann::json::parse(info_reply.body);
  EXPECT_EQ(info["@type"], "neuroglancer_multiscale_volume");
  EXPECT_EQ(info["data_type"], "uint16");
  EXPECT_EQ(info["num_channels"], 1);
  ASSERT_GE(info["scales"].size(), 2u);
  const auto& s1 = info["scales"][1];
  EXPECT_EQ(s1["encoding"], "raw");
  EXPECT_DOUBLE_EQ(s1["resolution"][0].get<double>(), 2 * info["scales"][0]["resolution"][0].get<double>());
  const int64_t w1 = s1["size"][0], h1 = s1["size"][1];

  Client client(stack.manager());
  auto want = client.ReadRegion({.slide = id, .level = 1, .x = 0, .y = 0, .width = 128, .height = 64});
  ASSERT_TRUE(want.ok());
  auto chunk = conn.Get("/precomputed/" + id + "/1/0-128_0-64_0-1");
  ASSERT_EQ(chunk.status, 200);
  EXPECT_EQ(std::vector<uint8_t>(chunk.body.begin(), chunk.body.end()), want->data);
  // The last chunk of a level reaches its edge exactly; one pixel past it is an error.
  auto edge = conn.Get(fmt::format("/precomputed/{}/1/{}-{}_{}-{}_0-1", id, w1 - 10, w1, h1 - 5, h1));
  ASSERT_EQ(edge.status, 200) << edge.body;
  EXPECT_EQ(edge.body.size(), 10u * 5u * 2u);
  EXPECT_EQ(conn.Get(fmt::format("/precomputed/{}/1/0-{}_0-5_0-1", id, w1 + 1)).status, 400);
  EXPECT_EQ(conn.Get("/precomputed/" + id + "/1/0-0_0-5_0-1").status, 400);
  EXPECT_EQ(conn.Get("/precomputed/" + id + "/9/0-1_0-1_0-1").status, 404);
}

TEST(GatewayTest, AnAcquiringSlidesTilesLandAsEventsAndAreNotCached) {
  Stack stack;
  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 2, o.width = 300, o.height = 200, o.channels = 1;
  synth::SyntheticMosaic mosaic(o);
  auto scanner = Scanner::Open(stack.manager(), mosaic.plan());
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  const std::string id = (*scanner)->slide_id();
  const ScanPlan& plan = (*scanner)->plan();
  const std::string url = stack.endpoint("http");

  // The event stream, read on its own thread: every "data:" line's landed frames.
  const auto hostport = url.substr(url.find("//") + 2);
  net::io_context io;
  tcp::socket events(io);
  tcp::resolver resolver(io);
  net::connect(events, resolver.resolve(hostport.substr(0, hostport.rfind(':')), hostport.substr(hostport.rfind(':') + 1)));
  net::write(events, net::buffer("GET /api/slides/" + id + "/events HTTP/1.1\r\nHost: x\r\n" + Auth() + "\r\n"));
  std::mutex mu;
  std::condition_variable cv;
  std::set<uint64_t> landed;
  std::string head, received;
  std::thread reader([&] {
    std::string text;
    char buf[4096];
    boost::system::error_code ec;
    for (size_t n; (n = events.read_some(net::buffer(buf), ec)) > 0 && !ec;) {
      text.append(buf, n);
      std::lock_guard lock(mu);
      received.append(buf, n);
      if (head.empty() && text.find("\r\n\r\n") != std::string::npos) head = text.substr(0, text.find("\r\n\r\n"));
      for (size_t at; (at = text.find("\n\n")) != std::string::npos; text.erase(0, at + 2)) {
        const std::string event = text.substr(0, at);
        if (!event.starts_with("data: ")) continue;
        const auto j = nlohmann::json::parse(event.substr(6));
        for (uint64_t f : j["landed"]) landed.insert(f);
      }
      cv.notify_all();
    }
  });
  std::vector<uint8_t> pixels(plan.frame_bytes());
  for (uint64_t f = 0; f < plan.frame_count(); ++f) {  // one by one: the subscription takes hold meanwhile
    mosaic.RenderFrame(plan.KeyOf(f), pixels);
    ASSERT_TRUE((*scanner)->Push(plan.KeyOf(f), pixels).ok());
    ASSERT_TRUE((*scanner)->Flush().ok());
    std::unique_lock lock(mu);
    const bool seen = cv.wait_for(lock, std::chrono::seconds(f + 1 == plan.frame_count() ? 20 : 1),
                                  [&] { return landed.contains(f); });
    if (f + 1 == plan.frame_count()) {
      EXPECT_TRUE(seen) << "no event for the last frame; the stream was:\n" << received;
    }
  }
  {
    std::lock_guard lock(mu);
    EXPECT_NE(head.find("text/event-stream"), std::string::npos) << head;
  }
  auto tile = Get(url, "/iiif/3/" + id + "/0,0,256,256/256,/0/default.jpg");
  ASSERT_EQ(tile.status, 200) << tile.body;
  EXPECT_EQ(tile.headers["Cache-Control"], "no-cache");  // an acquiring slide's tiles change
  ASSERT_TRUE((*scanner)->Close().ok());
  events.shutdown(tcp::socket::shutdown_both);
  reader.join();
  EXPECT_EQ(Get(url, "/api/slides/s999999/events").status, 404);
}

// What a web page of another site, open in the user's browser, could read from a stack on
// localhost: nothing, unless its origin is configured. And the URLs the gateway writes never
// come from the Host header.
TEST(GatewayTest, OnlyConfiguredOriginsMayReadAndTheHostHeaderIsNotTrusted) {
  Stack stack({"--cors-origin", "https://viewer.lab.example"});
  const std::string id = ScanMist(stack);
  const std::string url = stack.endpoint("http");
  auto ask = [&](const std::string& target, const std::string& headers) {
    return HttpConnection(url).Raw("GET " + target + " HTTP/1.1\r\nHost: evil.example\r\n" + Auth() + headers + "\r\n");
  };
  auto foreign = ask("/api/slides", "Origin: https://evil.example\r\n");
  EXPECT_EQ(foreign.status, 200);
  EXPECT_FALSE(foreign.headers.contains("Access-Control-Allow-Origin"));
  auto allowed = ask("/api/slides", "Origin: https://viewer.lab.example\r\n");
  EXPECT_EQ(allowed.headers["Access-Control-Allow-Origin"], "https://viewer.lab.example");
  {  // the event stream answers CORS alike: its headers come first, then events until closed
    HttpConnection sse(url);
    const std::string head = sse.RawHead("GET /api/slides/" + id + "/events HTTP/1.1\r\nHost: x\r\n" + Auth() +
                                         "Origin: https://viewer.lab.example\r\n\r\n");
    EXPECT_NE(head.find("Access-Control-Allow-Origin: https://viewer.lab.example"), std::string::npos) << head;
  }
  {
    HttpConnection sse(url);
    const std::string head = sse.RawHead("GET /api/slides/" + id + "/events HTTP/1.1\r\nHost: x\r\n" + Auth() +
                                         "Origin: https://evil.example\r\n\r\n");
    EXPECT_NE(head.find("text/event-stream"), std::string::npos) << head;
    EXPECT_EQ(head.find("Access-Control-Allow-Origin"), std::string::npos) << head;
  }
  auto info = ask("/iiif/3/" + id + "/info.json", "");
  ASSERT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(nlohmann::json::parse(info.body)["id"], url + "/iiif/3/" + id);
  EXPECT_EQ(info.body.find("evil.example"), std::string::npos);
}

TEST(GatewayTest, RegionSizesThatWouldOverflowAreRefused) {
  Stack stack;
  const std::string id = ScanMist(stack);
  const std::string url = stack.endpoint("http");
  const std::string base = "/api/slides/" + id + "/region.npy?";
  // 2^32 x 2^32 x 2 bytes wraps a 64-bit product to 0: it must not pass the size limit.
  EXPECT_EQ(Get(url, base + "width=4294967296&height=4294967296").status, 413);
  EXPECT_EQ(Get(url, base + "width=4294967295&height=4294967295").status, 413);
  EXPECT_EQ(Get(url, base + "width=99999999999999999999&height=1").status, 400);
  EXPECT_EQ(Get(url, base + "x=9223372036854775807&width=2&height=2").status, 400);
  EXPECT_EQ(Get(url, base + "width=64&height=64").status, 200);  // and a sane one is served
}

TEST(GatewayTest, ThousandsOfMalformedRequestsAllGetAnAnswer) {
  Stack stack;
  const std::string id = ScanMist(stack);
  const std::string url = stack.endpoint("http");
  std::mt19937 rng(7);
  const std::string alphabet = "abcxyz0123456789,.:!^%/?&=-_~ \t\"<>\\";
  const std::vector<std::string> parts = {"full", "square", "max", "pct:", "0", "90", "!", "^", "default.jpg",
                                          "gray.png", "info.json", ",", "..", "%", "%00", "-1", "1e9",
                                          "99999999999999999999", id};
  int answered = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string target = "/iiif/3/";
    const int n = static_cast<int>(rng() % 7);
    for (int k = 0; k < n; ++k) {
      if (rng() % 3 == 0) {
        for (int c = static_cast<int>(rng() % 6); c > 0; --c) target += alphabet[rng() % alphabet.size()];
      } else {
        target += parts[rng() % parts.size()];
      }
      target += rng() % 4 ? "/" : "";
    }
    HttpConnection conn(url);
    const bool raw = rng() % 5 == 0;  // a broken request line or header as well
    Response r = raw ? conn.Raw("GET " + target + (rng() % 2 ? " HTTP/1.1\r\nHost: x\r\n\r\n" : "\r\n\r\n"))
                     : conn.Get(target.find_first_of(" \t\"<>\\") == std::string::npos ? target : "/iiif/3/x%20y");
    // A 4xx says what is wrong with the request; a 5xx would be the gateway's own failure.
    if (r.status >= 200 && r.status < 500) ++answered;
    else EXPECT_TRUE(raw && r.status == 0) << target << " -> " << r.status;  // only a broken line may be closed
  }
  EXPECT_GT(answered, 2400);
  EXPECT_EQ(Get(url, "/iiif/3/" + id + "/info.json").status, 200);  // and the gateway is up
}

}  // namespace
}  // namespace tessera::testing

namespace tessera::testing {
namespace {

TEST(GatewayTest, AStitchedSlideOffersItsFusedViewToViewers) {
  Stack stack({"--auto-stitch", "true"});
  const std::string id = ScanMist(stack);  // stitched by itself as it closes
  auto waited = RunTessera({"stitch", id, "--wait", "--server", stack.manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  const std::string url = stack.endpoint("http");
  auto display = Get(url, "/api/slides/" + id + "/display");
  ASSERT_EQ(display.status, 200) << display.body;
  EXPECT_EQ(nlohmann::json::parse(display.body)["views"], (nlohmann::json{"raw", "fused"})) << display.body;
  // The same tile of both views, in the same window (each view's default comes from its own
  // histogram): the crops' overlaps are identical, so the pictures are too.
  HttpConnection conn(url);
  const std::string tile = "/iiif/3/" + id + "/0,0,512,512/512,/0/default.png?window0=0,40000";
  auto raw = conn.Get(tile);
  auto fused = conn.Get(tile + "&view=fused");
  ASSERT_EQ(raw.status, 200) << raw.body;
  ASSERT_EQ(fused.status, 200) << fused.body;
  EXPECT_EQ(fused.headers["Content-Type"], "image/png");
  EXPECT_TRUE(fused.body == raw.body) << "the fused tile differs from the raw one";
  auto region = conn.Get("/api/slides/" + id + "/region.npy?width=64&height=64&view=fused");
  EXPECT_EQ(region.status, 200) << region.body;
  EXPECT_EQ(conn.Get(tile + "&view=sideways").status, 400);
  // A slide scanned with --no-stitch has no fused view.
  auto plain = RunTessera({"scan", "--no-stitch", "--tile-config", kMist + "/TileConfiguration.txt", "--server",
                           stack.manager()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  auto plain_display = conn.Get("/api/slides/" + plain.LastLine() + "/display");
  EXPECT_EQ(nlohmann::json::parse(plain_display.body)["views"], (nlohmann::json{"raw"}));
  EXPECT_EQ(conn.Get("/iiif/3/" + plain.LastLine() + "/info.json?view=fused").status, 404);
}

// zarr-python (Debian's 2.13, through fsspec's HTTP) reads a stitched slide served by the
// default stack: fields of view, the mosaic and the fused view, equal to what h5py reads from
// the files, every field chunk the stored HDF5 chunk byte for byte (tests/verify_zarr.py).
TEST(GatewayZarrTest, ZarrPythonReadsFieldsMosaicAndFusedViewAsStoredAndExported) {
  Stack stack({"--auto-stitch", "true"});
  const std::string id = ScanMist(stack);
  auto waited = RunTessera({"stitch", id, "--wait", "--server", stack.manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  auto info = RunTessera({"info", id, "--json", "--server", stack.manager()});
  auto fused = RunTessera({"info", id + ":fused", "--json", "--server", stack.manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  ASSERT_EQ(fused.exit_code, 0) << fused.err;
  const std::string info_file = FreshDir("zarr") + "/info.json";
  std::ofstream(info_file) << info.out;
  // zarrita (npm) reads the same images through the Zarr v3 routes, in node.
  const std::string dumps = FreshDir("zarrita");
  const int fields = static_cast<int>(nlohmann::json::parse(info.out)["tiles"].size());
  std::vector<std::string> node = {"/usr/bin/env", "node", "tests/browser/zarrita_test.mjs", stack.endpoint("http"),
                                   stack.token(), dumps, id, id + ":fused"};
  for (int t : {0, fields / 2, fields - 1}) node.push_back(fmt::format("{}/fields/{}", id, t));
  auto zarrita = RunProgram(node);
  ASSERT_EQ(zarrita.exit_code, 0) << zarrita.out << zarrita.err;
  auto verify = RunProgram({"/usr/bin/python3", "tests/verify_zarr.py", stack.endpoint("http"), stack.token(), id,
                            nlohmann::json::parse(info.out)["path"], nlohmann::json::parse(fused.out)["path"],
                            info_file, "--zarrita", dumps});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("verified"), std::string::npos) << verify.out;
  EXPECT_EQ(verify.out.find("; 0 levels read by zarrita"), std::string::npos) << "zarrita's reads were not checked";

  // `tessera export --format ome-zarr`: the same images on disk, the stored chunks copied.
  const std::string out = FreshDir("export");
  auto slide_export = RunTessera({"export", id, "-o", out + "/slide.zarr", "--server", stack.manager()});
  ASSERT_EQ(slide_export.exit_code, 0) << slide_export.err;
  EXPECT_NE(slide_export.out.find("copied as stored"), std::string::npos) << slide_export.out;
  auto fused_export = RunTessera({"export", id + ":fused", "-o", out + "/fused.zarr", "--server", stack.manager()});
  ASSERT_EQ(fused_export.exit_code, 0) << fused_export.err;
  // `--format ome-tiff`: pyramidal OME-TIFF of the mosaic and of the fused view; a region of
  // interest as OME-TIFF, and as OME-Zarr from level 1 (reaching past the mosaic's edge there).
  auto export_as = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "export");
    args.insert(args.end(), {"--server", stack.manager()});
    auto r = RunTessera(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  };
  EXPECT_NE(export_as({id, "--format", "ome-tiff", "-o", out + "/slide.ome.tif"}).out.find("as OME-TIFF"),
            std::string::npos);
  EXPECT_NE(export_as({id + ":fused", "--format", "ome-tiff", "-o", out + "/fused.ome.tif"}).out.find("as stored"),
            std::string::npos);
  export_as({id, "--format", "ome-tiff", "--region", "100,50,600,400", "-o", out + "/roi.ome.tif"});
  auto roi_zarr = export_as({id, "--region", "100,50,600,400", "--level", "1", "-o", out + "/roi.zarr"});
  EXPECT_NE(roi_zarr.err.find("reaches outside the mosaic"), std::string::npos) << roi_zarr.err;
  auto exported = RunProgram({"/usr/bin/python3", "tests/verify_export.py", out + "/slide.zarr",
                              nlohmann::json::parse(info.out)["path"], out + "/fused.zarr",
                              nlohmann::json::parse(fused.out)["path"], "--gateway", stack.endpoint("http"),
                              stack.token(), id, "--info", info_file, "--tiff", out + "/slide.ome.tif",
                              out + "/fused.ome.tif", "--roi-tiff", out + "/roi.ome.tif", "100,50,600,400",
                              "--roi-zarr", out + "/roi.zarr", "100,50,600,400", "1"});
  EXPECT_EQ(exported.exit_code, 0) << exported.out << exported.err;
  EXPECT_NE(exported.out.find("verified"), std::string::npos) << exported.out;
  EXPECT_NE(exported.out.find("; 9 exported levels equal"), std::string::npos) << exported.out;
  // A 3-D box of a z stack with two channels: the same stack `tessera get --box` reads.
  auto stack_scan = RunTessera({"scan", "--synthetic", "--no-stitch", "--cols", "2", "--rows", "1", "--width", "320",
                                "--height", "256", "--channels", "2", "--z", "4", "--server", stack.manager()});
  ASSERT_EQ(stack_scan.exit_code, 0) << stack_scan.err;
  const std::string zid = stack_scan.LastLine();
  export_as({zid, "--format", "ome-tiff", "--box", "30,20,1,500,200,2", "-o", out + "/box.ome.tif"});
  auto got = RunTessera({"get", zid, "--box", "30,20,1,500,200,2", "-o", out + "/box.tif", "--server", stack.manager()});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  auto same = RunProgram({"/usr/bin/python3", "-c",
                          "import sys, tifffile, numpy as np\n"
                          "s = tifffile.TiffFile(sys.argv[1]).series[0]\n"
                          "a, b = s.asarray(), tifffile.TiffFile(sys.argv[2]).series[0].asarray()\n"
                          "assert s.axes == 'ZCYX' and a.shape == (2, 2, 200, 500), (s.axes, a.shape)\n"
                          "assert len(s.levels) == 1 and np.array_equal(a, b.reshape(a.shape))\n"
                          "print('same')\n",
                          out + "/box.ome.tif", out + "/box.tif"});
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  auto outside = RunTessera({"export", zid, "--format", "ome-tiff", "--box", "30,20,9,500,200,2", "-o",
                             out + "/no.tif", "--server", stack.manager()});
  EXPECT_NE(outside.exit_code, 0);
  EXPECT_NE(outside.err.find("lies outside the mosaic"), std::string::npos) << outside.err;
  EXPECT_FALSE(std::filesystem::exists(out + "/no.tif.partial"));
  // An existing folder is never written over.
  auto again = RunTessera({"export", id, "-o", out + "/slide.zarr", "--server", stack.manager()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
}

// What TensorStore, Neuroglancer and zarr readers ask of a chunk server: HEAD, byte ranges
// (suffixes too), strong ETags with conditions, 404 for a chunk not yet written, the same bytes
// under Zarr v3 keys; and the token every other route needs.
TEST(GatewayZarrTest, ChunksAnswerHeadRangesAndConditionsAndLandLive) {
  Stack stack;
  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 1, o.width = 300, o.height = 200, o.channels = 1;
  synth::SyntheticMosaic mosaic(o);
  auto scanner = Scanner::Open(stack.manager(), mosaic.plan());
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  const std::string id = (*scanner)->slide_id();
  const ScanPlan& plan = (*scanner)->plan();
  HttpConnection conn(stack.endpoint("http"));
  const std::string first = "/zarr/" + id + "/fields/0/0/0/0/0/0", second = "/zarr/" + id + "/fields/1/0/0/0/0/0";
  std::vector<uint8_t> pixels(plan.frame_bytes());
  mosaic.RenderFrame(plan.KeyOf(0), pixels);
  ASSERT_TRUE((*scanner)->Push(plan.KeyOf(0), pixels).ok());
  ASSERT_TRUE((*scanner)->Flush().ok());
  ASSERT_TRUE(WaitFor([&] { return conn.Get(first).status == 200; }));
  EXPECT_EQ(conn.Get(second).status, 404) << "field 1 has not been pushed yet";
  auto live_meta = conn.Get("/zarr/" + id + "/fields/1/.zmetadata");
  ASSERT_EQ(live_meta.status, 200) << live_meta.body;  // fixed by the plan from the start
  EXPECT_EQ(live_meta.headers["Cache-Control"], "no-cache");

  auto chunk = conn.Get(first);
  ASSERT_EQ(chunk.status, 200);
  const std::string etag = chunk.headers["ETag"];
  ASSERT_TRUE(etag.size() == 18 && etag.front() == '"' && etag.back() == '"') << etag;
  EXPECT_EQ(chunk.headers["Accept-Ranges"], "bytes");
  EXPECT_EQ(chunk.headers["Cache-Control"], "public, max-age=3600");  // a stored chunk never changes
  const size_t n = chunk.body.size();
  ASSERT_GT(n, 16u);
  auto head = conn.Send(http::verb::head, first, {});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["Content-Length"], std::to_string(n));
  EXPECT_FALSE(head.headers.contains("Content-Encoding"));
  auto part = conn.Send(http::verb::get, first, {{"Range", "bytes=0-15"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.headers["Content-Range"], fmt::format("bytes 0-15/{}", n));
  EXPECT_EQ(part.body, chunk.body.substr(0, 16));
  auto suffix = conn.Send(http::verb::get, first, {{"Range", "bytes=-10"}});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.body, chunk.body.substr(n - 10));
  auto beyond = conn.Send(http::verb::get, first, {{"Range", fmt::format("bytes={}-", n)}});
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.headers["Content-Range"], fmt::format("bytes */{}", n));
  auto same = conn.Send(http::verb::get, first, {{"If-None-Match", etag}});
  EXPECT_EQ(same.status, 304);
  EXPECT_TRUE(same.body.empty());
  EXPECT_EQ(conn.Send(http::verb::get, first, {{"If-None-Match", "\"0000000000000000\""}}).status, 200);
  EXPECT_EQ(conn.Send(http::verb::get, first, {{"If-Match", "\"0000000000000000\""}}).status, 412);
  EXPECT_EQ(conn.Send(http::verb::get, first, {{"If-Match", etag}}).status, 200);
  // The chunk is the stored Blosc frame: it decodes to the frame's first chunk.
  std::vector<uint8_t> decoded(plan.chunk_bytes());
  ASSERT_TRUE(codec::Decompress(std::span(reinterpret_cast<const uint8_t*>(chunk.body.data()), n), decoded).ok());
  std::vector<uint8_t> want(plan.chunk_bytes());
  pyramid::ExtractChunk(pixels, plan.Level(0), DtypeSize(plan.dtype), 0, 0, want);
  EXPECT_TRUE(decoded == want);
  // Zarr v3: the same bytes under its keys; OME 0.5 attributes on the group.
  auto v3 = conn.Get("/zarr3/" + id + "/fields/0/0/c/0/0/0/0");
  EXPECT_EQ(v3.status, 200);
  EXPECT_TRUE(v3.body == chunk.body);
  auto group = conn.Get("/zarr3/" + id + "/fields/0/zarr.json");
  ASSERT_EQ(group.status, 200) << group.body;
  EXPECT_EQ(nlohmann::json::parse(group.body)["attributes"]["ome"]["version"], "0.5");
  // Outside the grid, the fields, or without the token.
  EXPECT_EQ(conn.Get("/zarr/" + id + "/fields/0/0/0/0/0/9").status, 404);
  EXPECT_EQ(conn.Get("/zarr/" + id + "/fields/2/.zarray").status, 404);
  EXPECT_EQ(conn.Get("/zarr/" + id + "/fields/0/0/0/0/0/../../../.zarray").status, 404);
  EXPECT_EQ(conn.Get("/zarr/s999999/.zgroup").status, 404);
  EXPECT_EQ(conn.Send(http::verb::get, first, {}, /*auth=*/false).status, 401);

  mosaic.RenderFrame(plan.KeyOf(1), pixels);
  ASSERT_TRUE((*scanner)->Push(plan.KeyOf(1), pixels).ok());
  ASSERT_TRUE((*scanner)->Close().ok());
  EXPECT_TRUE(WaitFor([&] { return conn.Get(second).status == 200; })) << "field 1's chunk never appeared";
}

}  // namespace
}  // namespace tessera::testing
