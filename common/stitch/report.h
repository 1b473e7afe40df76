// Report: which fields of view overlap, and the quality-control report of a stitch.
//
// OverlappingPairs finds the pairs to register from the stage positions (a grid hash: the
// cost follows the number of tiles, not their square). The QC report lists every link
// (registered shift, reliability, residual after the solve) and every tile (stage and
// solved position, links used), and names the suspicious tiles with the reason, as JSON
// (`tessera stitch ID --json`) and as a table for people.
//
//   auto pairs = OverlappingPairs(stage, 2048, 2048);
//   ... register each pair, solve ...
//   QcReport qc = MakeReport(names, stage, links, solution, max_shift);
//   std::cout << ReportTable(qc);
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/stitch/register.h"
#include "common/stitch/solve.h"

namespace tessera::stitch {

struct TilePair {
  uint32_t a = 0, b = 0;  ///< a < b
  double dx = 0, dy = 0;  ///< b's stage position minus a's
};

/// Pairs of w x h tiles whose stage footprints overlap by at least `min_fraction` of a
/// tile's area (the side neighbours of a grid; not its diagonal corners).
std::vector<TilePair> OverlappingPairs(const std::vector<std::array<double, 2>>& stage, int64_t width, int64_t height,
                                       double min_fraction = 0.02);

struct LinkReport {
  uint32_t a = 0, b = 0;
  Link link;               ///< as registered (dx, dy: b's origin in a's pixels)
  double residual = 0;     ///< px, after the solve
  bool used = false;       ///< in the final solve
  std::string note;        ///< why it is not used or not reliable
};

struct TileReport {
  uint32_t tile = 0;
  std::string name;
  std::array<double, 2> stage{}, solved{};
  double stage_z = 0, solved_z = 0;  ///< planes, stacks solved in 3-D
  int links = 0, used = 0;  ///< links touching it; of those, used in the solve
  bool suspicious = false;
  std::string why;
};

struct QcReport {
  bool volume = false;  ///< stacks registered and solved in x, y and z
  std::vector<LinkReport> links;
  std::vector<TileReport> tiles;
  int reliable = 0, used = 0, suspicious = 0;
  double max_residual = 0;
};

/// `links[i]` registered pair `pairs[i]`; `solution` solved them (SolvePositions, with the
/// reliable links in the order they appear). A tile is suspicious when no link of it was
/// used (it stays at its stage position), when a link of it disagrees with the solve by
/// more than 1 px, or when it moved further than `max_shift` from the stage (in x and y; in z
/// further than `max_shift_z`, for a solution in 3-D: `stage_z` its stage z).
QcReport MakeReport(const std::vector<std::string>& names, const std::vector<std::array<double, 2>>& stage,
                    const std::vector<TilePair>& pairs, const std::vector<Link>& links, const Solution& solution,
                    double max_shift, const std::vector<double>& stage_z = {}, double max_shift_z = 0);

std::string ReportJson(const QcReport& report);
/// The report back from ReportJson's text; DATA_LOSS when it is not one.
Result<QcReport> ReportFromJson(const std::string& json);
std::string ReportTable(const QcReport& report);

}  // namespace tessera::stitch
