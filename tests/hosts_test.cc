// The stack over several hosts, as a lab or a cluster runs it: every role a `tessera serve`
// process in a network namespace of its own (tests/hosts.h), joined by veth links, CURVE and
// credentials on. The manager with its proxies, writers and stitchers on "store"; two tile
// dealers on "serve-a" (with the broker) and "serve-b"; a worker on each of "compute-a" and "compute-b"; the
// gateway on "web"; the scanner, a subscribed viewer and this test on "lab". A real mosaic
// (../shared/data/mist-5x5) is scanned at a microscope's pace and stitched live, and a host is
// taken away mid-scan (its processes killed, its link down), then given back: the scan finishes,
// every frame is in the file bit-exact and once, the stitch is the one a calm run computes, and
// the gateway serves the result.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "client/client.h"
#include "common/wire/wire.h"
#include "tests/hosts.h"
#include "tests/mist.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {

class HostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = Hosts::Unavailable(); !why.empty()) GTEST_SKIP() << why;
    // The client library's ZeroMQ context lives in the namespace of its first socket: one
    // such test per process (ctest runs each test in its own).
    static bool used = false;
    if (std::exchange(used, true)) GTEST_SKIP() << "run each HostsTest in a process of its own (ctest does)";
    hosts_ = std::make_unique<Hosts>(
        std::vector<std::string>{"store", "serve-a", "serve-b", "compute-a", "compute-b", "web", "lab"});
    data_ = FreshDir("hosts");
    std::filesystem::create_directories(data_ + "/logs");
    security_ = data_ + "/security";
    manager_ = "tcp://" + At("store") + ":7400";
    StartStore();
    // The roles that connect only take a credential each, issued by the manager.
    const std::string admin = security_ + "/admin.credential";
    ASSERT_TRUE(UseCredential(admin).ok());
    ::setenv("TESSERA_CREDENTIAL", admin.c_str(), 1);  // for the commands this test runs
    worker_credential_ = Issue("worker");
    scanner_credential_ = Issue("scanner");
    StartServe("serve-a");
    StartServe("serve-b");
    StartWorker("compute-a");
    StartWorker("compute-b");
    StartWeb();
    // From here on this thread, the scanner it runs and the viewer are on "lab".
    hosts_->Enter("lab");
    client_ = std::make_unique<Client>(manager_);
  }

  void TearDown() override {
    if (scan_.joinable()) scan_.join();
    subscription_.reset();
    client_.reset();
    roles_.clear();
    hosts_.reset();
  }

  std::string At(const std::string& host) const { return hosts_->address(host); }
  std::string Log(const std::string& host) const { return data_ + "/logs/" + host + ".log"; }

  void Start(const std::string& host, const std::vector<std::string>& args) {
    roles_.emplace_back(host, std::make_unique<Process>(args, Log(host), hosts_->In(host)));
  }

  // The roles a host ran are gone with it: forget their processes (already killed).
  void Forget(const std::string& host) {
    std::erase_if(roles_, [&](const auto& r) { return r.first == host; });
  }

  // The two dealers, in the manager's list (every client ranks them per slide from it).
  std::string Dealers(const std::string& port) const {
    return "tcp://" + At("serve-a") + ":" + port + ",tcp://" + At("serve-b") + ":" + port;
  }

  void StartStore() {
    Start("store", {"serve", "manager", "--data", data_, "--host", At("store"), "--bind", manager_, "--security",
                    security_, "--sync-interval-ms", "100", "--fifo-bytes", fifo_bytes_, "--events", Dealers("7402"),
                    "--endpoint", "dealer=" + Dealers("7401"), "--endpoint", "dealer_publish=" + Dealers("7403"),
                    "--endpoint", "broker=tcp://" + At("serve-a") + ":7404"});
  }

  // A tile dealer on "serve-a" or "serve-b", and the broker with the first.
  void StartServe(const std::string& host) {
    const std::string at = "tcp://" + At(host);
    Start(host, {"serve", "dealer", "--manager", manager_, "--bind", at + ":7401", "--events-bind", at + ":7402",
                 "--publish-bind", at + ":7403", "--security", security_});
    if (host == "serve-a") Start(host, {"serve", "broker", "--bind", at + ":7404", "--security", security_});
  }

  // The host of the dealer `slide` is read through while both are up.
  std::string DealerHostOf(const std::string& slide) const {
    return wire::RankDealers(slide, wire::SplitEndpoints(Dealers("7401")))[0] == 0 ? "serve-a" : "serve-b";
  }

  void StartWorker(const std::string& host) {
    Start(host, {"serve", "worker", "--broker", "tcp://" + At("serve-a") + ":7404", "--manager", manager_,
                 "--credential", worker_credential_, "--name", host});
  }

  void StartWeb() {
    Start("web", {"serve", "gateway", "--manager", manager_, "--host", At("web"), "--port", "8080", "--security",
                  security_});
  }

  std::string Issue(const std::string& role) {
    const std::string file = data_ + "/" + role + ".credential";
    std::vector<std::string> argv = hosts_->In("store");
    argv.insert(argv.end(), {TesseraBin(), "credential", "new", "--role", role, "--name", role, "-o", file,
                             "--credential", security_ + "/admin.credential"});
    const RunResult r = RunProgram(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return file;
  }

  // `tessera ps` from this host: the tasks done by the worker named `name`.
  uint64_t TasksDoneBy(const std::string& name) {
    const RunResult r = RunTessera({"ps", "--server", manager_});
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::vector<std::string> w;
      for (std::string x; words >> x;) w.push_back(x);
      if (w.size() == 5 && w[0] == name) return std::stoull(w[3]);
    }
    return 0;
  }

  uint64_t FramesWritten(const std::string& id) {
    auto info = client_->Info(id);
    return info.ok() ? info->frames_written : 0;
  }

  // Starts the scan of mist from "lab" at `rate` frames/s; returns the slide id once it is open,
  // with a viewer subscribed to it.
  std::string StartScan(double rate) {
    scan_ = std::thread([this, rate] {
      scan_result_ = RunTessera({"scan", "--tile-config", kMist, "--rate", std::to_string(rate), "--timeout", "90",
                                 "--credential", scanner_credential_});
    });
    std::string id;
    EXPECT_TRUE(WaitFor(
        [&] {
          auto all = client_->List();
          if (!all.ok() || all->empty()) return false;
          id = all->back().id;
          return all->back().frames_written > 0;
        },
        60000))
        << "the scan did not open a slide";
    auto sub = client_->Subscribe(id, [this](const LandedEvent& e) { events_ += e.landed.size() + e.levels.size(); });
    EXPECT_TRUE(sub.ok()) << sub.status().ToString();
    if (sub.ok()) subscription_.emplace(std::move(*sub));
    return id;
  }

  // After the scan: every tile in the file is its TIFF, bit for bit, and stored once.
  void ExpectEveryFrameExact(const std::string& id) {
    scan_.join();
    ASSERT_EQ(scan_result_.exit_code, 0) << scan_result_.err;
    ExpectMistStoredExactlyOnce(*client_, id);
  }

  // The live stitch ends done with every one of mist's 40 overlaps reliable, and its positions
  // are the ones a stitch of the closed slide on calm hosts computes.
  void ExpectStitchAsCalm(const std::string& id) {
    const nlohmann::json report = ExpectMistStitchDone(*client_, id);
    ASSERT_FALSE(report.is_null());
    const RunResult calm = RunTessera({"stitch", id, "--no-store", "--json", "--server", manager_});
    ASSERT_EQ(calm.exit_code, 0) << calm.err;
    const auto again = nlohmann::json::parse(calm.out, nullptr, false);
    ASSERT_FALSE(again.is_discarded()) << calm.out;
    ASSERT_EQ(again["tiles"].size(), report["tiles"].size());
    for (size_t t = 0; t < report["tiles"].size(); ++t) {
      EXPECT_NEAR(again["tiles"][t]["x"].get<double>(), report["tiles"][t]["x"].get<double>(), 1e-3) << "tile " << t;
      EXPECT_NEAR(again["tiles"][t]["y"].get<double>(), report["tiles"][t]["y"].get<double>(), 1e-3) << "tile " << t;
    }
  }

  // The gateway on "web" serves the fused image: a region of it through HTTP, with the stack's
  // token, equals the same region read from the dealer.
  void ExpectGatewayServesFused(const std::string& id) {
    auto fused = client_->ReadRegion({.slide = id + ":fused", .level = 0, .x = 100, .y = 80, .width = 300, .height = 200});
    ASSERT_TRUE(fused.ok()) << fused.status().ToString();
    std::ifstream token_file(security_ + "/http.token");
    std::string token;
    token_file >> token;
    const std::string out = data_ + "/fused.raw";
    const std::string url = "http://" + At("web") + ":8080/api/slides/" + id +
                            ":fused/region.npy?x=100&y=80&width=300&height=200";
    const RunResult r = RunProgram(
        {"/usr/bin/python3", "-c",
         "import io, sys, urllib.request, numpy\n"
         "req = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]})\n"
         "a = numpy.load(io.BytesIO(urllib.request.urlopen(req, timeout=30).read()))\n"
         "open(sys.argv[3], 'wb').write(numpy.ascontiguousarray(a).tobytes())\n",
         url, token, out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream raw(out, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(raw)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(bytes == fused->data) << "the gateway's region differs from the dealer's";
  }

  std::string fifo_bytes_ = "1073741824";  // the default
  std::unique_ptr<Hosts> hosts_;
  std::string data_, security_, manager_, worker_credential_, scanner_credential_;
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> roles_;
  std::unique_ptr<Client> client_;
  std::thread scan_;
  RunResult scan_result_;
  std::atomic<uint64_t> events_{0};
  std::optional<Subscription> subscription_;
};

// A worker's host goes away while it registers the scan's pairs: its tasks go to the other
// worker's host, and the host, back, takes tasks again.
TEST_F(HostsTest, AWorkersHostTakenAwayMidScanLosesNothingAndTheStitchIsTheSame) {
  const std::string id = StartScan(2);
  ASSERT_TRUE(WaitFor([&] { return TasksDoneBy("compute-a") > 0 && TasksDoneBy("compute-b") > 0; }, 60000))
      << "both workers' hosts take the scan's tasks";
  const RunResult ps = RunTessera({"ps", "--server", manager_});
  EXPECT_NE(ps.out.find("proxy " + id), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("tcp://" + At("serve-b") + ":7401"), std::string::npos) << ps.out;
  for (const char* worker : {"compute-a", "compute-b"}) EXPECT_NE(ps.out.find(worker), std::string::npos) << ps.out;
  const uint64_t written = FramesWritten(id);
  EXPECT_LT(written, 25u) << "the host should go while the scan runs";
  hosts_->KillAll("compute-a");
  Forget("compute-a");
  hosts_->Disconnect("compute-a");
  const uint64_t done_b = TasksDoneBy("compute-b");
  ASSERT_TRUE(WaitFor([&] { return FramesWritten(id) >= written + 3 && TasksDoneBy("compute-b") > done_b; }, 60000))
      << "the scan and the stitch go on without the host";
  hosts_->Connect("compute-a");
  StartWorker("compute-a");
  ExpectEveryFrameExact(id);
  ExpectStitchAsCalm(id);
  EXPECT_GT(events_.load(), 0u) << "the subscribed viewer heard of the frames landing";
  ExpectGatewayServesFused(id);
}

// The host of the dealer the slide is read through goes away mid-scan (with the broker, when it
// is serve-a): the other dealer serves the slide within seconds, to this viewer and to the
// gateway; the scan goes on (its path, lab -> store, does not cross it); the subscribed viewer
// hears the frames land through the other dealer; the roles started there again pick up.
TEST_F(HostsTest, TheSlidesDealerHostTakenAwayMidScanHasAnotherDealerServeItAndLosesNothing) {
  const std::string id = StartScan(2);
  ASSERT_TRUE(WaitFor([&] { return FramesWritten(id) >= 6; }, 60000));
  ASSERT_TRUE(client_->ReadTile({.slide = id, .tile = 0}).ok());
  const std::string away = DealerHostOf(id);
  hosts_->KillAll(away);
  Forget(away);
  hosts_->Disconnect(away);
  const auto gone = std::chrono::steady_clock::now();
  auto tile = client_->ReadTile({.slide = id, .tile = 1});
  const double failover_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - gone).count();
  ASSERT_TRUE(tile.ok()) << tile.status().ToString();
  fmt::print("{} taken away; the slide read through the other dealer {:.2f} s later\n", away, failover_s);
  EXPECT_LT(failover_s, 5.0) << "served by the other dealer within seconds";
  const uint64_t heard = events_.load();
  const uint64_t written = FramesWritten(id);
  ASSERT_TRUE(WaitFor([&] { return FramesWritten(id) >= written + 3 && events_.load() > heard; }, 60000))
      << "the scan goes on, and the viewer hears of it through the other dealer";
  // `tessera ps` shows every host's roles, and which of them no longer answers.
  const RunResult ps = RunTessera({"ps", "--server", manager_});
  const std::string other = away == "serve-a" ? "serve-b" : "serve-a";
  EXPECT_NE(ps.out.find("tcp://" + At(away) + ":7401  "), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find(At(away) + "        NOT ANSWERING"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find(At(other) + "        up, cache"), std::string::npos) << ps.out;
  hosts_->Connect(away);
  StartServe(away);
  ExpectEveryFrameExact(id);
  ExpectStitchAsCalm(id);
  ExpectGatewayServesFused(id);
}

// The storage host (manager, the slide's proxy and writer, the stitcher) goes away mid-scan and
// comes back, its manager started again as its service manager would: the scanner waits (its
// unacknowledged frames are its own), the manager resumes the slide, the scanner resends what
// was not durable, and nothing acknowledged is lost.
TEST_F(HostsTest, TheStorageHostTakenAwayMidScanResumesTheSlideAndLosesNothing) {
  const std::string id = StartScan(2);
  ASSERT_TRUE(WaitFor([&] { return FramesWritten(id) >= 6; }, 60000));
  EXPECT_LT(FramesWritten(id), 25u) << "the host should go while the scan runs";
  hosts_->KillAll("store");
  Forget("store");
  hosts_->Disconnect("store");
  // Away for as long as a client takes to give up on the manager (its timeout, 10 s).
  const auto list = client_->List();
  EXPECT_FALSE(list.ok()) << "the storage host is unreachable";
  hosts_->Connect("store");
  StartStore();
  ExpectEveryFrameExact(id);
  ExpectStitchAsCalm(id);
  ExpectGatewayServesFused(id);
}

// The scanner's link to the stack limited to 100 Mbit/s (a token bucket on "lab"): the scanner
// is held back by the proxy's credit (a FIFO of 8 MB here), so neither its memory nor the
// proxy's grows with the scan (120 MB stored, 200 MB raw; 40 and 21 MB seen), and the scan goes at the
// link's pace.
class HostsSlowLinkTest : public HostsTest {
 protected:
  HostsSlowLinkTest() { fifo_bytes_ = "8000000"; }
};

TEST_F(HostsSlowLinkTest, ASlowLinkThrottlesTheScannerByCreditNotByMemory) {
  hosts_->LimitRate("lab", "100mbit");
  const auto start = std::chrono::steady_clock::now();
  const pid_t scanner = StartTessera({"scan", "--synthetic", "--cols", "10", "--rows", "5", "--width", "1024",
                                      "--height", "1024", "--rate", "0", "--no-stitch", "--timeout", "60",
                                      "--credential", scanner_credential_},
                                     Log("lab"));
  int64_t scanner_peak = 0, proxy_peak = 0;
  int status = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        scanner_peak = std::max(scanner_peak, ResidentBytes(scanner));
        if (auto all = client_->List(); all.ok() && !all->empty() && all->back().proxy_pid > 0) {
          proxy_peak = std::max(proxy_peak, ResidentBytes(all->back().proxy_pid));
        }
        return ::waitpid(scanner, &status, WNOHANG) == scanner;
      },
      120000));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the scan failed: see " << Log("lab");
  auto all = client_->List();
  ASSERT_TRUE(all.ok() && !all->empty());
  const auto& slide = all->back();
  EXPECT_EQ(slide.frames_written, 100u);  // 50 tiles of 2 channels
  const double link_seconds = static_cast<double>(slide.bytes_stored) / 12.5e6;
  fmt::print("scan of {} MB stored took {:.1f} s over the link (its floor {:.1f} s); peak RSS scanner {} MB, "
             "proxy {} MB\n", slide.bytes_stored / 1000000, seconds, link_seconds, scanner_peak >> 20, proxy_peak >> 20);
  EXPECT_GE(seconds, 0.9 * link_seconds) << "the link, not the stack, sets the pace";
  EXPECT_LT(scanner_peak, 64 << 20) << "the scanner holds what the credit allows, not the scan";
  EXPECT_LT(proxy_peak, 48 << 20) << "the proxy holds its FIFO, not the scan";
  EXPECT_GT(slide.bytes_stored, 96u << 20) << "the scan is larger than what the bounds allow";
}

}  // namespace
}  // namespace tessera::testing
