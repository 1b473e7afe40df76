// The broker with workers and clients played by sockets of the test, over loopback TCP.
#include "server/broker/broker.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/wire/wire.h"

namespace tessera::broker {
namespace {

using proto::BrokerMessage;

BrokerMessage Msg() {
  BrokerMessage m;
  m.set_version(wire::kProtocolVersion);
  return m;
}

// A DEALER peer of the broker: a worker or a client.
class Peer {
 public:
  explicit Peer(const std::string& endpoint) : socket_(wire::MakeSocket(zmq::socket_type::dealer)) {
    socket_.connect(endpoint);
  }
  void Send(const BrokerMessage& m) { wire::Send(socket_, nullptr, m); }
  void Ready(const std::string& name, const std::string& service = "register") {
    BrokerMessage m = Msg();
    m.mutable_ready()->set_name(name);
    m.mutable_ready()->add_services(service);
    Send(m);
  }
  void Request(uint64_t id, const std::string& service = "register") {
    BrokerMessage m = Msg();
    m.mutable_request()->set_task_id(id);
    m.mutable_request()->set_service(service);
    m.mutable_request()->mutable_register_pair()->set_slide("s1");
    Send(m);
  }
  void Answer(uint64_t task_id, const Status& status, uint32_t a = 0) {
    BrokerMessage m = Msg();
    m.mutable_result()->set_task_id(task_id);
    wire::ToProto(status, m.mutable_result()->mutable_status());
    m.mutable_result()->mutable_link()->set_a(a);
    Send(m);
  }
  // The next message that is not a heartbeat, within `timeout_ms`. A worker (`beat`)
  // heartbeats every 20 ms while it waits.
  std::optional<BrokerMessage> Next(int timeout_ms = 10000, bool beat = false) {
    const int64_t end = wire::NowMs() + timeout_ms;
    while (wire::NowMs() < end) {
      if (beat) {
        BrokerMessage hb = Msg();
        hb.mutable_heartbeat();
        Send(hb);
      }
      auto in = wire::Receive(socket_, 20);
      if (!in) continue;
      BrokerMessage m;
      if (!wire::ParseHeader(*in, &m).ok()) return std::nullopt;
      if (m.has_heartbeat()) continue;
      return m;
    }
    return std::nullopt;
  }
  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::socket_t socket_;
};

class BrokerTest : public ::testing::Test {
 protected:
  void Start(BrokerOptions o = {}) {
    auto b = Broker::Open(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
    thread_ = std::jthread([this] { (void)broker_->Run(stop_); });
  }
  void TearDown() override {
    stop_ = true;
    thread_ = {};
  }
  const std::string& endpoint() { return broker_->endpoint(); }

  std::unique_ptr<Broker> broker_;
  std::atomic<bool> stop_{false};
  std::jthread thread_;
};

TEST_F(BrokerTest, GivesATaskToAWorkerOfItsServiceAndAnswersTheClientWithItsId) {
  Start();
  Peer worker(endpoint()), client(endpoint());
  worker.Ready("w1");
  client.Request(7);
  client.Request(8, "fuse");  // nobody offers it: it waits
  auto task = worker.Next(10000, true);
  ASSERT_TRUE(task && task->has_request());
  EXPECT_EQ(task->request().service(), "register");
  EXPECT_EQ(task->request().register_pair().slide(), "s1");
  worker.Answer(task->request().task_id(), OkStatus(), 42);
  auto result = client.Next();
  ASSERT_TRUE(result && result->has_result());
  EXPECT_EQ(result->result().task_id(), 7u);
  EXPECT_TRUE(wire::FromProto(result->result().status()).ok());
  EXPECT_EQ(result->result().worker(), "w1");
  EXPECT_EQ(result->result().attempts(), 1u);
  EXPECT_EQ(result->result().link().a(), 42u);

  BrokerMessage ask = Msg();
  ask.mutable_status_request();
  client.Send(ask);
  auto status = client.Next();
  ASSERT_TRUE(status && status->has_status());
  ASSERT_EQ(status->status().workers_size(), 1);
  EXPECT_EQ(status->status().workers(0).name(), "w1");
  EXPECT_EQ(status->status().workers(0).done(), 1u);
  std::map<std::string, proto::ServiceQueue> queues;
  for (const auto& q : status->status().services()) queues[q.service()] = q;
  EXPECT_EQ(queues["register"].done(), 1u);
  EXPECT_EQ(queues["register"].workers(), 1u);
  EXPECT_EQ(queues["fuse"].queued(), 1u);
  EXPECT_EQ(queues["fuse"].workers(), 0u);
}

TEST_F(BrokerTest, TheTaskOfAWorkerThatGoesSilentGoesToAnother) {
  Start({.heartbeat_ms = 50, .heartbeat_misses = 3});
  Peer w1(endpoint()), w2(endpoint()), client(endpoint());
  w1.Ready("w1");
  client.Request(1);
  auto first = w1.Next(10000, true);
  ASSERT_TRUE(first && first->has_request());
  // w1 now says nothing more (as if killed); w2 comes and heartbeats.
  w2.Ready("w2");
  auto second = w2.Next(10000, true);
  ASSERT_TRUE(second && second->has_request());
  EXPECT_EQ(second->request().register_pair().slide(), "s1");
  w2.Answer(second->request().task_id(), OkStatus());
  auto result = client.Next();
  ASSERT_TRUE(result && result->has_result());
  EXPECT_EQ(result->result().task_id(), 1u);
  EXPECT_EQ(result->result().worker(), "w2");
  EXPECT_EQ(result->result().attempts(), 2u);
  // w1's late answer is ignored: the client hears nothing more.
  w1.Answer(first->request().task_id(), OkStatus());
  EXPECT_FALSE(client.Next(300).has_value());
}

TEST_F(BrokerTest, AStalledWorkerIsToldToGoAndItsTaskGivenToAnother) {
  Start({.heartbeat_ms = 50, .task_timeout_ms = 300});
  Peer w1(endpoint()), w2(endpoint()), client(endpoint());
  w1.Ready("w1");
  client.Request(5);
  auto first = w1.Next(10000, true);
  ASSERT_TRUE(first && first->has_request());
  auto bye = w1.Next(10000, true);  // heartbeating but never answering
  ASSERT_TRUE(bye && bye->has_disconnect());
  EXPECT_NE(bye->disconnect().reason().find("too long"), std::string::npos);
  w2.Ready("w2");
  auto second = w2.Next(10000, true);
  ASSERT_TRUE(second && second->has_request());
  w2.Answer(second->request().task_id(), OkStatus());
  auto result = client.Next();
  ASSERT_TRUE(result && result->has_result());
  EXPECT_EQ(result->result().worker(), "w2");
}

TEST_F(BrokerTest, ATaskThatKeepsFailingFailsForGoodAndBadInputFailsAtOnce) {
  Start({.max_attempts = 2});
  Peer worker(endpoint()), client(endpoint());
  worker.Ready("w1");
  client.Request(1);
  for (int i = 0; i < 2; ++i) {
    auto task = worker.Next(10000, true);
    ASSERT_TRUE(task && task->has_request()) << i;
    worker.Answer(task->request().task_id(), Error(StatusCode::kInternal, "disk on fire"));
  }
  auto failed = client.Next();
  ASSERT_TRUE(failed && failed->has_result());
  const Status s = wire::FromProto(failed->result().status());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("failed 2 times"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("disk on fire"), std::string::npos) << s.message();

  client.Request(2);
  auto task = worker.Next(10000, true);
  ASSERT_TRUE(task && task->has_request());
  worker.Answer(task->request().task_id(), Error(StatusCode::kInvalidArgument, "no such tile"));
  auto bad = client.Next();
  ASSERT_TRUE(bad && bad->has_result());
  EXPECT_EQ(wire::FromProto(bad->result().status()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad->result().attempts(), 1u);
}

TEST_F(BrokerTest, TheQueueIsBoundedAndMalformedMessagesGetAnError) {
  Start({.max_queued_tasks = 2});
  Peer client(endpoint());
  for (uint64_t id = 1; id <= 3; ++id) client.Request(id);
  auto full = client.Next();
  ASSERT_TRUE(full && full->has_result());
  EXPECT_EQ(full->result().task_id(), 3u);
  EXPECT_EQ(wire::FromProto(full->result().status()).code(), StatusCode::kResourceExhausted);

  const std::string junk = "not a protobuf at all";
  client.socket().send(zmq::buffer(junk), zmq::send_flags::none);
  auto error = client.Next();
  ASSERT_TRUE(error && error->has_result());
  EXPECT_EQ(wire::FromProto(error->result().status()).code(), StatusCode::kInvalidArgument);
  // Still serving: the two queued tasks go to a worker that comes.
  Peer worker(endpoint());
  worker.Ready("w1");
  for (int i = 0; i < 2; ++i) {
    auto task = worker.Next(10000, true);
    ASSERT_TRUE(task && task->has_request());
    worker.Answer(task->request().task_id(), OkStatus());
    auto result = client.Next();
    ASSERT_TRUE(result && result->has_result());
    EXPECT_TRUE(wire::FromProto(result->result().status()).ok());
  }
}

}  // namespace
}  // namespace tessera::broker
