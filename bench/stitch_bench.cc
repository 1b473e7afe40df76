// tessera_bench_stitch: registration and the global solve on a synthetic mosaic with known
// stage error (bench/stitch drives it and the scikit-image peer).
//
//   tessera_bench_stitch --cols 10 --rows 10 --size 2048 --overlap 0.1 --error 8 --out DIR
//
// Renders the mosaic's fields of view (common/synth: the same scene seen from each tile's
// true position, with noise and vignetting) into DIR/tiles.u16 (T x H x W uint16, raw, for
// the peer to memory-map), writes DIR/pairs.json (each overlapping pair: tiles, the stage's
// offset, the true offset, and the windows RegisterPair reads), then registers every pair
// (one thread, then `--threads`), solves, and prints key=value lines:
//   register_ms_per_pair (median, one thread)  register_pairs_per_s (all threads)  register_err_median_px  register_err_max_px
//   register_wrong (pairs off by more than 1 px)  solve_s  solve_err_max_px
#include <fmt/format.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/stats.h"
#include "common/stitch/register.h"
#include "common/stitch/report.h"
#include "common/stitch/solve.h"
#include "common/synth/synthetic_mosaic.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

struct Args {
  uint32_t cols = 10, rows = 10, size = 2048;
  double overlap = 0.1, error = 8;
  int threads = 2, max_shift = 20;
  bool vignetting = true;
  std::string out = ".";
};

bool Parse(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--cols") a.cols = static_cast<uint32_t>(std::stoul(v));
    else if (k == "--rows") a.rows = static_cast<uint32_t>(std::stoul(v));
    else if (k == "--size") a.size = static_cast<uint32_t>(std::stoul(v));
    else if (k == "--overlap") a.overlap = std::stod(v);
    else if (k == "--error") a.error = std::stod(v);
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--max-shift") a.max_shift = std::stoi(v);
    else if (k == "--out") a.out = v;
    else if (k == "--vignetting") a.vignetting = v != "0";
    else return false;
  }
  return argc % 2 == 1;
}

}  // namespace

