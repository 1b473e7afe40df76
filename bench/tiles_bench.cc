// The reading side of bench/tiles. Subcommands, each printing what it measured as
// key=value pairs on one line (bench/tiles runs them and the h5py peer, and prints RESULTs):
//
//   chunks   random 512x512 chunk requests from N concurrent clients (each its own
//            connection, one request in flight), stored bytes or decoded pixels
//   regions  mosaic regions read and decoded by one client, one after another
//   latency  one client reading chunks at a steady rate (a viewer), e.g. during a scan
//   wire     the wire limit: ZeroMQ over TCP moving replies of the same sizes with
//            nothing else to do (`wire --bind` serves, `wire --connect` drives); with
//            `--curve` the server is a CURVE server and the driver its clients
//   decode   the decoding limit: the same chunks, read from the file into memory first,
//            then only checksummed and decoded, on every core (no I/O, no lock, no copy out)
//
// `chunks` and `wire --connect` also print the CPU they used over the measured requests
// (client_cpu_s, every thread of this process) and that of the server process named by
// --cpu-pid (server_cpu_s, from /proc), e.g. the tile dealer.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <zmq.hpp>

#include "bench/stats.h"
#include "client/client.h"
#include "common/codec/codec.h"
#include "common/mosaic/mosaic.h"
#include "common/storage/slide_file.h"
#include "common/wire/wire.h"

namespace tessera::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

std::string Latencies(const std::vector<double>& ms) {
  return fmt::format("p50_ms={:.3f} p99_ms={:.3f} max_ms={:.3f}", Percentile(ms, 0.5), Percentile(ms, 0.99),
                     Percentile(ms, 1.0));
}

[[noreturn]] void Die(const Status& s) {
  fmt::print(stderr, "error: {}\n", s.ToString());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r) {
  if (!r.ok()) Die(r.status());
  return std::move(*r);
}

struct Key {
  uint32_t tile, cy, cx;
};

// Every level-0 chunk of channel 0, plane 0: shuffled once (cold: each read once), or
// `count` drawn at random with replacement (warm).
std::vector<Key> Keys(const ScanPlan& plan, bool each_once, size_t count, uint32_t seed) {
  const LevelShape s = plan.Level(0);
  std::vector<Key> all;
  for (uint32_t t = 0; t < plan.tiles.size(); ++t)
    for (uint32_t cy = 0; cy < s.chunks_y(); ++cy)
      for (uint32_t cx = 0; cx < s.chunks_x(); ++cx) all.push_back({t, cy, cx});
  std::mt19937 rng(seed);
  if (each_once) {
    std::shuffle(all.begin(), all.end(), rng);
    return all;
  }
  std::uniform_int_distribution<size_t> pick(0, all.size() - 1);
  std::vector<Key> keys(count);
  for (auto& k : keys) k = all[pick(rng)];
  return keys;
}

// --remote: chunks through the dealer even on its host.
bool& Remote() {
  static bool remote = false;
  return remote;
}
ClientOptions Options() { return {.local_files = !Remote()}; }

// Reads one chunk, as stored (checksum verified) or decoded into pixels (into the thread's
// one Array, as a viewer's loop reads); returns the bytes read.
uint64_t ReadOne(Client& client, const std::string& slide, const ScanPlan& plan, const Key& k, bool decode) {
  if (!decode) return Must(client.ReadChunk(slide, {{k.tile, 0, 0}, 0, k.cy, k.cx})).bytes.size();
  const LevelShape s = plan.Level(0);
  const int64_t x = int64_t{k.cx} * s.chunk_x, y = int64_t{k.cy} * s.chunk_y;
  thread_local Array a;
  const Status read = client.ReadTile({.slide = slide, .tile = k.tile, .channels = {0}, .x = x, .y = y,
                                       .width = std::min<int64_t>(s.chunk_x, s.width - x),
                                       .height = std::min<int64_t>(s.chunk_y, s.height - y)},
                                      a);
  if (!read.ok()) Die(read);
  return a.data.size();
}

