// tessera_bench_volume: the C++ side of bench/volume (which drives it and the Python peers).
//
//   tessera_bench_volume deskew --planes 400 --height 256 --width 2048 --rounds 3 --threads 2 --out FILE
//     An oblique stack (background, sparse cells, noise) written raw to FILE (K x H x W uint16) for
//     the numpy reference, then deskewed plane by plane as the `deskew` workers do it
//     (deskew::Orient, then deskew::DeskewPlane, into one plane buffer per thread), blocks of
//     8 planes handed to --threads threads; the copy path (45 degrees, a step of sqrt(2) px: one
//     whole pixel per plane) and the interpolated one (31.5 degrees, 0.4 um at 0.104 um: 3.28 px
//     per plane). One line per case and round: wall and CPU seconds, raw GB in.
//
//   tessera_bench_volume register --cols 3 --rows 2 --width 512 --height 512 --planes 128 --rounds 3 --out DIR
//     Synthetic light-sheet stacks (common/synth: a 3-D scene, stage error up to 5 px in x, y and
//     3 planes in z) written to DIR/stacks.u16 (T x Z x H x W uint16) with DIR/pairs.json (each
//     overlapping pair: the stage's offset, the true one, the windows OverlapWindows names), then
//     every pair registered in 3-D exactly as the worker's Register task does it
//     (server/worker/internal/tasks.cc): the two windows read a block of planes at a time (16 MiB),
//     their maximum projections, RegisterPair; DepthOverlapOf, the side views plane by plane
//     (ProjectSide), RegisterDepth. One thread, each pair --rounds times; one key=value line.
//
//   tessera_bench_volume read --server EP --slide ID:fused --rounds 5 --box 256 --dump DIR [--cpu-pid DEALER]
//     Through the client library at level 0: an XZ plane (every plane, one row, the whole width)
//     and a box of --box^3 at an unaligned offset (clipped to the volume), each read once to warm
//     up and then --rounds times; the last reads dumped to DIR/xz.u16 and DIR/box.u16 for the h5py
//     peer to compare. One key=value line (offsets in the fused file's voxels; with --cpu-pid, the
//     CPU that process, the dealer, spent per read).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/stats.h"
#include "client/client.h"
#include "common/deskew/deskew.h"
#include "common/stitch/register.h"
#include "common/stitch/report.h"
#include "common/synth/synthetic_mosaic.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }
double Median(std::vector<double> v) { return bench::Percentile(std::move(v), 0.5); }

// --key value pairs; false on an odd count.
bool ParseArgs(int argc, char** argv, std::map<std::string, std::string>& out) {
  if (argc % 2 != 0) return false;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (!k.starts_with("--")) return false;
    out[k.substr(2)] = argv[i + 1];
  }
  return true;
}

struct Opts {
  std::map<std::string, std::string> kv;
  uint32_t U(const std::string& k, uint32_t d) const {
    auto it = kv.find(k);
    return it == kv.end() ? d : static_cast<uint32_t>(std::stoul(it->second));
  }
  double D(const std::string& k, double d) const {
    auto it = kv.find(k);
    return it == kv.end() ? d : std::stod(it->second);
  }
  std::string S(const std::string& k, const std::string& d) const {
    auto it = kv.find(k);
    return it == kv.end() ? d : it->second;
  }
};

// ---- deskew