int main(int argc, char** argv) {
  // As the tessera binary (a worker) does: see cli/main.cc.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_ARENA_MAX, 1);
  Args a;
  if (!Parse(argc, argv, a)) {
    std::fprintf(stderr,
                 "usage: tessera_bench_stitch [--cols N] [--rows N] [--size PX] [--overlap F] [--error PX] "
                 "[--threads N] [--max-shift PX] [--vignetting 0|1] [--out DIR]\n");
    return 2;
  }
  synth::SyntheticOptions o;
  o.cols = a.cols;
  o.rows = a.rows;
  o.width = o.height = a.size;
  o.overlap = a.overlap;
  o.channels = 1;
  o.position_error_px = a.error;
  o.vignetting = a.vignetting;
  if (Status s = synth::ValidateOptions(o); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  const synth::SyntheticMosaic mosaic(o);
  const ScanPlan& plan = mosaic.plan();
  const size_t n = plan.tiles.size(), pixels = size_t{a.size} * a.size;

  // The fields of view, rendered in parallel, kept here and written for the peer.
  auto t0 = Clock::now();
  std::vector<uint16_t> tiles(n * pixels);
  {
    std::vector<std::jthread> pool;
    for (int w = 0; w < a.threads; ++w) {
      pool.emplace_back([&, w] {
        for (size_t t = static_cast<size_t>(w); t < n; t += static_cast<size_t>(a.threads)) {
          mosaic.RenderFrame({.t = static_cast<uint32_t>(t)},
                             {reinterpret_cast<uint8_t*>(tiles.data() + t * pixels), pixels * 2});
        }
      });
    }
  }
  std::ofstream(a.out + "/tiles.u16", std::ios::binary)
      .write(reinterpret_cast<const char*>(tiles.data()), static_cast<std::streamsize>(tiles.size() * 2));
  std::fprintf(stderr, "rendered %zu tiles of %u x %u in %.1f s\n", n, a.size, a.size, Seconds(t0));

  std::vector<std::array<double, 2>> stage;
  for (const auto& t : plan.tiles) stage.push_back({t.x, t.y});
  const auto pairs = stitch::OverlappingPairs(stage, a.size, a.size);
  auto truth = [&](const stitch::TilePair& p, int axis) {
    return mosaic.TruePosition(p.b)[static_cast<size_t>(axis)] - mosaic.TruePosition(p.a)[static_cast<size_t>(axis)];
  };
  {
    std::ofstream js(a.out + "/pairs.json");
    js << fmt::format("{{\"size\": {}, \"tiles\": {}, \"max_shift\": {}, \"pairs\": [\n", a.size, n, a.max_shift);
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& p = pairs[i];
      const auto [wa, wb] = stitch::OverlapWindows(a.size, a.size, a.size, a.size, p.dx, p.dy, a.max_shift);
      js << fmt::format(
          "{{\"a\": {}, \"b\": {}, \"nominal\": [{}, {}], \"truth\": [{:.4f}, {:.4f}], \"window_a\": [{}, {}, {}, {}], "
          "\"window_b\": [{}, {}, {}, {}]}}{}\n",
          p.a, p.b, p.dx, p.dy, truth(p, 0), truth(p, 1), wa.x0, wa.y0, wa.x1, wa.y1, wb.x0, wb.y0, wb.x1, wb.y1,
          i + 1 < pairs.size() ? "," : "");
    }
    js << "]}\n";
  }

  // Registration as a worker does it: only the windows that can overlap (copied out, as a
  // worker receives them from the dealer), then RegisterPair.
  stitch::RegisterOptions ro;
  ro.max_shift = a.max_shift;
  std::vector<stitch::Link> links(pairs.size());
  auto register_pair = [&](size_t i) {
    const auto& p = pairs[i];
    const auto [wa, wb] = stitch::OverlapWindows(a.size, a.size, a.size, a.size, p.dx, p.dy, a.max_shift);
    auto crop = [&](size_t t, const stitch::Rect& r) {
      std::vector<uint16_t> c(static_cast<size_t>(r.width() * r.height()));
      for (int64_t y = 0; y < r.height(); ++y) {
        std::memcpy(c.data() + y * r.width(), tiles.data() + t * pixels + (r.y0 + y) * a.size + r.x0,
                    static_cast<size_t>(r.width()) * 2);
      }
      return c;
    };
    const auto ca = crop(p.a, wa), cb = crop(p.b, wb);
    const double gx = static_cast<double>(wb.x0 - wa.x0), gy = static_cast<double>(wb.y0 - wa.y0);
    auto link = stitch::RegisterPair({ca.data(), wa.width(), wa.height(), 0}, {cb.data(), wb.width(), wb.height(), 0},
                                     p.dx + gx, p.dy + gy, ro);
    if (link.ok()) {
      link->dx -= gx;
      link->dy -= gy;
      links[i] = *link;
    }
  };
  for (size_t i = 0; i < pairs.size() && i < 4; ++i) register_pair(i);  // FFTW plans its transforms once
  std::vector<double> pair_ms;  // one thread, each pair timed: the median is robust to a noisy machine
  for (size_t i = 0; i < pairs.size(); ++i) {
    t0 = Clock::now();
    register_pair(i);
    pair_ms.push_back(1000 * Seconds(t0));
  }
  t0 = Clock::now();
  {
    std::atomic<size_t> next{0};
    std::vector<std::jthread> pool;
    for (int w = 0; w < a.threads; ++w) {
      pool.emplace_back([&] {
        for (size_t i; (i = next++) < pairs.size();) register_pair(i);
      });
    }
  }
  const double threaded_s = Seconds(t0);
  std::vector<double> errors;
  int wrong = 0, reliable = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const double e = std::hypot(links[i].dx - truth(pairs[i], 0), links[i].dy - truth(pairs[i], 1));
    errors.push_back(e);
    if (std::getenv("TESSERA_BENCH_VERBOSE") != nullptr) {
      std::fprintf(stderr, "pair %u-%u err %.3f ncc %.4f margin %.4f %s\n", pairs[i].a, pairs[i].b, e, links[i].ncc,
                   links[i].margin, links[i].reason.c_str());
    }
    wrong += e > 1.0;
    reliable += links[i].reliable;
  }

  // The solve, then every tile against the truth (the solve fixes the mean where the stage
  // put it: compare after removing the mean offset).
  std::vector<stitch::TileLink> tl;
  for (size_t i = 0; i < pairs.size(); ++i) {
    tl.push_back({pairs[i].a, pairs[i].b, links[i].dx, links[i].dy, std::max(0.01, links[i].ncc), links[i].reliable});
  }
  t0 = Clock::now();
  auto solved = stitch::SolvePositions(stage, tl, {});
  const double solve_s = Seconds(t0);
  if (!solved.ok()) {
    std::fprintf(stderr, "solve: %s\n", solved.status().ToString().c_str());
    return 1;
  }
  double mx = 0, my = 0;
  for (size_t t = 0; t < n; ++t) {
    mx += solved->positions[t][0] - mosaic.TruePosition(static_cast<uint32_t>(t))[0];
    my += solved->positions[t][1] - mosaic.TruePosition(static_cast<uint32_t>(t))[1];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double solve_err = 0;
  for (size_t t = 0; t < n; ++t) {
    const auto tp = mosaic.TruePosition(static_cast<uint32_t>(t));
    solve_err = std::max(solve_err, std::hypot(solved->positions[t][0] - mx - tp[0], solved->positions[t][1] - my - tp[1]));
  }
  fmt::print(
      "stitch pairs={} reliable={} register_ms_per_pair={:.2f} register_pairs_per_s={:.1f} threads={} "
      "register_err_median_px={:.3f} register_err_max_px={:.3f} register_wrong={} solve_s={:.4f} "
      "solve_err_max_px={:.3f}\n",
      pairs.size(), reliable, bench::Percentile(pair_ms, 0.5),
      static_cast<double>(pairs.size()) / threaded_s, a.threads, bench::Percentile(errors, 0.5),
      bench::Percentile(errors, 1.0), wrong, solve_s, solve_err);
  return 0;
}
