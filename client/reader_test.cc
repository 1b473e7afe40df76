// The client library against a dealer that lies: every plan and description it receives is
// checked before a byte of the caller's array is written.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "client/client.h"
#include "common/wire/wire.h"

namespace tessera {
namespace {

// A manager and a dealer in one thread: the manager names the dealer, the dealer describes
// one slide (`plan`) and answers region plans with `plan_reply`.
class RogueDealer {
 public:
  RogueDealer(const ScanPlan& plan, std::function<void(proto::RegionPlan*)> plan_reply)
      : plan_(plan), plan_reply_(std::move(plan_reply)) {
    manager_ = *wire::Bind(manager_socket_, "tcp://127.0.0.1:0");
    dealer_ = *wire::Bind(dealer_socket_, "tcp://127.0.0.1:0");
    thread_ = std::jthread([this](std::stop_token stop) { Serve(stop); });
  }
  const std::string& manager() const { return manager_; }
  std::function<void(proto::SlideInfo*)> describe = [](proto::SlideInfo*) {};

 private:
  void Serve(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      if (auto in = wire::Receive(manager_socket_, 10, true)) {
        proto::ManagerReply reply;
        reply.set_version(wire::kProtocolVersion);
        (*reply.mutable_endpoints()->mutable_endpoints())["dealer"] = dealer_;
        wire::Send(manager_socket_, &*in->identity, reply);
      }
      if (auto in = wire::Receive(dealer_socket_, 10, true)) {
        proto::DealerRequest req;
        if (!wire::ParseHeader(*in, &req).ok()) continue;
        proto::DealerReply reply;
        reply.set_version(wire::kProtocolVersion);
        reply.set_request_id(req.request_id());
        if (req.has_slide_info()) {
          auto* info = reply.mutable_slide_info();
          info->mutable_summary()->set_slide_id("s000001");
          info->mutable_summary()->set_plan_json(PlanToJson(plan_));
          info->set_level_count(plan_.level_count());
          for (const auto& t : plan_.tiles) {
            for (double v : {t.x, t.y, 0.0}) info->add_positions(v);
          }
          info->set_landed(std::string(plan_.frame_count(), '\1'));
          describe(info);
        } else if (req.has_plan_region()) {
          auto* rp = reply.mutable_region();
          *rp->mutable_box() = req.plan_region().box();
          plan_reply_(rp);
        }
        wire::Send(dealer_socket_, &*in->identity, reply);
      }
    }
  }

  ScanPlan plan_;
  std::function<void(proto::RegionPlan*)> plan_reply_;
  zmq::socket_t manager_socket_ = wire::MakeSocket(zmq::socket_type::router);
  zmq::socket_t dealer_socket_ = wire::MakeSocket(zmq::socket_type::router);
  std::string manager_, dealer_;
  std::jthread thread_;
};

ScanPlan TwoTiles() {
  ScanPlan p;
  p.width = p.height = 256;
  p.chunk_y = p.chunk_x = 128;
  p.tiles = {{.name = "a", .x = 0, .y = 0}, {.name = "b", .x = 200, .y = 0}};
  return p;
}

void OneCopy(proto::RegionPlan* rp, uint32_t tile, uint32_t sx, uint32_t w, uint32_t dx) {
  rp->add_tile(tile);
  rp->add_cy(0);
  rp->add_cx(0);
  rp->add_sx(sx);
  rp->add_sy(0);
  rp->add_w(w);
  rp->add_h(8);
  rp->add_dx(dx);
  rp->add_dy(0);
}

Status ReadWith(std::function<void(proto::RegionPlan*)> plan_reply) {
  RogueDealer dealer(TwoTiles(), std::move(plan_reply));
  Client client(dealer.manager(), 3000);
  return client.ReadRegion({.slide = "s000001", .x = 0, .y = 0, .width = 64, .height = 64}).status();
}

TEST(ReaderTest, CopiesOutsideTheChunkOrTheBoxAreRefusedBeforeAnyByteIsWritten) {
  EXPECT_EQ(ReadWith([](proto::RegionPlan* rp) { OneCopy(rp, 0, 100, 64, 0); }).code(), StatusCode::kDataLoss)
      << "100 + 64 is past the 128-pixel chunk";
  EXPECT_EQ(ReadWith([](proto::RegionPlan* rp) { OneCopy(rp, 0, 0, 32, 40); }).code(), StatusCode::kDataLoss)
      << "40 + 32 is past the 64-pixel box";
  EXPECT_EQ(ReadWith([](proto::RegionPlan* rp) { OneCopy(rp, 7, 0, 8, 0); }).code(), StatusCode::kDataLoss)
      << "the slide has tiles 0 and 1";
  EXPECT_EQ(ReadWith([](proto::RegionPlan* rp) {
              OneCopy(rp, 0, 0, 8, 0);
              rp->add_dx(1);  // one array longer than the others
            }).code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(ReadWith([](proto::RegionPlan* rp) { rp->mutable_box()->set_w(1 << 30); }).code(), StatusCode::kDataLoss)
      << "a box larger than the request";
  EXPECT_EQ(ReadWith([](proto::RegionPlan* rp) { rp->mutable_box()->set_x(-5); }).code(), StatusCode::kDataLoss);
}

TEST(ReaderTest, ADescriptionThatDisagreesWithItsPlanIsRefused) {
  RogueDealer dealer(TwoTiles(), [](proto::RegionPlan*) {});
  dealer.describe = [](proto::SlideInfo* info) { info->mutable_landed()->resize(1); };
  Client client(dealer.manager(), 3000);
  auto view = client.Describe("s000001");
  EXPECT_EQ(view.status().code(), StatusCode::kDataLoss) << view.status().ToString();
}

}  // namespace
}  // namespace tessera
