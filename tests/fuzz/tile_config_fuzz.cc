// libFuzzer target: Fiji TileConfiguration.txt text, as `tessera scan --tile-config` reads it.
// The parser must refuse with INVALID_ARGUMENT or return bounded, finite entries.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/imageio/tile_config.h"
#include "common/plan/scan_plan.h"
#include "tests/fuzz/fuzz_check.h"

using tessera::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  auto config = imageio::ParseTileConfig(std::string_view(reinterpret_cast<const char*>(data), size), "/base",
                                         "fuzz.txt");
  if (!config.ok()) {
    Check(config.status().code() == StatusCode::kInvalidArgument);
    return 0;
  }
  Check(config->dim == 2 || config->dim == 3);
  Check(!config->entries.empty() && config->entries.size() <= kMaxTiles);
  for (const auto& e : config->entries) {
    Check(!e.file.empty() && ValidateName("file", e.file).ok());
    for (double v : {e.x, e.y, e.z}) Check(std::isfinite(v) && std::fabs(v) <= kMaxTilePosition);
  }
  return 0;
}