// "client_cpu_s=C server_cpu_s=S" since the given readings.
std::string CpuUsed(double self0, pid_t server_pid, double server0) {
  return fmt::format("client_cpu_s={:.3f} server_cpu_s={:.3f}", SelfCpuSeconds() - self0,
                     server_pid > 0 ? ProcessCpuSeconds(server_pid) - server0 : 0.0);
}

int Chunks(const std::string& server, const std::string& slide, int clients, bool each_once, size_t count,
           bool decode, uint32_t seed, const std::string& keys_out, const std::string& sizes_out, pid_t cpu_pid) {
  Client probe(server, Options());
  const ScanPlan plan = Must(probe.Describe(slide)).summary.plan;
  const std::vector<Key> keys = Keys(plan, each_once, count, seed);
  std::vector<std::vector<double>> ms(static_cast<size_t>(clients));
  std::vector<uint64_t> sizes(keys.size());
  std::vector<std::unique_ptr<Client>> conns;
  for (int c = 0; c < clients; ++c) {
    conns.push_back(std::make_unique<Client>(server, Options()));
    Must(conns.back()->Describe(slide));  // connected before the clock starts
  }
  std::atomic<size_t> next{0};
  const double self_cpu0 = SelfCpuSeconds(), server_cpu0 = cpu_pid > 0 ? ProcessCpuSeconds(cpu_pid) : 0;
  const auto start = Clock::now();
  {
    std::vector<std::jthread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (size_t i; (i = next.fetch_add(1)) < keys.size();) {
          const auto t0 = Clock::now();
          sizes[i] = ReadOne(*conns[static_cast<size_t>(c)], slide, plan, keys[i], decode);
          ms[static_cast<size_t>(c)].push_back(Seconds(t0) * 1e3);
        }
      });
    }
  }
  const double secs = Seconds(start);
  const std::string cpu = CpuUsed(self_cpu0, cpu_pid, server_cpu0);
  std::vector<double> all;
  for (const auto& v : ms) all.insert(all.end(), v.begin(), v.end());
  uint64_t bytes = 0;
  for (uint64_t b : sizes) bytes += b;
  if (!keys_out.empty()) {
    std::ofstream out(keys_out);
    for (const Key& k : keys) out << k.tile << ' ' << k.cy << ' ' << k.cx << '\n';
  }
  if (!sizes_out.empty()) {
    std::ofstream out(sizes_out);
    for (uint64_t b : sizes) out << b << '\n';
  }
  fmt::print("requests={} seconds={:.3f} per_s={:.1f} bytes={} MBps={:.1f} {} {}\n", keys.size(), secs,
             static_cast<double>(keys.size()) / secs, bytes, static_cast<double>(bytes) / secs / 1e6, Latencies(all),
             cpu);
  return 0;
}