int DeskewMain(const Opts& o) {
  const uint32_t planes = o.U("planes", 400), height = o.U("height", 256), width = o.U("width", 2048);
  const uint32_t rounds = o.U("rounds", 3), threads = std::max(1u, o.U("threads", 2));
  const std::string path = o.S("out", "/tmp/tessera_bench_volume_deskew.raw");
  constexpr uint32_t kBlock = 8;  // planes of one deskew task (the stitcher's blocks)
  // A realistic oblique stack: background, sparse bright cells, shot-like noise (as bench/deskew).
  const size_t frame = size_t{width} * height;
  std::vector<uint16_t> raw(frame * planes);
  {
    std::vector<std::jthread> pool;
    for (uint32_t w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        std::mt19937 rng(3 + w);
        std::normal_distribution<double> noise(0, 12);
        for (size_t k = w; k < planes; k += threads) {
          for (size_t i = k * frame; i < (k + 1) * frame; ++i) {
            const double cell = (i * 2654435761u) % 997 < 3 ? 3000 : 0;
            raw[i] = static_cast<uint16_t>(std::clamp(110 + cell + noise(rng), 0.0, 65535.0));
          }
        }
      });
    }
  }
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size() * 2));
  const double raw_gb = static_cast<double>(raw.size() * 2) / 1e9;
  struct Case {
    const char* name;
    deskew::Params p;
  } cases[] = {{"copy", {.angle_deg = 45, .stage_step_um = std::sqrt(2.0), .pixel_size_um = 1}},
               {"interp", {.angle_deg = 31.5, .stage_step_um = 0.4, .pixel_size_um = 0.104}}};
  for (const auto& c : cases) {
    auto g = deskew::Plan(c.p, width, height, planes);
    if (!g.ok()) {
      fmt::print(stderr, "{}\n", g.status().ToString());
      return 1;
    }
    std::atomic<uint64_t> checksum{0};
    auto run = [&] {
      std::atomic<uint32_t> next{0};
      std::atomic<bool> failed{false};
      std::vector<std::jthread> pool;
      for (uint32_t w = 0; w < threads; ++w) {
        pool.emplace_back([&] {
          std::vector<uint16_t> oriented(size_t{g->raw_width} * g->raw_height), plane(size_t{g->width} * g->height);
          uint64_t sum = 0;
          for (uint32_t b; (b = next.fetch_add(kBlock)) < planes;) {
            for (uint32_t k = b; k < std::min(planes, b + kBlock); ++k) {
              const auto in = std::span<const uint16_t>(raw).subspan(k * frame, frame);
              if (!deskew::Orient<uint16_t>(g->params, in, width, height, oriented).ok() ||
                  !deskew::DeskewPlane<uint16_t>(*g, k, oriented, plane).ok()) {
                failed = true;
                return;
              }
              sum += plane[(k * 7919u) % plane.size()];
            }
          }
          checksum += sum;
        });
      }
      pool.clear();
      return !failed;
    };
    run();  // warm: pages of the buffers touched once
    for (uint32_t r = 0; r < rounds; ++r) {
      const auto t0 = Clock::now();
      const double c0 = bench::SelfCpuSeconds();
      if (!run()) {
        fmt::print(stderr, "deskew failed\n");
        return 1;
      }
      const double wall = Seconds(t0), cpu = bench::SelfCpuSeconds() - c0;
      fmt::print("deskew case={} round={} planes={} height={} width={} shear={:.4f} out_width={} threads={} "
                 "angle={:.17g} step={:.17g} pixel={:.17g} raw_gb={:.4f} wall_s={:.4f} cpu_s={:.4f}\n",
                 c.name, r, planes, height, width, g->shear, g->width, threads, c.p.angle_deg, c.p.stage_step_um,
                 c.p.pixel_size_um, raw_gb, wall, cpu);
      std::fflush(stdout);
    }
    if (checksum == 0) fmt::print(stderr, "(checksum 0)\n");
  }
  return 0;
}

// ---- register

// A window of planes [z0, z1) of stack t as the dealer hands it to a worker: one contiguous block.
struct Stacks {
  std::vector<uint16_t> voxels;
  int64_t w = 0, h = 0, planes = 0;
  const uint16_t* plane(size_t t, int64_t z) const {
    return voxels.data() + (static_cast<size_t>(t) * static_cast<size_t>(planes) + static_cast<size_t>(z)) *
                               static_cast<size_t>(w * h);
  }
  void Crop(size_t t, const stitch::Rect& r, int64_t z0, int64_t z1, std::vector<uint16_t>& out) const {
    const auto rw = static_cast<size_t>(r.width()), rh = static_cast<size_t>(r.height());
    out.resize(rw * rh * static_cast<size_t>(z1 - z0));
    for (int64_t z = z0; z < z1; ++z) {
      const uint16_t* p = plane(t, z);
      for (size_t y = 0; y < rh; ++y) {
        std::memcpy(out.data() + (static_cast<size_t>(z - z0) * rh + y) * rw, p + (r.y0 + static_cast<int64_t>(y)) * w + r.x0,
                    rw * 2);
      }
    }
  }
};

