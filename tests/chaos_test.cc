// The default stack under faults, as users run it: live stitching on, a viewer subscribed to
// the slide, a real mosaic (../shared/data/mist-5x5) scanned at a microscope's pace. Malformed
// traffic at every endpoint, then kill -9 of each role in turn; afterwards every process
// answers, every frame is in the file bit-exact and once, and the stitch is done.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/client.h"
#include "common/wire/wire.h"
#include "tests/mist.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {

// The stack, a paced scan of mist running in the background, and a subscribed viewer.
class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>(std::vector<std::string>{"--auto-stitch", "true", "--sync-interval-ms", "100"});
    ASSERT_FALSE(stack_->manager().empty());
    client_ = std::make_unique<Client>(stack_->manager());
  }

  void TearDown() override {
    if (scan_.joinable()) scan_.join();
  }

  // Starts `tessera scan` of mist (or of `source`, e.g. a synthetic scan's options) at `rate`
  // frames/s; returns the slide id once it is open and a viewer is subscribed to it.
  std::string StartScan(double rate, std::vector<std::string> source = {"--tile-config", kMist}) {
    scan_ = std::thread([this, rate, source] {
      std::vector<std::string> args{"scan"};
      args.insert(args.end(), source.begin(), source.end());
      args.insert(args.end(), {"--rate", std::to_string(rate), "--timeout", "60", "--server", stack_->manager()});
      scan_result_ = RunTessera(args);
      scan_done_ = true;
    });
    std::string id;
    EXPECT_TRUE(WaitFor(
        [&] {
          auto all = client_->List();
          if (!all.ok() || all->empty()) return false;
          id = all->back().id;
          return all->back().proxy_pid > 0 && all->back().frames_written > 0;  // serving, and pushed to
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

  // The stitch ends done; a manager started after it ended (state "": this manager ran none)
  // finds the slide stitched.
  void ExpectStitchDone(const std::string& id) {
    // Every one of mist's 40 overlaps registered right, whatever died on the way.
    ExpectMistStitchDone(*client_, id);
    auto fused = client_->ReadRegion({.slide = id + ":fused", .level = 3, .x = 0, .y = 0, .width = 64, .height = 64});
    EXPECT_TRUE(fused.ok()) << fused.status().ToString();
  }

  std::unique_ptr<Stack> stack_;
  std::unique_ptr<Client> client_;
  std::thread scan_;
  RunResult scan_result_;
  std::atomic<bool> scan_done_{false};
  std::atomic<uint64_t> events_{0};
  std::optional<Subscription> subscription_;
};

// Random, truncated, mutated, oversized and wrongly typed messages, the valid `header`
// (a serialized request of the endpoint's type) being the seed of the mutations.
std::vector<std::vector<std::string>> Garbage(const std::string& header, uint32_t seed) {
  std::mt19937 rng(seed);
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  std::vector<std::vector<std::string>> out;
  out.push_back({"\x08\x01"});                 // version 1, no body
  out.push_back({""});                          // empty
  out.push_back({header, std::string(1, '\0')});  // an unexpected payload
  out.push_back({"\x08\x01\x12\xff\xff\xff\xff\x0f"});  // a length far past the end
  out.push_back(std::vector<std::string>(3000, "x"));  // more parts than any endpoint takes
  for (int i = 0; i < 150; ++i) {
    std::string m = header;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4) && !m.empty(); ++k) m[rng() % m.size()] = static_cast<char>(rng());
    if (rng() % 3 == 0) m = m.substr(0, rng() % (m.size() + 1));
    out.push_back({m});
    out.push_back({bytes(rng() % 64)});
    std::vector<std::string> multi{bytes(1 + rng() % 16)};
    for (uint32_t p = 0; p < rng() % 6; ++p) multi.push_back(bytes(rng() % 128));
    out.push_back(multi);
  }
  return out;
}

void SendAll(zmq::socket_t& s, const std::vector<std::vector<std::string>>& messages) {
  for (const auto& parts : messages) {
    for (size_t i = 0; i < parts.size(); ++i) {
      s.send(zmq::buffer(parts[i]), i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

template <typename Proto>
std::string Serialized(Proto m) {
  m.set_version(wire::kProtocolVersion);
  return m.SerializeAsString();
}

// Sends garbage to a ROUTER endpoint on one connection, then a valid request on a fresh one,
// which must be answered with a header of the endpoint's type.
template <typename Reply, typename Request>
void ExpectSurvivesGarbage(const std::string& endpoint, const Request& valid, uint32_t seed) {
  SCOPED_TRACE(endpoint);
  zmq::socket_t s = wire::MakeSocket(zmq::socket_type::dealer);
  EXPECT_TRUE(wire::Connect(s, endpoint).ok());  // as the stack's admin: the bytes reach the parser
  SendAll(s, Garbage(Serialized(valid), seed));
  int replies = 0;
  while (wire::Receive(s, 500)) ++replies;
  EXPECT_GT(replies, 100) << "malformed messages get error replies";
  Request request = valid;
  request.set_version(wire::kProtocolVersion);
  auto reply = wire::Call(endpoint, request, 10000);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  Reply parsed;
  EXPECT_TRUE(wire::ParseHeader(*reply, &parsed).ok());
}

std::map<std::string, pid_t> RolePids(const Stack& stack, const std::string& slide) {
  std::map<std::string, pid_t> out;
  for (const char* role : {"manager", "dealer", "broker", "worker", "gateway"}) {
    auto pids = stack.RolePids(role);
    out[role] = pids.empty() ? -1 : pids[0];
  }
  for (const char* role : {"proxy", "writer"}) {
    auto pids = stack.RolePids(role, slide);
    out[role] = pids.empty() ? -1 : pids[0];
  }
  return out;
}

TEST_F(ChaosTest, MalformedTrafficAtEveryEndpointKillsNoRoleAndLosesNothing) {
  const std::string id = StartScan(2);  // 25 frames in ~12 s: the slide's proxy and writer outlive the garbage
  auto info = client_->Info(id);
  ASSERT_TRUE(info.ok());
  const auto before = RolePids(*stack_, id);
  for (const auto& [role, pid] : before) ASSERT_GT(pid, 0) << role;

  proto::ManagerRequest list;
  list.mutable_list_slides();
  ExpectSurvivesGarbage<proto::ManagerReply>(stack_->manager(), list, 1);
  proto::IngestMessage stats;
  stats.mutable_stats_request();
  ExpectSurvivesGarbage<proto::IngestMessage>(info->proxy_endpoint, stats, 2);
  ASSERT_FALSE(info->proxy_local_endpoint.empty());  // the door of scanners on this host
  ExpectSurvivesGarbage<proto::IngestMessage>(info->proxy_local_endpoint, stats, 7);
  const std::string writer = "ipc://" + std::filesystem::absolute(stack_->data_dir() + "/run/" + id + ".writer.ipc").string();
  ExpectSurvivesGarbage<proto::IngestMessage>(writer, stats, 3);
  proto::DealerRequest slides;
  slides.mutable_list_slides();
  ExpectSurvivesGarbage<proto::DealerReply>(stack_->endpoint("dealer"), slides, 4);
  proto::BrokerMessage status;
  status.mutable_status_request();
  ExpectSurvivesGarbage<proto::BrokerMessage>(stack_->endpoint("broker"), status, 5);
  ExpectSurvivesGarbage<proto::BrokerMessage>(stack_->endpoint("broker_local"), status, 8);  // the workers' door
  {  // the dealer's event socket takes writers' PUB connections: garbage events are dropped
    zmq::socket_t pub = wire::MakeSocket(zmq::socket_type::pub);
    ASSERT_TRUE(wire::Connect(pub, stack_->endpoint("dealer_events")).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // PUB drops until connected
    SendAll(pub, Garbage(Serialized(proto::SlideEvent()), 6));
  }
  // Nobody died (a crash would show as a restarted process), and the scan ends whole.
  EXPECT_EQ(RolePids(*stack_, id), before);
  ExpectEveryFrameExact(id);
  EXPECT_EQ(RolePids(*stack_, id)["dealer"], before.at("dealer"));
  EXPECT_GT(events_.load(), 0u) << "the subscribed viewer heard of the frames landing";
  ExpectStitchDone(id);
}

TEST_F(ChaosTest, EachRoleKilledMidScanLosesNoFrameAndTheStitchCompletes) {
  const std::string id = StartScan(3);  // 25 frames in ~8 s
  uint64_t landed = 0;
  // The scan's stitcher first: it runs from the open, so it is there to kill however fast the
  // scan lands (last, a loaded machine could see the stitch already done).
  for (const char* role : {"stitcher", "writer", "proxy", "manager", "dealer", "worker", "broker", "gateway"}) {
    SCOPED_TRACE(role);
    const bool per_slide = std::string(role) == "writer" || std::string(role) == "proxy" ||
                           std::string(role) == "stitcher";
    // Spread over the scan: a frame more is durable before each kill.
    EXPECT_TRUE(WaitFor(
        [&] {
          auto info = client_->Info(id);
          return info.ok() && info->frames_written > landed;
        },
        60000));
    if (auto info = client_->Info(id); info.ok()) landed = info->frames_written;
    auto pids = stack_->RolePids(role, per_slide ? id : "");
    ASSERT_FALSE(pids.empty()) << "no " << role << " running";
    const pid_t victim = pids[0];
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    EXPECT_TRUE(WaitFor([&] {
      auto now = stack_->RolePids(role, per_slide ? id : "");
      return !now.empty() && std::find(now.begin(), now.end(), victim) == now.end();
    }, 60000)) << role << " was not restarted";
    auto info = client_->Info(id);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_NE(info->state, "failed") << info->error;
  }
  const uint64_t heard = events_.load();
  ExpectEveryFrameExact(id);
  ExpectStitchDone(id);
  EXPECT_GT(events_.load(), heard) << "the viewer's subscription outlived the dealer's restart";
  // Every role answers.
  EXPECT_EQ(RunTessera({"ps", "--server", stack_->manager()}).exit_code, 0);
  auto http = RunProgram({"/usr/bin/curl", "-sf", "-o", "/dev/null", "-H", "Authorization: Bearer " + stack_->token(),
                          stack_->endpoint("http") + "/api/slides"});
  EXPECT_EQ(http.exit_code, 0);
}

// Stopping the default stack while its stitch runs takes seconds (its manager once waited for
// the stitcher while the stitcher waited 10 s on the manager to store its result), loses no
// frame, and the stitch resumes at the next start.
TEST_F(ChaosTest, TheStackStopsInSecondsMidStitchAndTheStitchResumesAtTheNextStart) {
  const std::string id = StartScan(100);
  scan_.join();
  ASSERT_EQ(scan_result_.exit_code, 0) << scan_result_.err;
  ASSERT_TRUE(WaitFor([&] {
    auto info = client_->Info(id);
    return info.ok() && info->state == "acquired" && info->stitch.state == "running";
  }, 60000)) << "no stitch running after the close";
  const int64_t stop_ms = stack_->Stop();
  EXPECT_LT(stop_ms, 10000) << "tessera up took " << stop_ms << " ms to stop mid-stitch";

  const std::string data = stack_->data_dir();
  subscription_.reset();
  client_.reset();
  stack_ = std::make_unique<Stack>(std::vector<std::string>{"--auto-stitch", "true"}, data);
  client_ = std::make_unique<Client>(stack_->manager());
  auto info = client_->Info(id);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frames_written, info->frames_total);
  ExpectStitchDone(id);
}

// An oblique scan's stitcher deskews the stacks as they land: killed mid-deskew, it is started
// again, resumes the deskewed view from what it had synced, and the view ends exact (the numpy
// reference of the convention, bit for bit), stitched and fused.
TEST_F(ChaosTest, AnObliqueScansStitcherKilledMidDeskewResumesAndItsViewIsExact) {
  // 45 degrees, a step of sqrt(2) camera pixels: the copy path. 4 stacks of 40 planes at 30
  // frames a second: about 5 s of scan.
  const std::string id = StartScan(30, {"--synthetic", "--cols", "2", "--rows", "2", "--width", "128", "--height", "96",
                                        "--channels", "1", "--z", "40", "--oblique", "45", "--stage-step",
                                        "1.4142135623730951", "--pixel-size", "1"});
  const std::string view = id + ":deskewed";
  uint64_t before = 0;
  ASSERT_TRUE(WaitFor([&] {
    auto v = client_->Info(view);
    before = v.ok() ? v->frames_written : 0;
    return before > 0;
  }, 60000)) << "nothing was deskewed";
  auto pids = stack_->RolePids("stitcher", id);
  ASSERT_FALSE(pids.empty()) << "no stitcher deskews the scan";
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  auto raw = client_->Info(id);
  ASSERT_TRUE(raw.ok());
  EXPECT_LT(before, raw->frames_total) << "the deskew was over before the kill";
  EXPECT_TRUE(WaitFor([&] {
    auto now = stack_->RolePids("stitcher", id);
    return !now.empty() && now[0] != pids[0];
  }, 60000)) << "the stitcher was not started again";
  scan_.join();
  ASSERT_EQ(scan_result_.exit_code, 0) << scan_result_.err;
  auto waited = RunTessera({"stitch", id, "--wait", "--json", "--server", stack_->manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  auto v = client_->Info(view);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->state, "acquired");
  EXPECT_EQ(v->frames_written, 160u);
  auto verify = RunProgram({"/usr/bin/python3", "tests/verify_deskewed.py", raw->path, v->path});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("max difference 0"), std::string::npos) << verify.out;
  EXPECT_TRUE(client_->Info(id + ":fused").ok());
  EXPECT_GT(events_.load(), 0u) << "the subscribed viewer heard of the frames landing";
}

}  // namespace
}  // namespace tessera::testing