int Regions(const std::string& server, const std::string& slide, uint32_t level, int64_t size, int count,
            uint32_t seed, const std::string& boxes_out, const std::string& dump) {
  Client client(server, Options());
  const SlideView view = Must(client.Describe(slide));
  const ScanPlan& plan = view.summary.plan;
  if (level >= view.level_count) level = view.level_count - 1;  // "coarsest"
  int64_t mw = 0, mh = 0;  // the mosaic's extent at `level`
  for (const auto& p : view.positions) {
    mw = std::max(mw, static_cast<int64_t>(p[0]) + plan.width);
    mh = std::max(mh, static_cast<int64_t>(p[1]) + plan.height);
  }
  mw >>= level, mh >>= level;
  std::mt19937 rng(seed);
  std::vector<std::array<int64_t, 4>> boxes;
  for (int i = 0; i < count; ++i) {
    if (size <= 0) {
      boxes.push_back({0, 0, mw, mh});  // the whole slide
      continue;
    }
    std::uniform_int_distribution<int64_t> x(0, std::max<int64_t>(0, mw - size)), y(0, std::max<int64_t>(0, mh - size));
    boxes.push_back({x(rng), y(rng), size, size});
  }
  std::vector<double> ms;
  uint64_t out_bytes = 0, read_bytes = 0;
  const uint64_t chunk_bytes = plan.Level(level).chunk_pixels() * DtypeSize(plan.dtype);
  // The least any reader of this chunking reads for the boxes: every chunk holding a visible
  // pixel, once (the geometry alone, from the slide's positions), and the same for square
  // chunks of other sides, to show what the chunking allows.
  std::vector<std::array<double, 2>> xy;
  for (const auto& p : view.positions) xy.push_back({p[0], p[1]});
  const mosaic::MosaicIndex index(std::move(xy), {plan.width, plan.height});
  auto least = [&](uint32_t ch, uint32_t cw) {
    uint64_t bytes = 0;
    for (const auto& [x, y, w, h] : boxes) {
      std::vector<std::array<uint32_t, 3>> chunks;
      for (const auto& c : mosaic::PlanRegion(index, static_cast<int>(level), {x, y, w, h}, ch, cw)) {
        chunks.push_back({c.tile, c.cy, c.cx});
      }
      std::sort(chunks.begin(), chunks.end());
      bytes += static_cast<uint64_t>(std::unique(chunks.begin(), chunks.end()) - chunks.begin()) * ch * cw *
               DtypeSize(plan.dtype);
    }
    return bytes;
  };
  const LevelShape shape = plan.Level(level);
  const uint64_t least_bytes = least(shape.chunk_y, shape.chunk_x), least_256 = least(256, 256),
                 least_128 = least(128, 128);
  Must(client.ReadRegion({.slide = slide, .level = level, .x = 0, .y = 0, .width = 1, .height = 1, .channels = {0}}));
  Array a;  // one buffer for every box, as an analysis loop reads (the peer does the same)
  std::vector<uint8_t> first;  // the first box's pixels, for --dump
  const auto start = Clock::now();
  for (size_t i = 0; i < boxes.size(); ++i) {
    const auto [x, y, w, h] = boxes[i];
    const auto t0 = Clock::now();
    const Status read = client.ReadRegion(
        {.slide = slide, .level = level, .x = x, .y = y, .width = w, .height = h, .channels = {0}}, a);
    if (!read.ok()) Die(read);
    ms.push_back(Seconds(t0) * 1e3);
    out_bytes += a.data.size();
    read_bytes += a.chunks_read * chunk_bytes;
    if (i == 0 && !dump.empty()) first = a.data;  // written after the clock stops
  }
  const double secs = Seconds(start);
  if (!dump.empty()) {
    std::ofstream(dump, std::ios::binary).write(reinterpret_cast<const char*>(first.data()),
                                                static_cast<std::streamsize>(first.size()));
  }
  if (!boxes_out.empty()) {
    std::ofstream out(boxes_out);
    for (const auto& b : boxes) out << level << ' ' << b[0] << ' ' << b[1] << ' ' << b[2] << ' ' << b[3] << '\n';
  }
  const auto vs = [&](uint64_t b) { return static_cast<double>(b) / static_cast<double>(out_bytes); };
  fmt::print("regions={} level={} seconds={:.3f} bytes={} GBps={:.3f} read_vs_needed={:.3f} least_vs_needed={:.3f} "
             "least_vs_needed_256={:.3f} least_vs_needed_128={:.3f} {}\n",
             boxes.size(), level, secs, out_bytes, static_cast<double>(out_bytes) / secs / 1e9, vs(read_bytes),
             vs(least_bytes), vs(least_256), vs(least_128), Latencies(ms));
  return 0;
}

int Latency(const std::string& server, const std::string& slide, double seconds, double rate, uint32_t seed) {
  Client client(server);
  const ScanPlan plan = Must(client.Describe(slide)).summary.plan;
  const auto keys = Keys(plan, false, static_cast<size_t>(seconds * rate) + 1, seed);
  std::vector<double> ms;
  const auto start = Clock::now();
  for (size_t i = 0; i < keys.size(); ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration<double>(static_cast<double>(i) / rate));
    const auto t0 = Clock::now();
    ReadOne(client, slide, plan, keys[i], false);
    ms.push_back(Seconds(t0) * 1e3);
  }
  fmt::print("requests={} {}\n", ms.size(), Latencies(ms));
  return 0;
}

