// Wire helpers: the one place where ZeroMQ sockets are made, and the framing of
// protobuf headers plus Blosc payload frames (see proto/tessera.proto).
//
// This header pulls in zmq.hpp and protobuf: include it from .cc files only,
// never from a public header.
//
//   zmq::socket_t s = wire::MakeSocket(zmq::socket_type::dealer);
//   s.connect(endpoint);
//   wire::Send(s, {}, request);                 // header only
//   auto in = wire::Receive(s, 5000);           // std::nullopt on timeout
//   proto::ManagerReply reply;
//   Status st = wire::ParseHeader(*in, &reply); // INVALID_ARGUMENT / VERSION_MISMATCH
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message_lite.h>
#include <zmq.hpp>

#include "common/status/status.h"
#include "proto/tessera.pb.h"

namespace tessera::wire {

inline constexpr uint32_t kProtocolVersion = 1;

/// The process's ZeroMQ context (two I/O threads).
zmq::context_t& Context();

/// What one peer may make a socket hold: no message part above `max_part_bytes` (a peer
/// that sends one is disconnected by ZeroMQ before it is buffered), at most `max_parts` parts
/// in one message (Receive drops the rest and marks the message), and at most
/// `max_queued_parts` parts queued per peer (then ZeroMQ stops reading from it). A socket's
/// memory is therefore bounded by peers x max_queued_parts x max_part_bytes.
struct Limits {
  uint64_t max_part_bytes = uint64_t{64} << 20;
  uint32_t max_parts = 1024;
  int max_queued_parts = 100000;
};

/// A request endpoint (manager, dealer): a header of at most 16 MiB (the largest is a scan
/// plan's JSON, which common/plan bounds below that), a few frames.
inline constexpr Limits kRequestLimits{.max_part_bytes = uint64_t{16} << 20, .max_parts = 8,
                                       .max_queued_parts = 1000};

/// Makes a socket with Tessera's defaults: linger 0, high-water marks only as a last
/// resort (flow control is by credit), TCP keepalive, the receive limits, and the
/// security options of the process's configuration applied in this one place.
zmq::socket_t MakeSocket(zmq::socket_type type, const Limits& limits = {});

/// The process's CurveZMQ keys, set once at start-up before any socket is made. A server
/// process sets its `server_*` keys: its tcp:// binds become CURVE servers, and its ipc://
/// binds PLAIN servers, whose peers the process's ZAP handler (common/security) admits. A
/// process that connects sets its own key pair and the `server_key` of the stack it talks to:
/// over tcp:// it is a CURVE client; over ipc:// (a Unix socket on the stack's host, which no
/// one can overhear and only the stack's user can have bound) it proves the same key by
/// handing over its secret as ZeroMQ's PLAIN password, and nothing is encrypted. Empty keys:
/// plain TCP and ipc (insecure).
struct Security {
  std::string server_public, server_secret;
  std::string client_public, client_secret;
  std::string server_key;
  std::string credential;   ///< what the client keys are, for errors: "credential 'scope-3' (PATH)"
  std::string client_name;  ///< the credential's name: the PLAIN user name over ipc://
};
void SetSecurity(const Security& security);
const Security& GetSecurity();

/// Whether a peer's key (the "Key" property its handshake attached to its messages) is still
/// admitted: set by the process's ZAP handler, so that a key revoked after it connected is
/// refused from its next message on (Admitted() says why). Unset: every key is.
void SetAdmission(std::function<bool(std::string_view key)> still_admitted);

/// Connects, as a CURVE client of `GetSecurity().server_key` for a tcp:// endpoint, a PLAIN
/// client holding the process's key for an ipc:// one, when keys are set. INVALID_ARGUMENT for
/// an endpoint ZeroMQ does not take.
Status Connect(zmq::socket_t& socket, const std::string& endpoint);

/// Several roles of one kind named in one endpoint string, "tcp://a:7401,tcp://b:7401" (the
/// manager's "dealer" when a stack runs several dealers): split where a comma is followed by a
/// scheme (tcp://, ipc://, inproc://), so an ipc:// path may hold commas. Empty parts dropped.
std::vector<std::string> SplitEndpoints(const std::string& list);

/// Connects to every endpoint of a list (SplitEndpoints): a PUB socket publishing to each dealer.
Status ConnectAll(zmq::socket_t& socket, const std::string& list);

/// The order in which every client tries a stack's tile dealers for `slide`: rendezvous (highest
/// random weight) hashing, each dealer weighted by XXH64(slide + "\n" + its endpoint, seed 0),
/// highest first. Every client computes the same order from the manager's list, so a slide's
/// chunks are cached by one dealer; a dealer's loss moves only its own slides, to the next.
std::vector<size_t> RankDealers(const std::string& slide, const std::vector<std::string>& dealers);

/// The role the ZAP handler gave the peer that sent `m` ("admin", "scanner", ...); empty
/// when the connection is not authenticated (an insecure stack's, inproc).
std::string PeerRole(const zmq::message_t& m);

/// Whether a tcp:// endpoint listens on loopback only (127.0.0.0/8, ::1, localhost).
bool IsLoopback(const std::string& endpoint);

/// Binds and returns the resolved endpoint (a `tcp://host:0` or `:*` port is chosen
/// by the OS); when server keys are set, a tcp:// bind is a CURVE server and an ipc:// bind
/// a PLAIN server (see Security), both admitted by the ZAP handler. A socket may bind both.
/// A tcp:// endpoint whose socket the parent holds (listener.h) serves on that socket.
/// UNAVAILABLE naming the endpoint when the bind fails; FAILED_PRECONDITION for a tcp://
/// address beyond loopback without server keys (nothing there would check who connects).
Result<std::string> Bind(zmq::socket_t& socket, const std::string& endpoint);

/// "ipc://PATH" for a Unix socket at `path`, or empty when the path is too long for one
/// (the kernel takes 107 bytes; kept under 100).
std::string IpcEndpoint(const std::string& path);

/// Whether this process may connect to the Unix socket an ipc:// endpoint names (it exists
/// and may be read and written); false for any other endpoint.
bool CanOpenIpc(const std::string& endpoint);

/// This host as its processes see it, for a client to tell whether a server's ipc://
/// endpoints are reachable from where it runs: the kernel's boot id and the network
/// namespace (roles in separate namespaces stand for separate hosts).
std::string HostId();

/// zmq::poll that returns 0 when a signal interrupts it (the caller checks its stop flag).
int Poll(zmq::pollitem_t* items, size_t count, int timeout_ms);

/// A received multipart message: routing envelope (ROUTER side), header, payloads.
struct Message {
  std::optional<zmq::message_t> identity;  ///< set when received on a ROUTER socket
  zmq::message_t header;
  std::vector<zmq::message_t> payload;
  uint64_t dropped_parts = 0;  ///< parts beyond Limits::max_parts, received and dropped
};

/// OK when the peer that sent `m` holds one of `roles` or is an admin; PERMISSION_DENIED
/// naming its credential and `what` otherwise. Peers of a process without server keys (a
/// stack run --insecure) are not authenticated and pass.
Status Authorize(const Message& m, std::initializer_list<std::string_view> roles, std::string_view what);

/// OK, or UNAUTHENTICATED naming the credential when `m` comes from a key the stack has
/// revoked since the peer connected (see SetAdmission).
Status Admitted(const Message& m);

/// Receives one message, waiting at most `timeout_ms` (-1 forever). `router` says
/// whether the first frame is a routing identity. std::nullopt on timeout; a message
/// with fewer frames than a header is returned with an empty header; one with more than
/// `max_parts` payload frames keeps the first ones and counts the rest (ParseHeader then
/// refuses it).
std::optional<Message> Receive(zmq::socket_t& socket, int timeout_ms, bool router = false,
                               uint32_t max_parts = Limits{}.max_parts);

/// Sends identity (if any), the serialized header, then the payload frames (moved).
/// Returns false when the socket would block past its send timeout or is closed.
bool Send(zmq::socket_t& socket, const zmq::message_t* identity,
          const google::protobuf::MessageLite& header,
          std::vector<zmq::message_t> payload = {});

/// Sends a received message on, as it is: identity (if any), header, payload frames (moved).
bool Forward(zmq::socket_t& socket, Message& message);

/// Parses `message.header` into `out` and checks its `version` field.
/// INVALID_ARGUMENT for bytes that are not a header of this type, VERSION_MISMATCH
/// for another protocol version.
template <typename Proto>
Status ParseHeader(const Message& message, Proto* out) {
  if (message.dropped_parts > 0) {
    return Error(StatusCode::kInvalidArgument, "malformed message: {} payload frames beyond the {} this endpoint takes",
                 message.dropped_parts, message.payload.size());
  }
  if (message.header.size() == 0 ||
      !out->ParseFromArray(message.header.data(), static_cast<int>(message.header.size()))) {
    return Error(StatusCode::kInvalidArgument,
                 "malformed message: the header frame ({} bytes) is not a Tessera {}",
                 message.header.size(), out->GetTypeName());
  }
  if (out->version() != kProtocolVersion) {
    return Error(StatusCode::kVersionMismatch,
                 "protocol version {} is not supported (this side speaks {})", out->version(),
                 kProtocolVersion);
  }
  return OkStatus();
}

/// Status <-> proto::Status.
void ToProto(const Status& status, proto::Status* out);
Status FromProto(const proto::Status& status);

/// A payload frame that shares `bytes` (keeps them alive until ZeroMQ has sent them)
/// instead of copying them.
zmq::message_t Share(std::shared_ptr<const std::vector<uint8_t>> bytes);

/// A payload frame's bytes.
inline std::span<const uint8_t> Bytes(const zmq::message_t& m) {
  return {static_cast<const uint8_t*>(m.data()), m.size()};
}

/// ZeroMQ's socket monitor on one socket, told of its CURVE handshakes: a client learns at
/// once that a server refused its credential instead of waiting out a timeout. Make it
/// before the socket connects.
class HandshakeWatch {
 public:
  explicit HandshakeWatch(zmq::socket_t& socket);
  /// Pollable (ZMQ_POLLIN) when events arrived; nullptr if the monitor could not start.
  void* handle() { return events_.handle(); }
  /// Reads the events that arrived; UNAUTHENTICATED naming the process's credential and
  /// what to do once the server at `endpoint` has refused the handshake.
  Status Drain(const std::string& endpoint);

 private:
  static Status Refused(const std::string& endpoint, bool auth);
  zmq::socket_t events_;
  bool succeeded_ = false;
  int hangups_ = 0;
};

/// One request-reply exchange with a ROUTER service over a fresh DEALER socket.
/// UNAVAILABLE (naming the endpoint and what to check) when no reply comes within
/// `timeout_ms`; UNAUTHENTICATED naming the credential as soon as the service has refused
/// the handshake (a key it does not know or revoked, another stack's key, no key at all).
Result<Message> Call(const std::string& endpoint, const google::protobuf::MessageLite& request,
                     int timeout_ms, std::vector<zmq::message_t> payload = {});

/// Monotonic milliseconds.
inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Monotonic microseconds.
inline int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// A random 64-bit id (process incarnations, slide ids).
uint64_t RandomId();

}  // namespace tessera::wire
