// The raw reference of bench/ingest's CURVE figures: libzmq alone streaming large messages
// over TCP loopback from one process to another (PUSH -> PULL, as a scanner streams frames to
// its proxy), plain and CurveZMQ (libsodium's XSalsa20-Poly1305), rounds alternating, in the
// same run. Per run it prints one line of key=value pairs: the payload rate the receiver saw
// and each side's CPU over the stream (getrusage of each process: its I/O thread encrypts or
// decrypts, its application thread sends or receives).
//
//   tessera_bench_curve --part-kib 1024 --seconds 3 --rounds 3
//   mode=plain round=1 parts=... GBps=... sender_cpu_s=... receiver_cpu_s=... cpu_s_per_GB=...
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <zmq.hpp>

#include "bench/stats.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Keys {
  char server_public[41], server_secret[41], client_public[41], client_secret[41];
};

// What the receiver reports back through the pipe.
struct Received {
  uint64_t parts = 0, bytes = 0;
  double seconds = 0, cpu_s = 0;
};

// The receiving process: binds a PULL socket (a CURVE server when `keys`), writes its port to
// `to_parent`, then counts parts until an empty one, timing from the first part to the end.
[[noreturn]] void Receive(const Keys* keys, int to_parent) {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::pull);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvhwm, 64);
  if (keys != nullptr) {
    s.set(zmq::sockopt::curve_server, 1);
    s.set(zmq::sockopt::curve_secretkey, std::string(keys->server_secret));
  }
  s.bind("tcp://127.0.0.1:0");
  const std::string ep = s.get(zmq::sockopt::last_endpoint);
  const int port = std::stoi(ep.substr(ep.rfind(':') + 1));
  if (write(to_parent, &port, sizeof port) != sizeof port) _exit(2);
  Received r;
  Clock::time_point first;
  double cpu0 = 0;
  for (;;) {
    zmq::message_t m;
    if (!s.recv(m)) continue;
    if (m.size() == 0) break;
    if (r.parts++ == 0) {
      first = Clock::now();
      cpu0 = tessera::bench::SelfCpuSeconds();
      continue;  // the first part starts the clock: it is not counted
    }
    r.bytes += m.size();
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - first).count();
  r.cpu_s = tessera::bench::SelfCpuSeconds() - cpu0;
  --r.parts;
  if (write(to_parent, &r, sizeof r) != sizeof r) _exit(2);
  _exit(0);
}

// One stream: forks a receiver, sends `part` bytes at a time for `seconds` from this process,
// without copying (as Tessera's senders do), and prints the line.
void Stream(const char* mode, int round, const Keys* keys, const std::vector<uint8_t>& part, double seconds) {
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  std::fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    Receive(keys, fds[1]);
  }
  close(fds[1]);
  int port = 0;
  if (read(fds[0], &port, sizeof port) != sizeof port) std::exit(1);
  Received r;
  double sender_cpu = 0;
  {
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::push);
    s.set(zmq::sockopt::linger, -1);  // the end marker must arrive
    s.set(zmq::sockopt::sndhwm, 64);
    if (keys != nullptr) {
      s.set(zmq::sockopt::curve_serverkey, std::string(keys->server_public));
      s.set(zmq::sockopt::curve_publickey, std::string(keys->client_public));
      s.set(zmq::sockopt::curve_secretkey, std::string(keys->client_secret));
    }
    s.connect(fmt::format("tcp://127.0.0.1:{}", port));
    auto send = [&] {
      s.send(zmq::message_t(const_cast<uint8_t*>(part.data()), part.size(), [](void*, void*) {}),
             zmq::send_flags::none);
    };
    send();  // connected (and the handshake done) before the clock starts
    const double cpu0 = tessera::bench::SelfCpuSeconds();
    const auto start = Clock::now();
    while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) send();
    s.send(zmq::message_t(), zmq::send_flags::none);
    if (read(fds[0], &r, sizeof r) != sizeof r) std::exit(1);
    sender_cpu = tessera::bench::SelfCpuSeconds() - cpu0;
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  const double gb = static_cast<double>(r.bytes) / 1e9;
  fmt::print("mode={} round={} part_bytes={} parts={} seconds={:.3f} GBps={:.3f} sender_cpu_s={:.3f} "
             "receiver_cpu_s={:.3f} cpu_s_per_GB={:.3f}\n",
             mode, round, part.size(), r.parts, r.seconds, gb / r.seconds, sender_cpu, r.cpu_s,
             (sender_cpu + r.cpu_s) / gb);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"libzmq over TCP loopback, plain and CURVE, large messages"};
  uint32_t part_kib = 1024;
  double seconds = 3;
  int rounds = 3;
  app.add_option("--part-kib", part_kib, "Message size in KiB")->capture_default_str();
  app.add_option("--seconds", seconds, "Stream for this long per run")->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds, each one plain and one CURVE run (order alternating)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!zmq_has("curve")) {
    fmt::print(stderr, "error: this libzmq has no CURVE\n");
    return 1;
  }
  Keys keys;
  if (zmq_curve_keypair(keys.server_public, keys.server_secret) != 0 ||
      zmq_curve_keypair(keys.client_public, keys.client_secret) != 0) {
    return 1;
  }
  std::vector<uint8_t> part(size_t{part_kib} << 10);
  for (size_t i = 0; i < part.size(); ++i) part[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  for (int round = 1; round <= rounds; ++round) {
    const bool plain_first = round % 2 == 1;
    for (int k = 0; k < 2; ++k) {
      const bool plain = (k == 0) == plain_first;
      Stream(plain ? "plain" : "curve", round, plain ? nullptr : &keys, part, seconds);
    }
  }
  return 0;
}
