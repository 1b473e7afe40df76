#include "client/internal/dealer_link.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

namespace tessera::internal {
namespace {

constexpr int64_t kFirstRetryMs = 5000, kLongestRetryMs = 120000;

}  // namespace

DealerLink::DealerLink(std::string endpoint, int timeout_ms)
    : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  thread_ = std::jthread([this](std::stop_token stop) { Loop(stop); });
}

DealerLink::~DealerLink() {
  thread_.request_stop();
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  thread_.join();
  ::close(wake_fd_);
}

void DealerLink::Send(proto::DealerRequest request, Callback done) {
  request.set_version(wire::kProtocolVersion);
  {
    std::lock_guard lock(mu_);
    outbox_.emplace_back(std::move(request), std::move(done));
  }
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

std::future<Result<DealerLink::Reply>> DealerLink::Call(proto::DealerRequest request) {
  auto promise = std::make_shared<std::promise<Result<Reply>>>();
  auto future = promise->get_future();
  Send(std::move(request), [promise](Result<Reply> reply) { promise->set_value(std::move(reply)); });
  return future;
}

void DealerLink::Loop(std::stop_token stop) {
  auto dealer = wire::Stream<proto::DealerReply, proto::DealerRequest>::Connect(endpoint_, "", {}, "client");
  Status connected = dealer.status();  // each request fails with it
  zmq::pollitem_t items[] = {{dealer.ok() ? dealer->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0},
                             {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
  while (!stop.stop_requested()) {
    wire::Poll(items, 2, 100);
    // Refused by the dealer before it ever answered: every request waiting fails with why.
    if (Status refused = connected.ok() ? dealer->Refused() : OkStatus(); !refused.ok()) {
      for (auto& [id, p] : pending_) p.done(refused);
      pending_.clear();
    }
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t n;
      (void)!::read(wake_fd_, &n, sizeof n);
      std::vector<std::pair<proto::DealerRequest, Callback>> out;
      {
        std::lock_guard lock(mu_);
        out.swap(outbox_);
      }
      for (auto& [req, done] : out) {
        const uint64_t id = next_id_++;
        req.set_request_id(id);
        if (!connected.ok()) {
          done(connected);
          continue;
        }
        if (!dealer->Send(std::move(req))) {
          done(Error(StatusCode::kUnavailable, "cannot send to the tile dealer at {}", endpoint_));
          continue;
        }
        pending_.emplace(id, Pending{std::move(done), wire::NowMs() + timeout_ms_});
      }
    }
    while (auto in = connected.ok() ? dealer->Next(0) : std::nullopt) {
      auto it = pending_.find(in->header.request_id());
      if (it == pending_.end()) continue;  // timed out already
      auto done = std::move(it->second.done);
      pending_.erase(it);
      backoff_ms_ = 0;
      retry_at_ms_ = 0;
      if (Status s = wire::FromProto(in->header.status()); !s.ok()) {
        done(s);
      } else {
        done(std::move(*in));
      }
    }
    // Ids grow with time: the oldest requests come first.
    const int64_t now = wire::NowMs();
    while (!pending_.empty() && pending_.begin()->second.deadline_ms < now) {
      auto done = std::move(pending_.begin()->second.done);
      pending_.erase(pending_.begin());
      if (retry_at_ms_.load() <= now) {  // not already waiting out an earlier silence
        backoff_ms_ = std::clamp<int64_t>(backoff_ms_ * 2, kFirstRetryMs, kLongestRetryMs);
        retry_at_ms_ = now + backoff_ms_;
      }
      done(Error(StatusCode::kUnavailable,
                 "no answer from the tile dealer at {} within {} ms: is it running? (`tessera up` "
                 "starts one; `tessera serve dealer` runs one alone)",
                 endpoint_, timeout_ms_));
    }
  }
  for (auto& [id, p] : pending_) p.done(Error(StatusCode::kUnavailable, "the client is closing"));
  std::lock_guard lock(mu_);
  for (auto& [req, done] : outbox_) done(Error(StatusCode::kUnavailable, "the client is closing"));
}

}  // namespace tessera::internal
