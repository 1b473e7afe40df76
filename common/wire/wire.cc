#include "common/wire/wire.h"

#include <xxhash.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include "common/log/log.h"
#include "common/wire/listener.h"
#include "common/wire/rpc.h"

namespace tessera::wire {

namespace {

// protobuf logs an error for every string field with invalid UTF-8 it parses: a peer sending
// such messages in a loop would flood the log. Its messages go to our log, rate-limited.
void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line, const std::string& message) {
  static std::atomic<uint64_t> count{0};
  const uint64_t n = ++count;
  if (n > 10 && n % 1000 != 0) return;
  auto log = log::Get("protobuf");
  const auto lvl = level >= google::protobuf::LOGLEVEL_ERROR ? spdlog::level::warn : spdlog::level::info;
  log->log(lvl, "messages={} {}:{} {}", n, file, line, message);
}

}  // namespace

zmq::context_t& Context() {
  static zmq::context_t* context = [] {
    google::protobuf::SetLogHandler(&ProtobufLog);
    return new zmq::context_t(2);  // never destroyed: outlives sockets
  }();
  return *context;
}

void LogRefused(const char* component, const Status& status, uint64_t refused) {
  log::Get(component)->warn("refused={} status={} {}", refused, StatusCodeName(status.code()), status.message());
}

zmq::socket_t MakeSocket(zmq::socket_type type, const Limits& limits) {
  zmq::socket_t s(Context(), type);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, 100000);
  s.set(zmq::sockopt::rcvhwm, limits.max_queued_parts);
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits.max_part_bytes));
  s.set(zmq::sockopt::tcp_keepalive, 1);
  // Chunks are hundreds of kilobytes: larger kernel buffers mean fewer wake-ups per frame.
  s.set(zmq::sockopt::sndbuf, 4 << 20);
  s.set(zmq::sockopt::rcvbuf, 4 << 20);
  s.set(zmq::sockopt::reconnect_ivl, 50);
  s.set(zmq::sockopt::reconnect_ivl_max, 1000);
  if (type == zmq::socket_type::router) s.set(zmq::sockopt::router_mandatory, 1);
  return s;
}

namespace {
Security& ProcessSecurity() {
  static Security security;
  return security;
}
}  // namespace

void SetSecurity(const Security& security) { ProcessSecurity() = security; }

namespace {
std::mutex admission_mu;
std::function<bool(std::string_view)>& Admission() {
  static std::function<bool(std::string_view)> admission;
  return admission;
}
}  // namespace

void SetAdmission(std::function<bool(std::string_view key)> still_admitted) {
  std::lock_guard lock(admission_mu);
  Admission() = std::move(still_admitted);
}

Status Admitted(const Message& m) {
  const char* key = zmq_msg_gets(const_cast<zmq_msg_t*>(m.header.handle()), "Key");
  if (key == nullptr) return OkStatus();  // not a CURVE peer admitted by our ZAP handler
  {
    std::lock_guard lock(admission_mu);
    if (!Admission() || Admission()(key)) return OkStatus();
  }
  const char* user = zmq_msg_gets(const_cast<zmq_msg_t*>(m.header.handle()), "User-Id");
  return Error(StatusCode::kUnauthenticated,
               "credential '{}' was revoked: ask the stack's admin for a new one (tessera credential new)",
               user != nullptr ? user : "?");
}
const Security& GetSecurity() { return ProcessSecurity(); }

Status Connect(zmq::socket_t& socket, const std::string& endpoint) {
  const Security& sec = GetSecurity();
  try {
    if (endpoint.starts_with("tcp://") && !sec.server_key.empty()) {
      socket.set(zmq::sockopt::curve_serverkey, sec.server_key);
      socket.set(zmq::sockopt::curve_publickey, sec.client_public);
      socket.set(zmq::sockopt::curve_secretkey, sec.client_secret);
    } else if (endpoint.starts_with("ipc://") && !sec.client_secret.empty()) {
      // A Unix socket: the key's proof travels where no one can read it (see Security).
      socket.set(zmq::sockopt::plain_username, sec.client_name.empty() ? std::string("tessera") : sec.client_name);
      socket.set(zmq::sockopt::plain_password, sec.client_secret);
    }
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Error(StatusCode::kInvalidArgument, "bad endpoint '{}': {}", endpoint, e.what());
  }
  return OkStatus();
}

