// Fiji Grid/Collection stitching `TileConfiguration.txt`: tile files and their nominal
// stage positions in pixels, the de-facto exchange format of mosaic microscopy.
//
//   # comments
//   dim = 2
//   tile_001.tif; ; (0.0, 0.0)
//   tile_002.tif; ; (232.0, 0.0)
//
//   auto config = imageio::ReadTileConfig("scan/TileConfiguration.txt");
//   for (const auto& e : config->entries) Load(e.path, e.x, e.y);
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status/status.h"

namespace tessera::imageio {

// Bounds on a configuration (the tiles become a scan plan, so the plan's bounds apply).
inline constexpr size_t kMaxTileConfigBytes = size_t{64} << 20;  ///< the whole file: 1M tiles at 64 bytes

struct TileConfigEntry {
  std::string file;  ///< as written in the configuration
  std::string path;  ///< resolved against the configuration's folder
  double x = 0, y = 0, z = 0;
};

struct TileConfig {
  int dim = 2;
  std::vector<TileConfigEntry> entries;  ///< in line order: the scan order
};

/// Parses `text`; `base_dir` resolves relative file names, `source` names the file in
/// errors. INVALID_ARGUMENT naming the line and what is wrong: a text over
/// kMaxTileConfigBytes, more than kMaxTiles tiles, a file name over kMaxNameBytes, not UTF-8
/// or with control characters, a position that is not finite or beyond kMaxTilePosition.
Result<TileConfig> ParseTileConfig(std::string_view text, const std::string& base_dir,
                                   const std::string& source);

/// Reads and parses a file; NOT_FOUND if it cannot be read.
Result<TileConfig> ReadTileConfig(const std::string& path);

}  // namespace tessera::imageio
