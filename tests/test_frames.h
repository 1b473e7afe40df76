// Deterministic test frames: noise a codec cannot shrink much, reproducible per index.
#pragma once

#include <cstdint>
#include <vector>

#include "common/plan/scan_plan.h"

namespace tessera::testing {

inline std::vector<uint8_t> NoiseFrame(const ScanPlan& plan, uint64_t index, uint32_t bits = 12) {
  std::vector<uint8_t> out(plan.frame_bytes());
  uint64_t s = index * 0x9E3779B97F4A7C15ull + 1;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  if (plan.dtype == Dtype::kUint8) {
    for (auto& b : out) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      b = static_cast<uint8_t>(s & mask & 0xFF);
    }
  } else {
    auto* p = reinterpret_cast<uint16_t*>(out.data());
    for (size_t i = 0; i < out.size() / 2; ++i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      p[i] = static_cast<uint16_t>(s & mask);
    }
  }
  return out;
}

inline ScanPlan NoisePlan(uint32_t tiles, uint32_t edge, uint32_t chunk) {
  ScanPlan p;
  p.name = "noise";
  p.width = p.height = edge;
  p.chunk_y = p.chunk_x = chunk;
  for (uint32_t t = 0; t < tiles; ++t) {
    p.tiles.push_back({.name = "t" + std::to_string(t), .x = t * edge * 0.9, .y = 0});
  }
  return p;
}

}  // namespace tessera::testing
