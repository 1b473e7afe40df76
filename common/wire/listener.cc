#include "common/wire/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/log/log.h"

namespace tessera::wire {

Result<Listener> Listener::Open(const std::string& host, int port) {
  if (port < 0 || port > 65535) return Error(StatusCode::kInvalidArgument, "port {} is not a TCP port", port);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host == "*" ? "0.0.0.0" : host.c_str(), &a.sin_addr) != 1) {  // "*": every interface
    return Error(StatusCode::kInvalidArgument, "--host {} is not an IPv4 address", host);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error(StatusCode::kInternal, "socket: {}", std::strerror(errno));
  const int on = 1;
  socklen_t len = sizeof a;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, SOMAXCONN) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    ::close(fd);
    return Error(StatusCode::kUnavailable, "cannot listen on {}:{}: {}{}", host, port, std::strerror(e),
                 port != 0 && e == EADDRINUSE ? " (another program has the port: choose another, or 0)" : "");
  }
  const int chosen = ntohs(a.sin_port);
  return Listener(fd, chosen, fmt::format("tcp://{}:{}", host, chosen));
}

Listener::Listener(Listener&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), port_(o.port_), endpoint_(std::move(o.endpoint_)) {}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    port_ = o.port_;
    endpoint_ = std::move(o.endpoint_);
  }
  return *this;
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

std::string ListenFds(const std::vector<const Listener*>& listeners) {
  std::string out;
  for (const Listener* l : listeners) {
    if (!out.empty()) out += ' ';
    out += fmt::format("{}={}", l->endpoint(), l->fd());
  }
  return out;
}

namespace {

bool IsListeningTcp(int fd) {
  int accepting = 0, domain = 0;
  socklen_t len = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || accepting != 1) return false;
  len = sizeof domain;
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && (domain == AF_INET || domain == AF_INET6);
}

// The sockets named in the environment, read once.
std::map<std::string, int> ReadInherited() {
  std::map<std::string, int> fds;
  const char* value = std::getenv(kListenFdsVariable);
  if (value == nullptr) return fds;
  std::istringstream entries{std::string(value)};
  for (std::string entry; entries >> entry;) {
    const auto eq = entry.rfind('=');
    int fd = -1;
    const char* begin = entry.data() + (eq == std::string::npos ? entry.size() : eq + 1);
    const char* end = entry.data() + entry.size();
    const auto [ptr, ec] = std::from_chars(begin, end, fd);
    if (eq == std::string::npos || ec != std::errc() || ptr != end || fd < 0 || !IsListeningTcp(fd)) {
      log::Get("wire")->warn("ignoring {} entry '{}': not ENDPOINT=FD of a listening TCP socket", kListenFdsVariable,
                             entry);
      continue;
    }
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    fds[entry.substr(0, eq)] = fd;
  }
  ::unsetenv(kListenFdsVariable);
  return fds;
}

}  // namespace

int TakeInheritedListener(const std::string& endpoint) {
  static std::mutex mu;
  static std::map<std::string, int> inherited = ReadInherited();
  std::lock_guard lock(mu);
  auto it = inherited.find(endpoint);
  if (it == inherited.end()) return -1;
  const int fd = it->second;
  inherited.erase(it);
  return fd;
}

}  // namespace tessera::wire
