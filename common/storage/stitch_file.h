// StitchFile: a slide's solved tile positions and the stitch's QC report, in a small HDF5
// file beside the slide file (s000001.h5 -> s000001.stitch.h5; docs/format.md).
//
//   /stitch/positions   float64 (T, 2)   solved x, y of each tile, level-0 pixels (sub-pixel)
//   /stitch/stage       float64 (T, 2)   the stage positions the solve started from
//   /stitch/z           float64 (T)      stacks solved in 3-D: each tile's z, planes (else absent)
//   /stitch/corrections/c<N>   a channel's corrections, if the stitch estimated them: attribute
//                    dark; flat_field float32 (grid_y, grid_x) with attributes field_width,
//                    field_height (absent: none); gains float64 (T) (absent: none)
//   attributes of /: format "tessera-stitch", format_version, slide_id, created_unix_ms,
//                    report (the QC report, JSON: `tessera stitch ID --json`)
//
// Written whole, atomically: a temporary file, fsync, rename over the old one, fsync of the
// folder. A reader sees the old stitch or the new one, never a part; a re-stitch replaces it.
//
//   WriteStitchFile(StitchPathOf(slide_path), {.slide_id = id, .positions = p, ...});
//   auto s = ReadStitchFile(StitchPathOf(slide_path));   // NOT_FOUND: never stitched
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/correct/corrections.h"
#include "common/status/status.h"

namespace tessera::storage {

inline constexpr int kStitchFormatVersion = 1;

struct StitchRecord {
  std::string slide_id;
  std::vector<std::array<double, 2>> positions;  ///< solved
  std::vector<std::array<double, 2>> stage;
  std::vector<double> z;  ///< solved, planes; empty unless solved in 3-D
  std::string report_json;
  int64_t created_unix_ms = 0;
  correct::SlideCorrections corrections;  ///< checked by the writer of the record, and by its reader against the plan
};

/// "DIR/s000001.h5" -> "DIR/s000001.stitch.h5".
std::string StitchPathOf(const std::string& slide_path);
/// "DIR/s000001.h5" -> "DIR/s000001.fused.h5": the fused image, a slide file of one field of
/// view (the whole mosaic) with its zoom levels (docs/format.md).
std::string FusedPathOf(const std::string& slide_path);
/// "DIR/s000001.h5" -> "DIR/s000001.deskewed.h5": an oblique scan's deskewed view, a slide
/// file with the scan's tiles, each plane deskewed (DeskewedPlanOf), written as planes land.
std::string DeskewedPathOf(const std::string& slide_path);
/// "DIR/s000001.h5" -> "DIR/s000001.destriped.h5": every plane destriped (docs/corrections.md),
/// a slide file in the slide's own plan, made by `tessera stitch --destripe`.
std::string DestripedPathOf(const std::string& slide_path);

/// INVALID_ARGUMENT when positions and stage (or a non-empty z) differ in length; RESOURCE_EXHAUSTED on a
/// full disk (the old file, if any, stays).
Status WriteStitchFile(const std::string& path, const StitchRecord& record);
/// NOT_FOUND when the file does not exist; DATA_LOSS when it is not a stitch file.
Result<StitchRecord> ReadStitchFile(const std::string& path);

}  // namespace tessera::storage
