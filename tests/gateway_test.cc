// The HTTP gateway as a browser or a script meets it: real `tessera up` processes on
// loopback, requests over real sockets.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <random>

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

  Response Get(const std::string& target) {
    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "localhost");
    req.keep_alive(true);
    http::write(socket_, req);
    return Read();
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

 private:
  Response Read() {
    http::response_parser<http::string_body> parser;
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
  EXPECT_EQ(list.headers["Access-Control-Allow-Origin"], "*");

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
  EXPECT_EQ(j["id"], "http://localhost/iiif/3/" + id);
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
    if (r.status >= 200 && r.status < 600) ++answered;
    else EXPECT_TRUE(raw) << target;  // only a broken request line may be answered by closing
  }
  EXPECT_GT(answered, 2400);
  EXPECT_EQ(Get(url, "/iiif/3/" + id + "/info.json").status, 200);  // and the gateway is up
}

}  // namespace
}  // namespace tessera::testing