// ForPlaneBlocks of the worker: both windows a block of planes at a time (16 MiB of the two).
void ForPlaneBlocks(const Stacks& s, std::array<uint32_t, 2> tiles, std::array<stitch::Rect, 2> rects,
                    const std::function<void(const std::vector<uint16_t>&, const std::vector<uint16_t>&, int64_t)>& use) {
  constexpr uint64_t kPlaneBlockBytes = uint64_t{16} << 20;
  const uint64_t plane_bytes = 2 * uint64_t(rects[0].width() * rects[0].height() + rects[1].width() * rects[1].height());
  const auto block = static_cast<int64_t>(
      std::clamp<uint64_t>(kPlaneBlockBytes / std::max<uint64_t>(plane_bytes, 1), 1, static_cast<uint64_t>(s.planes)));
  std::vector<uint16_t> a, b;
  for (int64_t z = 0; z < s.planes; z += block) {
    const int64_t end = std::min(s.planes, z + block);
    s.Crop(tiles[0], rects[0], z, end, a);
    s.Crop(tiles[1], rects[1], z, end, b);
    use(a, b, end - z);
  }
}

// MaxInto of the worker: the maximum over a block's planes folded into `p`.
void MaxInto(const std::vector<uint16_t>& block, int64_t planes, std::vector<uint16_t>& p) {
  const size_t n = block.size() / static_cast<size_t>(planes);
  if (p.size() != n) p.assign(n, 0);
  for (int64_t z = 0; z < planes; ++z) {
    const uint16_t* v = block.data() + static_cast<size_t>(z) * n;
    for (size_t i = 0; i < n; ++i) p[i] = std::max<uint16_t>(p[i], v[i]);
  }
}

// The worker's Register task for stacks a and b (nominal offset of b in a's voxels).
Result<stitch::Link> Register3d(const Stacks& s, uint32_t ta, uint32_t tb, double ndx, double ndy, double ndz,
                                int max_shift, int max_shift_z) {
  const int64_t w = s.w, h = s.h;
  const auto [wa, wb] = stitch::OverlapWindows(w, h, w, h, ndx, ndy, max_shift);
  if (wa.empty() || wb.empty()) return Error(StatusCode::kInvalidArgument, "no overlap");
  std::vector<uint16_t> pa, pb;
  ForPlaneBlocks(s, {ta, tb}, {wa, wb}, [&](const std::vector<uint16_t>& a, const std::vector<uint16_t>& b, int64_t n) {
    MaxInto(a, n, pa);
    MaxInto(b, n, pb);
  });
  const double gx = static_cast<double>(wb.x0 - wa.x0), gy = static_cast<double>(wb.y0 - wa.y0);
  stitch::RegisterOptions o;
  o.max_shift = max_shift;
  TESSERA_ASSIGN_OR_RETURN(stitch::Link link, stitch::RegisterPair({pa.data(), wa.width(), wa.height(), 0},
                                                                   {pb.data(), wb.width(), wb.height(), 0}, ndx + gx,
                                                                   ndy + gy, o));
  link.dx -= gx;
  link.dy -= gy;
  if (!link.reliable) {
    link.dz = link.nominal_dz = ndz;
    return link;
  }
  const stitch::DepthOverlap d = stitch::DepthOverlapOf(w, h, w, h, link.dx, link.dy, false);
  const auto length = static_cast<size_t>(d.length), planes = static_cast<size_t>(s.planes);
  std::vector<uint16_t> side_a(length * planes), side_b(length * planes), qa, qb;
  size_t at = 0;
  ForPlaneBlocks(s, {ta, tb}, {d.a, d.b}, [&](const std::vector<uint16_t>& a, const std::vector<uint16_t>& b, int64_t n) {
    const size_t na = a.size() / static_cast<size_t>(n), nb = b.size() / static_cast<size_t>(n);
    for (int64_t z = 0; z < n; ++z, ++at) {
      qa.assign(a.begin() + static_cast<ptrdiff_t>(z * na), a.begin() + static_cast<ptrdiff_t>((z + 1) * na));  // PlaneOf
      qb.assign(b.begin() + static_cast<ptrdiff_t>(z * nb), b.begin() + static_cast<ptrdiff_t>((z + 1) * nb));
      stitch::ProjectSide({qa.data(), d.a.width(), d.a.height(), 0}, d.along_x, std::span(side_a).subspan(at * length, length));
      stitch::ProjectSide({qb.data(), d.b.width(), d.b.height(), 0}, d.along_x, std::span(side_b).subspan(at * length, length));
    }
  });
  stitch::RegisterOptions oz = o;
  oz.max_shift = max_shift_z;
  TESSERA_RETURN_IF_ERROR(stitch::RegisterDepth({side_a.data(), d.length, s.planes, 0},
                                                {side_b.data(), d.length, s.planes, 0}, d, ndz, oz, link));
  return link;
}