// The wire's server: a ROUTER answering each request (8 bytes: the reply's size) with a
// small header frame and a payload of that size, sent without copying. Its sockets are
// made as Tessera's are (same context, buffers and limits).
int WireServe(const std::string& bind, bool curve) {
  zmq::socket_t s = wire::MakeSocket(zmq::socket_type::router);
  std::string key;  // the server's public key (Z85) with --curve
  if (curve) {
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0) Die(Error(StatusCode::kUnavailable, "libzmq has no CURVE"));
    s.set(zmq::sockopt::curve_server, 1);
    s.set(zmq::sockopt::curve_secretkey, std::string(sec));
    key = pub;
  }
  s.bind(bind);
  fmt::print("ready {}{}{}\n", s.get(zmq::sockopt::last_endpoint), key.empty() ? "" : " ", key);
  std::fflush(stdout);
  static std::vector<uint8_t> payload(64 << 20, 7);
  static uint8_t header[32] = {};
  for (;;) {
    zmq::message_t id, req;
    if (!s.recv(id) || !s.recv(req) || req.size() != 8) continue;
    uint64_t size;
    std::memcpy(&size, req.data(), 8);
    size = std::min<uint64_t>(size, payload.size());
    s.send(id, zmq::send_flags::sndmore);
    s.send(zmq::message_t(header, sizeof header, [](void*, void*) {}), zmq::send_flags::sndmore);
    s.send(zmq::message_t(payload.data(), size, [](void*, void*) {}), zmq::send_flags::none);
  }
}

int WireDrive(const std::string& connect, const std::string& server_key, int clients, const std::string& sizes_in,
              pid_t cpu_pid) {
  std::vector<uint64_t> sizes;
  std::ifstream in(sizes_in);
  for (uint64_t b; in >> b;) sizes.push_back(b);
  std::vector<zmq::socket_t> socks;
  for (int c = 0; c < clients; ++c) {
    socks.push_back(wire::MakeSocket(zmq::socket_type::dealer));
    if (!server_key.empty()) {  // a CURVE client, each connection its own key pair
      char pub[41], sec[41];
      if (zmq_curve_keypair(pub, sec) != 0) Die(Error(StatusCode::kUnavailable, "libzmq has no CURVE"));
      socks.back().set(zmq::sockopt::curve_serverkey, server_key);
      socks.back().set(zmq::sockopt::curve_publickey, std::string(pub));
      socks.back().set(zmq::sockopt::curve_secretkey, std::string(sec));
    }
    socks.back().connect(connect);
  }
  std::vector<std::vector<double>> ms(static_cast<size_t>(clients));
  std::atomic<size_t> next{0};
  auto exchange = [&](zmq::socket_t& s, uint64_t size) {
    s.send(zmq::buffer(&size, 8));
    zmq::message_t m;
    do {
      (void)s.recv(m);
    } while (m.more());
  };
  for (auto& s : socks) exchange(s, 1);  // connected before the clock starts
  const double self_cpu0 = SelfCpuSeconds(), server_cpu0 = cpu_pid > 0 ? ProcessCpuSeconds(cpu_pid) : 0;
  const auto start = Clock::now();
  {
    std::vector<std::jthread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (size_t i; (i = next.fetch_add(1)) < sizes.size();) {
          const auto t0 = Clock::now();
          exchange(socks[static_cast<size_t>(c)], sizes[i]);
          ms[static_cast<size_t>(c)].push_back(Seconds(t0) * 1e3);
        }
      });
    }
  }
  const double secs = Seconds(start);
  const std::string cpu = CpuUsed(self_cpu0, cpu_pid, server_cpu0);
  std::vector<double> all;
  for (const auto& v : ms) all.insert(all.end(), v.begin(), v.end());
  uint64_t bytes = 0;
  for (uint64_t b : sizes) bytes += b;
  fmt::print("requests={} seconds={:.3f} per_s={:.1f} bytes={} MBps={:.1f} {} {}\n", sizes.size(), secs,
             static_cast<double>(sizes.size()) / secs, bytes, static_cast<double>(bytes) / secs / 1e6, Latencies(all),
             cpu);
  return 0;
}