std::vector<std::string> SplitEndpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t at = list.find(','); begin <= list.size(); at = list.find(',', at + 1)) {
    if (at != std::string::npos) {
      const std::string_view next = std::string_view(list).substr(at + 1);
      if (!next.starts_with("tcp://") && !next.starts_with("ipc://") && !next.starts_with("inproc://")) continue;
    }
    const size_t end = at == std::string::npos ? list.size() : at;
    if (end > begin) out.push_back(list.substr(begin, end - begin));
    if (at == std::string::npos) break;
    begin = at + 1;
  }
  return out;
}

Status ConnectAll(zmq::socket_t& socket, const std::string& list) {
  for (const auto& endpoint : SplitEndpoints(list)) TESSERA_RETURN_IF_ERROR(Connect(socket, endpoint));
  return OkStatus();
}

std::vector<size_t> RankDealers(const std::string& slide, const std::vector<std::string>& dealers) {
  std::vector<std::pair<uint64_t, size_t>> weights;
  for (size_t i = 0; i < dealers.size(); ++i) {
    const std::string key = slide + "\n" + dealers[i];
    weights.emplace_back(XXH64(key.data(), key.size(), 0), i);
  }
  std::sort(weights.begin(), weights.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<size_t> order;
  for (const auto& w : weights) order.push_back(w.second);
  return order;
}

std::string PeerRole(const zmq::message_t& m) {
  // zmq_msg_gets does not change the message; cppzmq's wrapper is not const.
  const char* role = zmq_msg_gets(const_cast<zmq_msg_t*>(m.handle()), "Role");
  return role != nullptr ? role : "";  // no such property: not authenticated
}

Status Authorize(const Message& m, std::initializer_list<std::string_view> roles, std::string_view what) {
  const std::string role = PeerRole(m.header);
  if (role.empty() || role == "admin") return OkStatus();  // not authenticated: see the header
  for (std::string_view r : roles) {
    if (r == role) return OkStatus();
  }
  const char* user = zmq_msg_gets(const_cast<zmq_msg_t*>(m.header.handle()), "User-Id");
  return Error(StatusCode::kPermissionDenied, "credential '{}' (role {}) may not {}: that takes {}{}",
               user != nullptr ? user : "?", role, what, roles.size() == 0 ? "" : "a ",
               roles.size() == 0 ? std::string("an admin") : fmt::format("{} or admin credential", fmt::join(roles, ", ")));
}

bool IsLoopback(const std::string& endpoint) {
  if (!endpoint.starts_with("tcp://")) return true;
  std::string host = endpoint.substr(6, endpoint.rfind(':') == std::string::npos ? std::string::npos : endpoint.rfind(':') - 6);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host.starts_with("127.") || host == "::1" || host == "localhost";
}

Result<std::string> Bind(zmq::socket_t& socket, const std::string& endpoint) {
  const Security& sec = GetSecurity();
  if (sec.server_secret.empty() && !IsLoopback(endpoint)) {
    return Error(StatusCode::kFailedPrecondition,
                 "refusing to listen on {} without security: anyone on the network could push, read or close "
                 "slides. Give the stack's security folder (--security DATA/security, or run `tessera up` "
                 "without --insecure), or listen on 127.0.0.1",
                 endpoint);
  }
  // Each bind takes the mechanism the socket's options name at that moment.
  if (endpoint.starts_with("tcp://") && !sec.server_secret.empty()) {
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, sec.server_secret);
    socket.set(zmq::sockopt::zap_domain, "tessera");
  } else if (endpoint.starts_with("ipc://") && !sec.server_secret.empty()) {
    socket.set(zmq::sockopt::plain_server, 1);
    socket.set(zmq::sockopt::zap_domain, "tessera");
  }
  std::string ep = endpoint;
  if (ep.size() > 2 && ep.ends_with(":0")) ep = ep.substr(0, ep.size() - 1) + "*";
  // A socket the parent holds for this endpoint (listener.h) is served as it is: ZeroMQ takes
  // it for this one bind, not the socket's later ones.
  const int inherited = endpoint.starts_with("tcp://") ? TakeInheritedListener(endpoint) : -1;
  if (inherited >= 0) socket.set(zmq::sockopt::use_fd, inherited);
  try {
    socket.bind(ep);
  } catch (const zmq::error_t& e) {
    if (inherited >= 0) socket.set(zmq::sockopt::use_fd, -1);
    return Error(StatusCode::kUnavailable, "cannot bind {}: {} (is another process using it?)",
                 endpoint, e.what());
  }
  if (inherited >= 0) socket.set(zmq::sockopt::use_fd, -1);
  return socket.get(zmq::sockopt::last_endpoint);
}