int RegisterMain(const Opts& o) {
  synth::SyntheticOptions so;
  so.cols = o.U("cols", 3);
  so.rows = o.U("rows", 2);
  so.width = o.U("width", 512);
  so.height = o.U("height", 512);
  so.z_planes = o.U("planes", 128);
  so.overlap = o.D("overlap", 0.1);
  so.channels = 1;
  so.light_sheet = true;
  so.z_error_planes = o.D("z-error", 3);
  so.position_error_px = o.D("error", 5);
  so.seed = o.U("seed", 1);
  const uint32_t rounds = o.U("rounds", 3), threads = std::max(1u, o.U("threads", 2));
  const int max_shift = static_cast<int>(o.U("max-shift", 20)), max_shift_z = static_cast<int>(o.U("max-shift-z", 10));
  const std::string dir = o.S("out", ".");
  if (Status st = synth::ValidateOptions(so); !st.ok()) {
    fmt::print(stderr, "{}\n", st.ToString());
    return 2;
  }
  const synth::SyntheticMosaic mosaic(so);
  const ScanPlan& plan = mosaic.plan();
  const size_t n = plan.tiles.size(), plane_px = size_t{so.width} * so.height;
  Stacks s;
  s.w = so.width;
  s.h = so.height;
  s.planes = so.z_planes;
  s.voxels.resize(n * so.z_planes * plane_px);
  auto t0 = Clock::now();
  {
    std::atomic<size_t> next{0};
    std::vector<std::jthread> pool;
    for (uint32_t w = 0; w < threads; ++w) {
      pool.emplace_back([&] {
        for (size_t f; (f = next++) < n * so.z_planes;) {
          const auto t = static_cast<uint32_t>(f / so.z_planes), z = static_cast<uint32_t>(f % so.z_planes);
          mosaic.RenderFrame({.t = t, .c = 0, .z = z},
                             {reinterpret_cast<uint8_t*>(s.voxels.data() + f * plane_px), plane_px * 2});
        }
      });
    }
  }
  std::ofstream(dir + "/stacks.u16", std::ios::binary)
      .write(reinterpret_cast<const char*>(s.voxels.data()), static_cast<std::streamsize>(s.voxels.size() * 2));
  fmt::print(stderr, "rendered {} stacks of {} x {} x {} in {:.1f} s\n", n, so.width, so.height, so.z_planes, Seconds(t0));

  std::vector<std::array<double, 2>> stage;
  std::vector<double> stage_z;
  for (const auto& t : plan.tiles) {
    stage.push_back({t.x, t.y});
    stage_z.push_back(t.z);
  }
  const auto pairs = stitch::OverlappingPairs(stage, so.width, so.height);
  auto truth = [&](const stitch::TilePair& p) {
    const auto a = mosaic.TruePosition(p.a), b = mosaic.TruePosition(p.b);
    return std::array<double, 3>{b[0] - a[0], b[1] - a[1], mosaic.TrueZ(p.b) - mosaic.TrueZ(p.a)};
  };
  {
    std::ofstream js(dir + "/pairs.json");
    js << fmt::format("{{\"width\": {}, \"height\": {}, \"planes\": {}, \"tiles\": {}, \"max_shift\": {}, \"pairs\": [\n",
                      so.width, so.height, so.z_planes, n, max_shift);
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& p = pairs[i];
      const auto [wa, wb] = stitch::OverlapWindows(s.w, s.h, s.w, s.h, p.dx, p.dy, max_shift);
      const auto tr = truth(p);
      js << fmt::format(
          "{{\"a\": {}, \"b\": {}, \"nominal\": [{}, {}, {}], \"truth\": [{:.5f}, {:.5f}, {:.5f}], "
          "\"window_a\": [{}, {}, {}, {}], \"window_b\": [{}, {}, {}, {}]}}{}\n",
          p.a, p.b, p.dx, p.dy, stage_z[p.b] - stage_z[p.a], tr[0], tr[1], tr[2], wa.x0, wa.y0, wa.x1, wa.y1, wb.x0,
          wb.y0, wb.x1, wb.y1, i + 1 < pairs.size() ? "," : "");
    }
    js << "]}\n";
  }

  std::vector<stitch::Link> links(pairs.size());
  auto one = [&](size_t i) {
    const auto& p = pairs[i];
    auto l = Register3d(s, p.a, p.b, p.dx, p.dy, stage_z[p.b] - stage_z[p.a], max_shift, max_shift_z);
    if (l.ok()) links[i] = *l;
    else fmt::print(stderr, "pair {}-{}: {}\n", p.a, p.b, l.status().ToString());
  };
  for (size_t i = 0; i < pairs.size(); ++i) one(i);  // FFTW plans its transforms once per size
  std::vector<double> ms, cpu_ms;
  for (uint32_t r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < pairs.size(); ++i) {
      t0 = Clock::now();
      const double c0 = bench::SelfCpuSeconds();
      one(i);
      ms.push_back(1000 * Seconds(t0));
      cpu_ms.push_back(1000 * (bench::SelfCpuSeconds() - c0));
    }
  }
  std::array<double, 3> err{};
  int reliable = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto tr = truth(pairs[i]);
    const std::array<double, 3> got{links[i].dx, links[i].dy, links[i].dz};
    for (int a = 0; a < 3; ++a) err[a] = std::max(err[a], std::abs(got[a] - tr[a]));
    reliable += links[i].reliable;
    fmt::print(stderr, "  tessera pair {}-{}: ({:.3f}, {:.3f}, {:.3f}) truth ({:.3f}, {:.3f}, {:.3f}) ncc {:.3f} ncc_z {:.3f} {}\n",
               pairs[i].a, pairs[i].b, got[0], got[1], got[2], tr[0], tr[1], tr[2], links[i].ncc, links[i].ncc_z,
               links[i].reliable ? "reliable" : links[i].reason);
  }
  fmt::print("register3d pairs={} reliable={} rounds={} ms_per_pair={:.2f} cpu_ms_per_pair={:.2f} err_x={:.3f} "
             "err_y={:.3f} err_z={:.3f}\n",
             pairs.size(), reliable, rounds, Median(ms), Median(cpu_ms), err[0], err[1], err[2]);
  return 0;
}

