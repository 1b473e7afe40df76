// libFuzzer target: scan plans as JSON, the bytes any client sends with OpenSlide.
// PlanFromJson must refuse or return a plan that passes Validate, whose derived numbers are
// all defined (frame indexes round-trip, levels halve) and whose JSON parses back the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/plan/scan_plan.h"
#include "tests/fuzz/fuzz_check.h"

using tessera::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  auto plan = PlanFromJson(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!plan.ok()) {
    Check(plan.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  ScanPlan& p = *plan;
  Check(p.Validate().ok());
  const uint64_t frames = p.frame_count();
  Check(frames >= 1 && frames <= kMaxFrames);
  for (uint64_t index : {uint64_t{0}, frames / 2, frames - 1}) {
    const FrameKey key = p.KeyOf(index);
    Check(p.CheckKey(key).ok());
    Check(p.FrameIndex(key) == index);
  }
  Check(p.chunks_per_frame() >= 1 && p.chunks_per_frame() <= kMaxChunksPerFrame);
  const uint32_t levels = p.level_count();
  Check(levels >= 1 && levels <= 32);
  for (uint32_t l = 0; l < levels; ++l) {
    const LevelShape s = p.Level(l);
    Check(s.width >= 1 && s.height >= 1 && s.chunk_x >= 1 && s.chunk_y >= 1 && s.chunks_per_frame() >= 1);
  }
  const std::string json = PlanToJson(p);
  auto back = PlanFromJson(json);
  Check(back.ok());
  Check(PlanToJson(*back) == json);
  p.ClampChunks();
  Check(p.Validate().ok());
  return 0;
}