std::string IpcEndpoint(const std::string& path) { return path.size() < 100 ? "ipc://" + path : ""; }

bool CanOpenIpc(const std::string& endpoint) {
  return endpoint.starts_with("ipc://") && ::access(endpoint.c_str() + 6, R_OK | W_OK) == 0;
}

std::string HostId() {
  static const std::string id = [] {
    std::string boot;
    if (FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof buf, f) != nullptr) boot = buf;
      std::fclose(f);
    }
    while (!boot.empty() && (boot.back() == '\n' || boot.back() == ' ')) boot.pop_back();
    struct stat st {};
    const uint64_t netns = ::stat("/proc/self/ns/net", &st) == 0 ? uint64_t{st.st_ino} : 0;
    return boot.empty() ? std::string() : fmt::format("{}/net:{}", boot, netns);
  }();
  return id;
}

int Poll(zmq::pollitem_t* items, size_t count, int timeout_ms) {
  try {
    return zmq::poll(items, count, std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;  // a signal: the caller checks its stop flag
    throw;
  }
}

std::optional<Message> Receive(zmq::socket_t& socket, int timeout_ms, bool router, uint32_t max_parts) {
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (Poll(&item, 1, timeout_ms) <= 0) return std::nullopt;
  std::vector<zmq::message_t> frames;
  const size_t keep = size_t{max_parts} + (router ? 2 : 1);  // + identity and header
  uint64_t dropped = 0;
  while (true) {
    zmq::message_t m;
    if (!socket.recv(m, zmq::recv_flags::none)) break;
    const bool more = m.more();
    if (frames.size() < keep) {
      frames.push_back(std::move(m));
    } else {
      ++dropped;
    }
    if (!more) break;
  }
  Message out;
  out.dropped_parts = dropped;
  size_t i = 0;
  if (router && i < frames.size()) out.identity = std::move(frames[i++]);
  if (i < frames.size()) out.header = std::move(frames[i++]);
  for (; i < frames.size(); ++i) out.payload.push_back(std::move(frames[i]));
  return out;
}

bool Send(zmq::socket_t& socket, const zmq::message_t* identity,
          const google::protobuf::MessageLite& header, std::vector<zmq::message_t> payload) {
  try {
    if (identity != nullptr) {
      zmq::message_t id(identity->data(), identity->size());
      if (!socket.send(id, zmq::send_flags::sndmore)) return false;
    }
    zmq::message_t head(header.ByteSizeLong());
    header.SerializeWithCachedSizesToArray(static_cast<uint8_t*>(head.data()));
    if (!socket.send(head, payload.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore)) {
      return false;
    }
    for (size_t i = 0; i < payload.size(); ++i) {
      const auto flags = i + 1 < payload.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!socket.send(payload[i], flags)) return false;
    }
    return true;
  } catch (const zmq::error_t&) {
    // EHOSTUNREACH on a ROUTER whose peer left: the peer will reconnect and resend.
    return false;
  }
}

bool Forward(zmq::socket_t& socket, Message& message) {
  try {
    if (message.identity && !socket.send(*message.identity, zmq::send_flags::sndmore)) return false;
    const auto last = message.payload.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore;
    if (!socket.send(message.header, last)) return false;
    for (size_t i = 0; i < message.payload.size(); ++i) {
      const auto flags = i + 1 < message.payload.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!socket.send(message.payload[i], flags)) return false;
    }
    return true;
  } catch (const zmq::error_t&) {
    return false;  // a ROUTER's peer that left
  }
}

zmq::message_t Share(std::shared_ptr<const std::vector<uint8_t>> bytes) {
  using Keep = std::shared_ptr<const std::vector<uint8_t>>;
  auto* keep = new Keep(std::move(bytes));
  return zmq::message_t(
      const_cast<uint8_t*>((*keep)->data()), (*keep)->size(),
      [](void*, void* hint) { delete static_cast<Keep*>(hint); }, keep);
}

