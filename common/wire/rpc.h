// Typed request servers and stubs: where a role binds its request endpoint and where every
// message a peer sends it is checked, once, before the role's code sees it.
//
// A Server<Request, Reply> is a ROUTER socket with the endpoint's receive limits. Next()
// hands out only requests that passed every check: a peer whose key is still admitted (not
// revoked since it connected), no dropped parts, a header that parses
// as Request, this protocol version, the peer's role allowed to make it (Policy::authorize)
// and its values in range (Policy::validate). Every other message is answered at once with
// a Reply carrying the status that says why, and the role never sees it. Answer() sends one
// reply per request, with its status (and request id, for protocols that have one).
//
//   auto server = wire::Server<proto::ManagerRequest, proto::ManagerReply>::Bind(
//       "tcp://127.0.0.1:7400", wire::kRequestLimits, {.authorize = &Authorize});
//   while (auto call = server->Next(100)) {
//     proto::ManagerReply reply;
//     Status s = Handle(call->request, &reply);
//     server->Answer(*call, std::move(reply), s);
//   }
//
// Ask<Reply>() is the stub: one request, its reply parsed and its status folded into the
// Result (UNAVAILABLE / UNAUTHENTICATED from wire::Call when no answer comes).
//
// This header pulls in zmq.hpp and protobuf: include it from .cc files only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/wire/wire.h"

namespace tessera::wire {

/// Logs a refused message to `component`'s log ("refused=N status=...").
void LogRefused(const char* component, const Status& status, uint64_t refused);

/// A request that passed the server's checks.
template <typename Request>
struct Incoming {
  Message message;  ///< as received: identity, header (with the peer's properties), payload
  Request request;
};

/// A message from a stream's server that passed the checks.
template <typename Header>
struct Received {
  Message message;  ///< as received: header bytes and payload
  Header header;    ///< parsed
};

template <typename Request, typename Reply>
class Server {
  // Whether the protocol's reply carries a Status field `status`.
  static constexpr bool kHasStatus = requires(Reply r, const Status& s) { ToProto(s, r.mutable_status()); };

 public:
  struct Policy {
    /// Who may make the request (see wire::Authorize); every peer when unset.
    Status (*authorize)(const Message&, const Request&) = nullptr;
    /// The request's values: finite numbers, ranges, sizes; any when unset.
    Status (*validate)(const Request&) = nullptr;
    /// How the protocol says a request failed, for replies without a `status` field (e.g.
    /// an ingest Fault); unset: the reply's `status`.
    void (*refuse)(const Status&, Reply*) = nullptr;
    /// The log that names what was refused (rate-limited: a flood of garbage is one line
    /// in a thousand).
    const char* log = "wire";
  };

  /// UNAVAILABLE naming the endpoint when it cannot be bound (see wire::Bind).
  static Result<Server> Bind(const std::string& endpoint, const Limits& limits, Policy policy) {
    Server s;
    s.socket_ = MakeSocket(zmq::socket_type::router, limits);
    s.limits_ = limits;
    s.policy_ = policy;
    TESSERA_ASSIGN_OR_RETURN(s.endpoint_, wire::Bind(s.socket_, endpoint));
    return s;
  }

  /// Serves `endpoint` too (a proxy's Unix socket beside its TCP port), with the mechanism
  /// wire::Bind gives it; the resolved endpoint.
  Result<std::string> AlsoBind(const std::string& endpoint) { return wire::Bind(socket_, endpoint); }

  /// The next request that passed every check, waiting at most `timeout_ms` for one (0: only
  /// what has arrived). Messages that did not pass are answered and skipped.
  std::optional<Incoming<Request>> Next(int timeout_ms) {
    for (int wait = timeout_ms;; wait = 0) {
      auto in = Receive(socket_, wait, /*router=*/true, limits_.max_parts);
      if (!in) return std::nullopt;
      if (!in->identity) continue;
      Incoming<Request> call{std::move(*in), {}};
      Status s = ParseHeader(call.message, &call.request);  // first: a refusal carries the request's id
      if (s.ok()) s = Admitted(call.message);
      if (s.ok() && policy_.authorize != nullptr) s = policy_.authorize(call.message, call.request);
      if (s.ok() && policy_.validate != nullptr) s = policy_.validate(call.request);
      if (s.ok()) return call;
      if (++refused_ <= 10 || refused_ % 1000 == 0) LogRefused(policy_.log, s, refused_);
      Reply reply;
      if (policy_.refuse != nullptr) {
        policy_.refuse(s, &reply);
      } else if constexpr (kHasStatus) {
        ToProto(s, reply.mutable_status());
      }
      Send(socket_, &*call.message.identity, Stamped(call, std::move(reply)));
    }
  }

  /// Sends `reply` for `call` with `status` (and the request's id, when the protocol has one).
  /// False when the peer is gone.
  bool Answer(const Incoming<Request>& call, Reply reply, const Status& status,
              std::vector<zmq::message_t> payload = {})
    requires kHasStatus
  {
    ToProto(status, reply.mutable_status());
    return Send(socket_, &*call.message.identity, Stamped(call, std::move(reply)), std::move(payload));
  }

