// DealerLink: one connection to the tile dealer, shared by every thread of a Client.
// Requests are pipelined: each gets a request id, a background thread sends it and
// matches the reply, out of order, to its callback. Private to client/.
//
//   DealerLink link("tcp://127.0.0.1:7401", /*timeout_ms=*/10000);
//   link.Send(request, [](Result<DealerLink::Reply> reply) { ... });   // on the link's thread
//   auto reply = link.Call(request).get();
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status/status.h"
#include "common/wire/rpc.h"

namespace tessera::internal {

class DealerLink {
 public:
  /// A reply whose status was OK, parsed, with its payload.
  using Reply = wire::Received<proto::DealerReply>;
  using Callback = std::function<void(Result<Reply>)>;

  DealerLink(std::string endpoint, int timeout_ms);
  ~DealerLink();  ///< fails what is pending with UNAVAILABLE

  /// Sends `request` (its request_id is set here); `done` runs on the link's thread with
  /// the reply, its status folded in, or UNAVAILABLE after the timeout (UNAUTHENTICATED as
  /// soon as the dealer refused this process's key). `done` must be quick.
  void Send(proto::DealerRequest request, Callback done);
  /// Send() with a future.
  std::future<Result<Reply>> Call(proto::DealerRequest request);

  const std::string& endpoint() const { return endpoint_; }

  /// False from a request that went unanswered within the timeout until a retry time (5 s,
  /// doubling with each unanswered retry, up to 2 min); true again at once when it answers.
  /// A client with several dealers sends elsewhere meanwhile.
  bool Answering() const { return wire::NowMs() >= retry_at_ms_.load(); }

 private:
  struct Pending {
    Callback done;
    int64_t deadline_ms = 0;
  };
  void Loop(std::stop_token stop);

  const std::string endpoint_;
  const int timeout_ms_;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::vector<std::pair<proto::DealerRequest, Callback>> outbox_;
  std::map<uint64_t, Pending> pending_;  // the link's thread only
  uint64_t next_id_ = 1;
  std::atomic<int64_t> retry_at_ms_{0};  // Answering()
  int64_t backoff_ms_ = 0;                 // the link's thread only
  std::jthread thread_;
};

}  // namespace tessera::internal
