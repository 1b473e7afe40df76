#include "common/wire/rpc.h"

#include <gtest/gtest.h>

#include <thread>

namespace tessera::wire {
namespace {

using ManagerServer = Server<proto::ManagerRequest, proto::ManagerReply>;

// A request the test's policy refuses: slide ids are at most 8 characters here.
Status ShortIds(const proto::ManagerRequest& r) {
  if (r.get_slide().slide_id().size() > 8) return Error(StatusCode::kInvalidArgument, "slide id too long");
  return OkStatus();
}

TEST(RpcTest, OnlyRequestsThatPassEveryCheckReachTheRoleAndEachGetsOneAnswer) {
  auto server = ManagerServer::Bind("tcp://127.0.0.1:0", kRequestLimits, {.validate = &ShortIds});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const std::string ep = server->endpoint();
  std::jthread role([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      if (auto call = server->Next(20)) {
        proto::ManagerReply reply;
        reply.mutable_slide()->set_slide_id(call->request.get_slide().slide_id());
        server->Answer(*call, std::move(reply), OkStatus());
      }
    }
  });
  // Bytes that are not a request, a wrong version, a refused value: answered, never handled.
  zmq::socket_t raw = MakeSocket(zmq::socket_type::dealer);
  ASSERT_TRUE(Connect(raw, ep).ok());
  raw.send(zmq::str_buffer("\x08\x01\xff"), zmq::send_flags::none);
  auto garbage = Receive(raw, 5000);
  ASSERT_TRUE(garbage.has_value());
  proto::ManagerReply answer;
  ASSERT_TRUE(answer.ParseFromArray(garbage->header.data(), static_cast<int>(garbage->header.size())));
  EXPECT_EQ(answer.status().code(), proto::INVALID_ARGUMENT);

  proto::ManagerRequest old;
  old.set_version(kProtocolVersion + 1);
  old.mutable_get_slide()->set_slide_id("s1");
  ASSERT_TRUE(Send(raw, nullptr, old));
  auto refused = Receive(raw, 5000);
  ASSERT_TRUE(refused.has_value());
  ASSERT_TRUE(answer.ParseFromArray(refused->header.data(), static_cast<int>(refused->header.size())));
  EXPECT_EQ(answer.status().code(), proto::VERSION_MISMATCH);

  proto::ManagerRequest req;
  req.mutable_get_slide()->set_slide_id("a-very-long-id");
  EXPECT_EQ(Ask<proto::ManagerReply>(ep, req, 5000).status().code(), StatusCode::kInvalidArgument);
  req.mutable_get_slide()->set_slide_id("s1");
  auto ok = Ask<proto::ManagerReply>(ep, req, 5000);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->slide().slide_id(), "s1");
  role.request_stop();
  role.join();
  EXPECT_EQ(server->refused(), 3u);
}

}  // namespace
}  // namespace tessera::wire