void ToProto(const Status& status, proto::Status* out) {
  out->set_code(static_cast<proto::StatusCode>(status.code()));
  out->set_message(status.message());
}

Status FromProto(const proto::Status& status) {
  if (status.code() == proto::OK) return OkStatus();
  return Status(static_cast<StatusCode>(status.code()), status.message());
}

HandshakeWatch::HandshakeWatch(zmq::socket_t& socket) {
  static std::atomic<uint64_t> next{0};
  const std::string ep = fmt::format("inproc://tessera-handshake-{}", next++);
  if (zmq_socket_monitor(socket.handle(), ep.c_str(),
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
    return;
  }
  events_ = zmq::socket_t(Context(), zmq::socket_type::pair);
  events_.set(zmq::sockopt::linger, 0);
  events_.connect(ep);
}

Status HandshakeWatch::Drain(const std::string& endpoint) {
  while (events_.handle() != nullptr) {
    zmq::message_t head, addr;
    if (!events_.recv(head, zmq::recv_flags::dontwait)) break;
    if (head.more()) (void)events_.recv(addr, zmq::recv_flags::dontwait);
    if (head.size() < 2) continue;
    uint16_t event = 0;
    std::memcpy(&event, head.data(), 2);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) succeeded_ = true;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) return Refused(endpoint, true);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
      return Refused(endpoint, false);
    }
    // A peer that hangs up before every handshake (it could not read our CURVE hello):
    // after two tries it is not a passing fault.
    if (event == ZMQ_EVENT_DISCONNECTED && !succeeded_ && ++hangups_ >= 2) return Refused(endpoint, false);
  }
  return OkStatus();
}

Status HandshakeWatch::Refused(const std::string& endpoint, bool auth) {
  const Security& sec = GetSecurity();
  if (sec.server_key.empty()) {
    return Error(StatusCode::kUnauthenticated,
                 "the stack at {} is secured and this process has no credential for it: pass --credential FILE "
                 "(the credential= of `tessera up`'s ready line, or one from `tessera credential new`) or set "
                 "TESSERA_CREDENTIAL",
                 endpoint);
  }
  if (auth) {
    return Error(StatusCode::kUnauthenticated,
                 "the stack at {} refused {}: its key is unknown there or was revoked. Ask the stack's admin "
                 "for a new one (tessera credential new)",
                 endpoint, sec.credential.empty() ? "this process's key" : sec.credential);
  }
  return Error(StatusCode::kUnauthenticated,
               "the stack at {} did not accept {}: the credential is another stack's (its server key differs) "
               "or the stack runs --insecure",
               endpoint, sec.credential.empty() ? "this process's key" : sec.credential);
}

Result<Message> Call(const std::string& endpoint, const google::protobuf::MessageLite& request,
                     int timeout_ms, std::vector<zmq::message_t> payload) {
  zmq::socket_t s = MakeSocket(zmq::socket_type::dealer);
  HandshakeWatch watch(s);
  TESSERA_RETURN_IF_ERROR(Connect(s, endpoint));
  if (!Send(s, nullptr, request, std::move(payload))) {
    return Error(StatusCode::kUnavailable, "cannot send to {}", endpoint);
  }
  std::optional<Message> reply;
  for (const int64_t end = NowMs() + timeout_ms; !reply;) {
    const int64_t left = end - NowMs();
    if (left < 0) break;
    zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0}, {watch.handle(), 0, ZMQ_POLLIN, 0}};
    if (Poll(items, watch.handle() != nullptr ? 2 : 1, static_cast<int>(left)) <= 0) continue;
    TESSERA_RETURN_IF_ERROR(watch.Drain(endpoint));
    if (items[0].revents & ZMQ_POLLIN) reply = Receive(s, 0);
  }
  if (!reply) {
    return Error(StatusCode::kUnavailable,
                 "no answer from {} within {} ms: is the service running there? "
                 "(start one with `tessera up`, or pass --server / TESSERA_SERVER)",
                 endpoint, timeout_ms);
  }
  return std::move(*reply);
}

uint64_t RandomId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace tessera::wire