// The most any reader of these chunks can decode on this machine: the stored bytes of the
// keys (tile cy cx per line, level 0) in memory, then decoded by `threads` threads, each into
// its own buffer, `rounds` times; the best round counts (a limit). Once only decoded (what
// any reader must do: per_s, decoded_GBps), once checksummed as well (what Tessera's reads
// do: checked_per_s).
int Decode(const std::string& path, const std::string& keys_in, int threads, int rounds) {
  std::vector<Key> keys;
  std::ifstream in(keys_in);
  for (Key k; in >> k.tile >> k.cy >> k.cx;) keys.push_back(k);
  if (keys.empty()) Die(Error(StatusCode::kInvalidArgument, "no keys in {}", keys_in));
  std::unique_ptr<storage::SlideFile> file = Must(storage::SlideFile::OpenForRead(path));
  const LevelShape s = file->plan().Level(0);
  const size_t chunk_bytes = s.chunk_voxels() * DtypeSize(file->plan().dtype);
  std::vector<std::vector<uint8_t>> stored;
  std::vector<uint64_t> sums;
  uint64_t stored_bytes = 0;
  for (const Key& k : keys) {
    const ChunkKey ck{{k.tile, 0, 0}, 0, k.cy, k.cx};
    stored.push_back(Must(file->ReadChunk(ck)));
    sums.push_back(file->StoredChecksum(ck));
    stored_bytes += stored.back().size();
  }
  file.reset();
  // The fastest of the rounds: seconds and core-seconds.
  auto limit = [&](bool checked) {
    double best = 1e30, cpu = 0;
    for (int r = 0; r < rounds; ++r) {
      std::atomic<size_t> next{0};
      std::atomic<bool> bad{false};
      const double cpu0 = SelfCpuSeconds();
      const auto start = Clock::now();
      {
        std::vector<std::jthread> pool;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([&] {
            std::vector<uint8_t> out(chunk_bytes);
            for (size_t i; (i = next.fetch_add(1)) < stored.size();) {
              if ((checked && sums[i] != 0 && codec::Checksum(stored[i]) != sums[i]) ||
                  !codec::Decompress(stored[i], out).ok()) {
                bad = true;
              }
            }
          });
        }
      }
      const double secs = Seconds(start);
      if (bad) Die(Error(StatusCode::kDataLoss, "a chunk of {} failed its checksum or decoding", path));
      if (secs < best) best = secs, cpu = SelfCpuSeconds() - cpu0;
    }
    return std::pair{best, cpu};
  };
  const auto [secs, cpu] = limit(false);
  const auto [checked_secs, checked_cpu] = limit(true);
  const double n = static_cast<double>(keys.size());
  fmt::print("chunks={} threads={} seconds={:.3f} per_s={:.1f} decoded_GBps={:.3f} core_ms_per_chunk={:.4f} "
             "checked_per_s={:.1f} checked_core_ms_per_chunk={:.4f} stored_MB={:.1f}\n",
             keys.size(), threads, secs, n / secs, n * static_cast<double>(chunk_bytes) / secs / 1e9, cpu / n * 1e3,
             n / checked_secs, checked_cpu / n * 1e3, static_cast<double>(stored_bytes) / 1e6);
  return 0;
}

}  // namespace
}  // namespace tessera::bench