  zmq::socket_t& socket() { return socket_; }
  const std::string& endpoint() const { return endpoint_; }
  /// Messages answered with an error before the role saw them.
  uint64_t refused() const { return refused_; }

 private:
  // The protocol version, and the request's id for protocols whose replies echo it.
  static Reply Stamped(const Incoming<Request>& call, Reply reply) {
    reply.set_version(kProtocolVersion);
    if constexpr (requires { reply.set_request_id(call.request.request_id()); }) {
      reply.set_request_id(call.request.request_id());
    }
    return reply;
  }

  zmq::socket_t socket_;
  Limits limits_;
  Policy policy_;
  std::string endpoint_;
  uint64_t refused_ = 0;
};

/// The client side of a streaming protocol (a scanner and its proxy, a worker or a stitcher
/// and the broker, the client library and the dealer): a DEALER socket to one server. Send()
/// stamps the protocol version; Next() hands out only messages that parse as Message at this
/// version, and logs (rate-limited) and skips the rest, which no peer answers. `Out` is what
/// it sends, for protocols whose requests and replies differ (the dealer's). Refused() says,
/// as soon as the server has refused this process's key, what credential to use instead.
///
///   TESSERA_ASSIGN_OR_RETURN(auto broker, wire::Stream<proto::BrokerMessage>::Connect(endpoint));
///   broker.Send(hello);
///   while (auto in = broker.Next(100)) Handle(in->header, in->message.payload);
template <typename Message, typename Out = Message>
class Stream {
 public:
  /// A DEALER with the stack's keys connected to `endpoint`; `routing_id` when not empty (a
  /// peer the server recognises after a reconnect). Fails only for an endpoint that cannot
  /// be connected to at all (a malformed one).
  static Result<Stream> Connect(const std::string& endpoint, const std::string& routing_id = "",
                                const Limits& limits = {}, const char* log = "wire") {
    Stream s;
    s.socket_ = std::make_unique<zmq::socket_t>(MakeSocket(zmq::socket_type::dealer, limits));
    if (!routing_id.empty()) s.socket_->set(zmq::sockopt::routing_id, routing_id);
    s.watch_ = std::make_unique<HandshakeWatch>(*s.socket_);
    s.endpoint_ = endpoint;
    s.limits_ = limits;
    s.log_ = log;
    TESSERA_RETURN_IF_ERROR(wire::Connect(*s.socket_, endpoint));
    return s;
  }

  /// Sends `m` with this protocol's version; false when it would block or the socket closed.
  bool Send(Out m, std::vector<zmq::message_t> payload = {}) {
    m.set_version(kProtocolVersion);
    return wire::Send(*socket_, nullptr, m, std::move(payload));
  }

  /// The next message that passed the checks, waiting at most `timeout_ms` for one.
  std::optional<Received<Message>> Next(int timeout_ms) {
    for (int wait = timeout_ms;; wait = 0) {
      auto in = Receive(*socket_, wait, /*router=*/false, limits_.max_parts);
      if (!in) return std::nullopt;
      Received<Message> got{std::move(*in), {}};
      Status s = ParseHeader(got.message, &got.header);
      if (s.ok()) {
        answered_ = true;
        return got;
      }
      if (++refused_ <= 10 || refused_ % 1000 == 0) LogRefused(log_, s, refused_);
    }
  }

  /// UNAUTHENTICATED naming the credential once the server refused this process's key, as
  /// long as it never answered on this stream: after its first answer a failed handshake is
  /// the server restarting mid-handshake (a key revoked since is answered UNAUTHENTICATED
  /// request by request, see wire::Admitted).
  Status Refused() {
    Status s = watch_->Drain(endpoint_);  // read the events either way
    return answered_ ? OkStatus() : s;
  }

  zmq::socket_t& socket() { return *socket_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  std::unique_ptr<zmq::socket_t> socket_;  // stable: the watch monitors it
  std::unique_ptr<HandshakeWatch> watch_;
  std::string endpoint_;
  Limits limits_;
  const char* log_ = "wire";
  uint64_t refused_ = 0;
  bool answered_ = false;  // a message passed Next()
};

/// One request to `endpoint` (its version set here) and its reply, checked, with its status
/// (for protocols whose replies carry one) folded into the Result.
template <typename Reply, typename Request>
Result<Reply> Ask(const std::string& endpoint, Request request, int timeout_ms) {
  request.set_version(kProtocolVersion);
  TESSERA_ASSIGN_OR_RETURN(Message in, Call(endpoint, request, timeout_ms));
  Reply reply;
  TESSERA_RETURN_IF_ERROR(ParseHeader(in, &reply));
  if constexpr (requires { FromProto(reply.status()); }) {
    TESSERA_RETURN_IF_ERROR(FromProto(reply.status()));
  }
  return reply;
}

}  // namespace tessera::wire
