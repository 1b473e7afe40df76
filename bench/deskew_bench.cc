// bench/deskew: the deskew of an oblique light-sheet stack, plane by plane as the workers run
// it (common/deskew), against the numpy reference of the same convention (bench/deskew_numpy.py,
// tests/deskew_reference.py) on the same stack in the same run. The copy path (45 degrees, a
// stage step of sqrt(2) pixels: one whole pixel per plane) and the interpolated one (31.5
// degrees, a lattice scope's 0.4 um step at 0.104 um pixels). Medians of --rounds; GB/s of raw
// input, and core-seconds per GB.
//
//   build/bench/tessera_bench_deskew [--planes 200 --height 256 --width 2048 --rounds 5]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/stats.h"
#include "common/deskew/deskew.h"

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) { return tessera::bench::Percentile(std::move(v), 0.5); }

}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  uint32_t planes = 200, height = 256, width = 2048, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const uint32_t v = static_cast<uint32_t>(std::stoul(argv[i + 1]));
    if (a == "--planes") planes = v;
    else if (a == "--height") height = v;
    else if (a == "--width") width = v;
    else if (a == "--rounds") rounds = v;
  }
  // A realistic oblique stack: background, sparse bright cells, shot-like noise.
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0, 12);
  const size_t frame = size_t{width} * height;
  std::vector<uint16_t> raw(frame * planes);
  for (size_t i = 0; i < raw.size(); ++i) {
    const double cell = (i * 2654435761u) % 997 < 3 ? 3000 : 0;
    raw[i] = static_cast<uint16_t>(std::clamp(110 + cell + noise(rng), 0.0, 65535.0));
  }
  const double raw_gb = static_cast<double>(raw.size() * 2) / 1e9;
  const std::string path = "/tmp/tessera_bench_deskew.raw";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(raw.data()),
                                              static_cast<std::streamsize>(raw.size() * 2));
  struct Case {
    const char* name;
    deskew::Params p;
  } cases[] = {{"copy", {.angle_deg = 45, .stage_step_um = std::sqrt(2.0), .pixel_size_um = 1}},
               {"interp", {.angle_deg = 31.5, .stage_step_um = 0.4, .pixel_size_um = 0.104}}};
  double ratio_interp = 0;
  for (const auto& c : cases) {
    auto g = deskew::Plan(c.p, width, height, planes);
    if (!g.ok()) {
      fmt::print(stderr, "{}\n", g.status().ToString());
      return 1;
    }
    std::vector<uint16_t> out(size_t{g->width} * g->height);
    std::vector<double> secs, cpus;
    for (uint32_t r = 0; r < rounds; ++r) {
      const auto t0 = Clock::now();
      const double c0 = bench::SelfCpuSeconds();
      for (uint32_t k = 0; k < planes; ++k) {
        (void)deskew::DeskewPlane<uint16_t>(*g, k, std::span(raw).subspan(k * frame, frame), out);
      }
      secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      cpus.push_back(bench::SelfCpuSeconds() - c0);
    }
    // The peer, same stack, same rounds.
    const std::string cmd = fmt::format("/usr/bin/python3 bench/deskew_numpy.py {} {} {} {} {:.17g} {:.17g} {:.17g} {}",
                                        path, planes, height, width, c.p.angle_deg, c.p.stage_step_um,
                                        c.p.pixel_size_um, rounds);
    std::vector<double> peer_secs, peer_cpus;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      double s = 0, cpu = 0;
      while (std::fscanf(f, " seconds %lf cpu %lf", &s, &cpu) == 2) {
        peer_secs.push_back(s);
        peer_cpus.push_back(cpu);
      }
      ::pclose(f);
    }
    const double mine = Median(secs), peer = Median(peer_secs);
    fmt::print("{}: shear {:.4f} px/plane, {} planes of {}x{} -> {}x{}; tessera {:.3f} s ({:.3f} core-s), numpy {:.3f} s "
               "({:.3f} core-s)\n",
               c.name, g->shear, planes, width, height, g->width, g->height, mine, Median(cpus), peer, Median(peer_cpus));
    fmt::print("RESULT deskew_{}_GBps {:.3f}\n", c.name, raw_gb / mine);
    fmt::print("RESULT deskew_{}_core_s_per_GB {:.3f}\n", c.name, Median(cpus) / raw_gb);
    fmt::print("RESULT deskew_{}_vs_reference {:.2f}\n", c.name, peer > 0 ? peer / mine : 0.0);
    if (std::string(c.name) == "interp") ratio_interp = peer > 0 ? peer / mine : 0.0;
  }
  fmt::print("RESULT deskew_vs_reference {:.2f}\n", ratio_interp);
  std::remove(path.c_str());
  return 0;
}
