#include "common/wire/wire.h"

#include <gtest/gtest.h>
#include <fmt/format.h>

#include <array>

namespace tessera::wire {
namespace {

TEST(WireTest, RoundTripsHeaderAndPayloadThroughRouter) {
  zmq::socket_t router = MakeSocket(zmq::socket_type::router);
  auto ep = Bind(router, "tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok()) << ep.status().ToString();
  EXPECT_NE(ep->find("127.0.0.1:"), std::string::npos);
  EXPECT_FALSE(ep->ends_with(":0"));

  zmq::socket_t dealer = MakeSocket(zmq::socket_type::dealer);
  dealer.connect(*ep);
  proto::IngestMessage hello;
  hello.set_version(kProtocolVersion);
  hello.mutable_hello()->set_slide_id("s-1");
  std::vector<zmq::message_t> payload;
  payload.emplace_back(std::string_view("chunk-bytes"));
  ASSERT_TRUE(Send(dealer, nullptr, hello, std::move(payload)));

  auto in = Receive(router, 5000, /*router=*/true);
  ASSERT_TRUE(in.has_value());
  ASSERT_TRUE(in->identity.has_value());
  proto::IngestMessage got;
  ASSERT_TRUE(ParseHeader(*in, &got).ok());
  EXPECT_EQ(got.hello().slide_id(), "s-1");
  ASSERT_EQ(in->payload.size(), 1u);
  EXPECT_EQ(in->payload[0].to_string(), "chunk-bytes");
}

TEST(WireTest, ParseHeaderRejectsGarbageAndOtherVersions) {
  Message m;
  m.header = zmq::message_t(std::string_view("\xff\xff\xff not protobuf"));
  proto::IngestMessage out;
  Status s = ParseHeader(m, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("malformed"), std::string::npos);

  proto::IngestMessage other;
  other.set_version(kProtocolVersion + 1);
  m.header = zmq::message_t(other.SerializeAsString());
  EXPECT_EQ(ParseHeader(m, &out).code(), StatusCode::kVersionMismatch);

  m.header = zmq::message_t();
  EXPECT_EQ(ParseHeader(m, &out).code(), StatusCode::kInvalidArgument);
}

TEST(WireTest, CallTimesOutWithAnActionableError) {
  zmq::socket_t silent = MakeSocket(zmq::socket_type::router);
  auto ep = Bind(silent, "tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok());
  proto::ManagerRequest req;
  req.set_version(kProtocolVersion);
  auto r = Call(*ep, req, 100);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("tessera up"), std::string::npos);
}

TEST(WireTest, StatusCodesMatchTheProtocol) {
  proto::Status p;
  ToProto(Error(StatusCode::kDataLoss, "bad chunk"), &p);
  EXPECT_EQ(p.code(), proto::DATA_LOSS);
  EXPECT_EQ(FromProto(p).message(), "bad chunk");
  EXPECT_EQ(static_cast<int>(proto::DEADLINE_EXCEEDED),
            static_cast<int>(StatusCode::kDeadlineExceeded));
  EXPECT_EQ(static_cast<int>(proto::UNAUTHENTICATED), static_cast<int>(StatusCode::kUnauthenticated));
  EXPECT_EQ(proto::StatusCode_descriptor()->value_count(), 16) << "a code added to one side only";
}

}  // namespace
}  // namespace tessera::wire

namespace tessera::wire {
namespace {

TEST(EndpointListTest, SplitsAtCommasBeforeASchemeOnly) {
  EXPECT_EQ(SplitEndpoints("tcp://a:1,tcp://b:2"), (std::vector<std::string>{"tcp://a:1", "tcp://b:2"}));
  EXPECT_EQ(SplitEndpoints("tcp://a:1"), (std::vector<std::string>{"tcp://a:1"}));
  EXPECT_EQ(SplitEndpoints(""), (std::vector<std::string>{}));
  EXPECT_EQ(SplitEndpoints("ipc:///data/a,b/run.ipc,tcp://c:3"),
            (std::vector<std::string>{"ipc:///data/a,b/run.ipc", "tcp://c:3"}));  // a comma in a path
  EXPECT_EQ(SplitEndpoints(",tcp://a:1,,tcp://b:2"), (std::vector<std::string>{"tcp://a:1,", "tcp://b:2"}));  // zmq refuses the first
}

TEST(RankDealersTest, EveryClientRanksTheSameAndALostDealerMovesOnlyItsOwnSlides) {
  const std::vector<std::string> three{"tcp://10.0.0.1:7401", "tcp://10.0.0.2:7401", "tcp://10.0.0.3:7401"};
  const std::vector<std::string> two{three[0], three[2]};  // the second lost
  std::array<int, 3> first{};
  for (int i = 0; i < 3000; ++i) {
    const std::string slide = fmt::format("s{:06d}", i);
    const auto order = RankDealers(slide, three);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order, RankDealers(slide, three));  // a pure function of slide and list
    ++first[order[0]];
    // Without dealer 1, a slide keeps its dealer unless it was 1's; then it goes to its second.
    const auto without = RankDealers(slide, two);
    const std::string now = two[without[0]];
    EXPECT_EQ(now, order[0] != 1 ? three[order[0]] : three[order[1]]) << slide;
  }
  for (int n : first) EXPECT_NEAR(n, 1000, 150);  // slides spread evenly
}

}  // namespace
}  // namespace tessera::wire