int main(int argc, char** argv) {
  using namespace tessera::bench;
  CLI::App app{"The reading side of bench/tiles"};
  app.require_subcommand(1);
  std::string server = "tcp://127.0.0.1:7400", slide, keys_out, sizes_out, boxes_out, dump, bind, connect, sizes_in;
  std::string credential, server_key;
  pid_t cpu_pid = 0;
  bool curve = false;
  int clients = 8, count = 20000;
  uint32_t seed = 1, level = 0;
  int64_t size = 4096;
  bool each_once = false, decode = false;
  double seconds = 10, rate = 100;

  auto* chunks = app.add_subcommand("chunks", "Random level-0 chunk requests from concurrent clients");
  auto* regions = app.add_subcommand("regions", "Mosaic regions read one after another");
  auto* latency = app.add_subcommand("latency", "One client reading chunks at a steady rate");
  for (auto* c : {chunks, regions, latency}) {
    c->add_option("--server", server, "The manager's endpoint")->capture_default_str();
    c->add_option("--slide", slide, "Slide id")->required();
    c->add_option("--seed", seed, "Random seed")->capture_default_str();
    c->add_option("--credential", credential,
                  "Connect with this credential (the credential= of a secured `tessera up`); none: plain TCP");
    c->add_flag("--remote", Remote(),
                "Read every chunk through the dealer, as a client on another host does (default: from the "
                "slide's file, as the client library does on the dealer's host)");
  }
  chunks->add_option("--cpu-pid", cpu_pid, "Also report this process's CPU over the requests (the dealer)");
  chunks->add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  chunks->add_option("--count", count, "Requests (warm)")->capture_default_str();
  chunks->add_flag("--each-once", each_once, "Every chunk once, in random order (cold)");
  chunks->add_flag("--decode", decode, "Decode into pixels through the client library");
  chunks->add_option("--keys-out", keys_out, "Write the keys read here (tile cy cx per line)");
  chunks->add_option("--sizes-out", sizes_out, "Write the stored size of each reply here");
  regions->add_option("--level", level, "Zoom level (past the last: the coarsest)")->capture_default_str();
  regions->add_option("--size", size, "Box edge in pixels (0: the whole slide)")->capture_default_str();
  regions->add_option("--count", count, "Boxes")->capture_default_str();
  regions->add_option("--boxes-out", boxes_out, "Write the boxes here (level x y w h per line)");
  regions->add_option("--dump", dump, "Write the first region's pixels here (raw)");
  latency->add_option("--seconds", seconds, "Read for this long")->capture_default_str();
  latency->add_option("--rate", rate, "Requests per second")->capture_default_str();
  auto* wire = app.add_subcommand("wire", "The wire limit: ZeroMQ over TCP with replies of given sizes");
  wire->add_option("--bind", bind, "Serve on this endpoint (prints `ready ENDPOINT`)");
  wire->add_option("--connect", connect, "Drive the server at this endpoint");
  wire->add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  wire->add_option("--sizes", sizes_in, "Reply sizes, one per line (from chunks --sizes-out)");
  wire->add_flag("--curve", curve, "Serve as a CURVE server (prints `ready ENDPOINT SERVER_KEY`)");
  wire->add_option("--server-key", server_key, "Connect as CURVE clients of this server key (Z85)");
  wire->add_option("--cpu-pid", cpu_pid, "Also report this process's CPU over the requests (the server)");
  auto* decode_limit = app.add_subcommand("decode", "The decoding limit: the chunks in memory, decoded on every core");
  std::string file, keys_in;
  int threads = static_cast<int>(std::thread::hardware_concurrency()), decode_rounds = 3;
  decode_limit->add_option("--file", file, "The slide's HDF5 file")->required();
  decode_limit->add_option("--keys", keys_in, "Level-0 chunks, \"tile cy cx\" per line (from chunks --keys-out)")
      ->required();
  decode_limit->add_option("--threads", threads, "Decoding threads (default: every core)")->capture_default_str();
  decode_limit->add_option("--rounds", decode_rounds, "Rounds; the fastest counts")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (*decode_limit) return Decode(file, keys_in, threads, decode_rounds);
  if (!credential.empty()) {
    if (tessera::Status s = tessera::UseCredential(credential); !s.ok()) Die(s);
  }

  if (*chunks) {
    return Chunks(server, slide, clients, each_once, static_cast<size_t>(count), decode, seed, keys_out, sizes_out,
                  cpu_pid);
  }
  if (*regions) return Regions(server, slide, level, size, count, seed, boxes_out, dump);
  if (*latency) return Latency(server, slide, seconds, rate, seed);
  return bind.empty() ? WireDrive(connect, server_key, clients, sizes_in, cpu_pid) : WireServe(bind, curve);
}
