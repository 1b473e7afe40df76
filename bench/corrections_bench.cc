// bench/corrections: destriping one light-sheet plane (common/correct), by each of pystripe's
// methods, against the numpy + PyWavelets + SciPy transcription of pystripe's algorithm
// (tests/destripe_reference.py) on the same plane in the same run, one thread each. Checks
// that both give the same pixels (within a grey level), then reports the medians of --rounds:
// seconds per plane, MB/s of raw input, and the ratio.
//
//   build-release/bench/tessera_bench_corrections [--width 2048 --height 2048 --rounds 5]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/stats.h"
#include "common/correct/destripe.h"

namespace {

using Clock = std::chrono::steady_clock;

// Background, cells, and stripes across the plane that dim whole rows from a column on.
std::vector<uint16_t> StripedPlane(int64_t w, int64_t h) {
  std::mt19937 rng(9);
  std::vector<float> v(static_cast<size_t>(w * h), 180.0f);
  std::uniform_real_distribution<double> ux(0, static_cast<double>(w)), uy(0, static_cast<double>(h));
  for (int b = 0; b < static_cast<int>(w * h / 8000); ++b) {
    const double cx = ux(rng), cy = uy(rng), r = 3 + static_cast<double>(rng() % 10);
    const double a = static_cast<double>(400 + rng() % 4000);
    const auto x0 = static_cast<int64_t>(std::max(0.0, cx - 4 * r)), x1 = std::min(w, static_cast<int64_t>(cx + 4 * r) + 1);
    const auto y0 = static_cast<int64_t>(std::max(0.0, cy - 4 * r)), y1 = std::min(h, static_cast<int64_t>(cy + 4 * r) + 1);
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = x0; x < x1; ++x) {
        const double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy;
        v[static_cast<size_t>(y * w + x)] += static_cast<float>(a * std::exp(-(dx * dx + dy * dy) / (2 * r * r)));
      }
    }
  }
  for (int s = 0; s < static_cast<int>(h / 16); ++s) {
    const auto y = static_cast<int64_t>(uy(rng)), x0 = static_cast<int64_t>(ux(rng) / 8);
    const auto k = static_cast<float>(0.5 + 0.4 * std::uniform_real_distribution<double>(0, 1)(rng));
    for (int64_t dy = 0; dy < 3 && y + dy < h; ++dy) {
      for (int64_t x = x0; x < w; ++x) v[static_cast<size_t>((y + dy) * w + x)] *= k;
    }
  }
  std::normal_distribution<double> noise(0, 4);
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<uint16_t>(std::clamp(v[i] + noise(rng), 0.0, 65535.0));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  int64_t width = 2048, height = 2048;
  int rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--width") width = std::stol(argv[i + 1]);
    else if (a == "--height") height = std::stol(argv[i + 1]);
    else if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
  }
  const std::vector<uint16_t> plane = StripedPlane(width, height);
  const std::string stem = fmt::format("/tmp/tessera_bench_corrections_{}", ::getpid());
  const std::string in = stem + "_in.raw", ref_out = stem + "_ref.raw";
  std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(plane.data()), static_cast<std::streamsize>(plane.size() * 2));
  const double mb = static_cast<double>(plane.size() * 2) / 1e6;
  struct Case {
    const char* name;
    correct::DestripeOptions o;
    std::string args;
  } cases[] = {
      {"wavelet", {.sigma_foreground = 256, .sigma_background = 256}, "wavelet 256 256 0 db3 -1 10"},
      {"wavelet_dual", {.sigma_foreground = 64, .sigma_background = 256}, "wavelet 64 256 0 db3 -1 10"},
      {"lightsheet", {.method = correct::DestripeMethod::kLightsheet}, "lightsheet 150 200 0.25 2"},
  };
  int failures = 0;
  fmt::print("{:<14} {:>10} {:>10} {:>12} {:>10} {:>8}\n", "method", "ours s", "ref s", "ours MB/s", "vs ref", "max diff");
  for (const Case& c : cases) {
    std::vector<uint16_t> got(plane.size());
    std::vector<double> secs, cpu;
    for (int r = 0; r < rounds; ++r) {
      const double c0 = bench::SelfCpuSeconds();
      const auto t0 = Clock::now();
      if (!correct::Destripe({plane.data(), width, height, 0}, c.o, got).ok()) return 1;
      secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      cpu.push_back(bench::SelfCpuSeconds() - c0);
    }
    const std::string cmd = fmt::format("/usr/bin/python3 tests/destripe_reference.py {} {} {} {} {} {}", in, ref_out,
                                        height, width, c.args, rounds);
    FILE* f = ::popen(cmd.c_str(), "r");
    double ref_s = 0;
    char line[256];
    while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr) std::sscanf(line, "seconds %lf", &ref_s);
    if (f == nullptr || ::pclose(f) != 0 || ref_s <= 0) {
      fmt::print(stderr, "the reference failed: {}\n", cmd);
      return 1;
    }
    std::vector<uint16_t> want(plane.size());
    std::ifstream(ref_out, std::ios::binary).read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * 2));
    int worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(int{got[i]} - int{want[i]}));
    failures += worst > 1;
    const double ours = bench::Percentile(secs, 0.5);
    fmt::print("{:<14} {:>10.4f} {:>10.4f} {:>12.1f} {:>10.2f} {:>8}\n", c.name, ours, ref_s, mb / ours, ref_s / ours, worst);
    fmt::print("RESULT destripe_{}_s {:.4f}\n", c.name, ours);
    fmt::print("RESULT destripe_{}_core_s {:.4f}\n", c.name, bench::Percentile(cpu, 0.5));
    fmt::print("RESULT destripe_{}_reference_s {:.4f}\n", c.name, ref_s);
    fmt::print("RESULT destripe_{}_vs_reference {:.2f}\n", c.name, ref_s / ours);
    fmt::print("RESULT destripe_{}_max_diff {}\n", c.name, worst);
    if (c.o.method == correct::DestripeMethod::kWavelet && c.o.sigma_foreground == c.o.sigma_background) {
      fmt::print("RESULT destripe_vs_reference {:.2f}\n", ref_s / ours);
    }
  }
  std::remove(in.c_str());
  std::remove(ref_out.c_str());
  return failures == 0 ? 0 : 1;
}