// ---- read

int ReadMain(const Opts& o) {
  const std::string server = o.S("server", ""), slide = o.S("slide", ""), dir = o.S("dump", "");
  const uint32_t rounds = o.U("rounds", 5), box = o.U("box", 256);
  const auto dealer = static_cast<pid_t>(o.U("cpu-pid", 0));  // the dealer, whose CPU per read is reported
  Client client(server, ClientOptions{.timeout_ms = 60000});
  auto view = client.Describe(slide);
  if (!view.ok()) {
    fmt::print(stderr, "describe {}: {}\n", slide, view.status().ToString());
    return 1;
  }
  const ScanPlan& plan = view->summary.plan;
  if (view->positions.size() != 1) {
    fmt::print(stderr, "{} has {} tiles, not one fused volume\n", slide, view->positions.size());
    return 1;
  }
  const auto tx = static_cast<int64_t>(std::floor(view->positions[0][0] + 0.5));
  const auto ty = static_cast<int64_t>(std::floor(view->positions[0][1] + 0.5));
  const int64_t W = plan.width, H = plan.height, Z = plan.z_planes;
  auto timed = [&](const RegionRequest& req, const std::string& name, std::string& line) -> bool {
    std::vector<double> ms, cpu_ms, dealer_ms;
    Array last;
    for (uint32_t r = 0; r <= rounds; ++r) {  // round 0 warms the dealer's cache and the connection
      const auto t0 = Clock::now();
      const double c0 = bench::SelfCpuSeconds(), d0 = dealer > 0 ? bench::ProcessCpuSeconds(dealer) : 0;
      auto a = client.ReadRegion(req);
      const double t = 1000 * Seconds(t0), c = 1000 * (bench::SelfCpuSeconds() - c0);
      const double d = dealer > 0 ? 1000 * (bench::ProcessCpuSeconds(dealer) - d0) : 0;
      if (!a.ok()) {
        fmt::print(stderr, "read {}: {}\n", name, a.status().ToString());
        return false;
      }
      if (r > 0) {
        ms.push_back(t);
        cpu_ms.push_back(c);
        dealer_ms.push_back(d);
      }
      last = std::move(*a);
    }
    if (last.shape[1] != req.z_end - req.z_begin || last.shape[2] != req.height || last.shape[3] != req.width) {
      fmt::print(stderr, "read {}: shape {}x{}x{}, asked {}x{}x{}\n", name, last.shape[1], last.shape[2], last.shape[3],
                 req.z_end - req.z_begin, req.height, req.width);
      return false;
    }
    if (!dir.empty()) {
      std::ofstream(dir + "/" + name + ".u16", std::ios::binary)
          .write(reinterpret_cast<const char*>(last.data.data()), static_cast<std::streamsize>(last.data.size()));
    }
    line += fmt::format(
        " {0}_ms={1:.3f} {0}_ms_min={2:.3f} {0}_client_cpu_ms={3:.3f} {0}_dealer_cpu_ms={4:.3f} {0}_chunks={5} "
        "{0}_mb={6:.3f}",
        name, Median(ms), bench::Percentile(ms, 0), Median(cpu_ms), Median(dealer_ms), last.chunks_read,
        static_cast<double>(last.data.size()) / 1e6);
    return true;
  };
  // XZ: every plane, one row (off the chunk grid), the whole width.
  const int64_t xz_y = std::min<int64_t>(H - 1, H / 2 + 7);
  // The box: --box voxels a side (or what fits) at an offset off the chunk grid.
  const int64_t bx = std::min<int64_t>(box, W - 37), by = std::min<int64_t>(box, H - 71), bz = std::min<int64_t>(box, Z);
  const int64_t ox = 37, oy = 71, oz = std::min<int64_t>(5, Z - bz);
  std::string line = fmt::format("read volume={}x{}x{} xz_y={} box_x={} box_y={} box_z={} box_w={} box_h={} box_d={}", W, H,
                                 Z, xz_y, ox, oy, oz, bx, by, bz);
  if (!timed({.slide = slide, .level = 0, .x = tx, .y = ty + xz_y, .width = W, .height = 1, .channels = {0},
              .z_begin = 0, .z_end = static_cast<uint32_t>(Z)},
             "xz", line)) {
    return 1;
  }
  if (!timed({.slide = slide, .level = 0, .x = tx + ox, .y = ty + oy, .width = bx, .height = by, .channels = {0},
              .z_begin = static_cast<uint32_t>(oz), .z_end = static_cast<uint32_t>(oz + bz)},
             "box", line)) {
    return 1;
  }
  fmt::print("{}\n", line);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (!ParseArgs(argc, argv, o.kv) || (cmd != "deskew" && cmd != "register" && cmd != "read")) {
    std::fprintf(stderr,
                 "usage: tessera_bench_volume deskew [--planes K --height H --width W --rounds R --threads N --out FILE]\n"
                 "       tessera_bench_volume register [--cols N --rows N --width W --height H --planes Z --rounds R "
                 "--error PX --z-error PLANES --out DIR]\n"
                 "       tessera_bench_volume read --server EP --slide ID:fused [--rounds R --box EDGE --dump DIR --cpu-pid PID]\n");
    return 2;
  }
  try {
    if (cmd == "deskew") return DeskewMain(o);
    if (cmd == "register") return RegisterMain(o);
    return ReadMain(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
