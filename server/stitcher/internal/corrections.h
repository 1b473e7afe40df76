// The stitcher's corrections step (stitcher.h): flat fields, dark levels and tile gains
// estimated from a stitched slide's fields of view, read at a coarse zoom level.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "client/client.h"
#include "common/correct/corrections.h"
#include "common/status/status.h"
#include "common/stitch/solve.h"

namespace tessera::stitcher::internal {

struct CorrectionsRequest {
  bool flat_field = false, normalize = false;
  double dark = -1;                                    ///< known dark level; -1: estimated
  std::vector<double> channel_dark;                    ///< per channel, known (overrides `dark`)
  uint32_t z = 0;                                      ///< the plane read of each stack
  std::vector<stitch::TileLink> links;                 ///< the links solved (reliable and used ones count)
  std::vector<bool> used;                              ///< per link: in the final solve
  std::vector<std::array<double, 2>> positions;        ///< solved, level-0 px
};

/// Per channel: the flat field and dark level (every field, or 1,024 evenly sampled, at its
/// coarsest zoom level of at least 128 px), then the gains from the used links' overlaps,
/// corrected by that flat field. `progress(done, total)` as fields are read.
Result<correct::SlideCorrections> EstimateCorrections(Client& client, const SlideSummary& slide,
                                                      const CorrectionsRequest& request,
                                                      const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace tessera::stitcher::internal
