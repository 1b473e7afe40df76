// The scanner side of bench/ingest: pushes realistic 2048x2048 uint16 frames through a
// running stack (`tessera up`) for a given time, waits until every frame is durable, and
// prints what it measured as key=value pairs. bench/ingest runs it and the peers.
//
// CPU over the push (the first Push to the last acknowledgement): this process (the scanner:
// compression, checksums, its side of the TCP hop, CURVE when the stack is secured) and the
// slide's proxy and writer, read from /proc (they run on this host).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/stats.h"
#include "client/client.h"
#include "client/scanner.h"
#include "common/synth/synthetic_mosaic.h"

int main(int argc, char** argv) {
  using namespace tessera;
  CLI::App app{"Pushes synthetic 2048x2048 uint16 frames through a running Tessera stack"};
  std::string server = "tcp://127.0.0.1:7400";
  double seconds = 20;
  uint32_t distinct = 16, tiles = 20000, edge = 2048;
  std::string dump, credential;
  bool watch_levels = false, remote = false;
  std::string levels_at = "auto";
  double rate = 0;
  app.add_option("--server", server, "Manager endpoint")->capture_default_str();
  app.add_option("--seconds", seconds, "Push for this long")->capture_default_str();
  app.add_option("--distinct", distinct, "Distinct frames rendered up front and cycled")->capture_default_str();
  app.add_option("--tiles", tiles, "Tiles in the scan plan (an upper bound)")->capture_default_str();
  app.add_option("--edge", edge, "Frame edge in pixels")->capture_default_str();
  app.add_option("--credential", credential,
                 "Connect with this credential (the credential= of a secured `tessera up`); none: plain TCP");
  app.add_option("--dump", dump, "Write the distinct frames here (raw uint16) for the peers");
  app.add_option("--rate", rate, "Frames per second (0: as fast as the stack takes them)")->capture_default_str();
  app.add_flag("--remote", remote,
               "Push over the proxy's TCP endpoint, as a scanner on another host does (default: its Unix "
               "socket, as a scanner on the stack's host does)");
  app.add_flag("--watch-levels", watch_levels,
               "Also measure, from the dealer's events, how long after a frame is acknowledged its "
               "zoom levels are servable");
  app.add_option("--levels", levels_at,
                 "Who makes the zoom levels: auto (the scanner when --remote), scanner (from its pixels, "
                 "pushed with the frame) or writer (from the stored chunks)")
      ->check(CLI::IsMember({"auto", "scanner", "writer"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // as the tessera binary does: see cli/main.cc
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_ARENA_MAX, 1);

  synth::SyntheticOptions o;
  o.cols = distinct;
  o.rows = 1;
  o.width = o.height = edge;
  o.channels = 1;
  synth::SyntheticMosaic mosaic(o);
  std::vector<std::vector<uint8_t>> frames(distinct);
  for (uint32_t i = 0; i < distinct; ++i) {
    frames[i].resize(mosaic.plan().frame_bytes());
    mosaic.RenderFrame({i, 0, 0}, frames[i]);
  }
  if (!dump.empty()) {
    std::ofstream out(dump, std::ios::binary);
    for (const auto& f : frames) out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
  }

  if (!credential.empty()) {
    if (Status c = UseCredential(credential); !c.ok()) {
      fmt::print(stderr, "error: {}\n", c.ToString());
      return 1;
    }
  }
  ScanPlan plan = mosaic.plan();
  plan.name = "bench";
  plan.tiles.resize(tiles);
  for (uint32_t t = 0; t < tiles; ++t) plan.tiles[t] = {.name = fmt::format("t{}", t), .x = t * 1843.0};
  ScannerOptions scanner_options;
  scanner_options.local = !remote;
  scanner_options.levels = levels_at == "scanner"  ? ScannerOptions::Levels::kScanner
                           : levels_at == "writer" ? ScannerOptions::Levels::kWriter
                                                   : ScannerOptions::Levels::kAuto;
  auto scanner = Scanner::Open(server, plan, scanner_options);
  if (!scanner.ok()) {
    fmt::print(stderr, "error: {}\n", scanner.status().ToString());
    return 1;
  }
  // Per frame: when the dealer said it landed (its writer acknowledged it) and when every
  // level became readable.
  using Clock = std::chrono::steady_clock;
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Clock::time_point> landed_at;
  std::map<uint64_t, double> levels_after_ms;
  Client client(server);
  std::optional<Subscription> sub;
  if (watch_levels) {
    auto r = client.Subscribe((*scanner)->slide_id(), [&](const LandedEvent& e) {
      const auto now = Clock::now();
      std::lock_guard lock(mu);
      for (uint64_t f : e.landed) landed_at.try_emplace(f, now);
      for (uint64_t f : e.levels) {
        if (auto it = landed_at.find(f); it != landed_at.end()) {
          levels_after_ms.try_emplace(f, std::chrono::duration<double, std::milli>(now - it->second).count());
        }
      }
      cv.notify_all();
    });
    if (!r.ok()) {
      fmt::print(stderr, "error: {}\n", r.status().ToString());
      return 1;
    }
    sub.emplace(std::move(*r));
  }
  // The proxy and writer of this slide, and whether the proxy reaches its writer over a
  // Unix socket (the manager falls back to TCP for a long path).
  pid_t proxy_pid = 0, writer_pid = 0;
  std::string writer_hop = "?";
  if (auto info = client.Info((*scanner)->slide_id()); info.ok()) {
    proxy_pid = info->proxy_pid;
    writer_pid = info->writer_pid;
    const std::string args = bench::ProcessCommandLine(proxy_pid);
    writer_hop = args.find("--writer ipc://") != std::string::npos   ? "ipc"
                 : args.find("--writer tcp://") != std::string::npos ? "tcp"
                                                                     : "?";
  }
  const double scanner_cpu0 = bench::SelfCpuSeconds();
  const double proxy_cpu0 = bench::ProcessCpuSeconds(proxy_pid), writer_cpu0 = bench::ProcessCpuSeconds(writer_pid);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  uint64_t pushed = 0;
  Status s;
  while (s.ok() && pushed < tiles && elapsed() < seconds) {
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::duration<double>(static_cast<double>(pushed) / rate));
    s = (*scanner)->Push({static_cast<uint32_t>(pushed), 0, 0}, frames[pushed % distinct]);
    ++pushed;
  }
  if (s.ok()) s = (*scanner)->Flush();
  const double secs = elapsed();
  const double scanner_cpu = bench::SelfCpuSeconds() - scanner_cpu0;
  const double proxy_cpu = bench::ProcessCpuSeconds(proxy_pid) - proxy_cpu0;
  const double writer_cpu = bench::ProcessCpuSeconds(writer_pid) - writer_cpu0;
  const auto p = (*scanner)->progress();
  if (s.ok()) s = (*scanner)->Close();
  if (!s.ok()) fmt::print(stderr, "error: {}\n", s.ToString());
  std::string levels;
  if (watch_levels) {
    std::unique_lock lock(mu);  // the levels of the last frames come after the last ack
    cv.wait_for(lock, std::chrono::seconds(60), [&] { return levels_after_ms.size() >= landed_at.size(); });
    std::vector<double> ms;
    for (const auto& [f, v] : levels_after_ms) ms.push_back(v);
    const auto within = std::count_if(ms.begin(), ms.end(), [](double v) { return v <= 1000; });
    levels = fmt::format(" levels_seen={} levels_within_1s={} levels_after_ack_p50_ms={:.1f} levels_after_ack_p99_ms={:.1f} "
                         "levels_after_ack_max_ms={:.1f}",
                         ms.size(), within, bench::Percentile(ms, 0.5), bench::Percentile(ms, 0.99), bench::Percentile(ms, 1.0));
  }
  fmt::print("slide={} pushed={} durable={} raw_bytes={} compressed_bytes={} level_bytes={} seconds={:.3f} scanner_cpu_s={:.2f} "
             "proxy_cpu_s={:.2f} writer_cpu_s={:.2f} secured={} writer_hop={} scanner_hop={}{}\n",
             (*scanner)->slide_id(), pushed, p.frames_durable, p.raw_bytes, p.compressed_bytes, p.level_bytes, secs, scanner_cpu,
             proxy_cpu, writer_cpu, credential.empty() ? 0 : 1, writer_hop,
             (*scanner)->endpoint().starts_with("ipc://") ? "ipc" : "tcp", levels);
  return s.ok() ? 0 : 1;
}
