// Gains: one brightness factor per field of view, from the overlaps registration found.
//
// Bleaching, lamp drift and exposure make neighbouring fields differ in brightness by a factor.
// Where two fields overlap they see the same scene, so once the flat field is out, the means of
// the overlap in the two (each less the dark level) differ by the ratio of their gains. The
// log gains are solved by weighted least squares over the tile graph (as the positions are:
// common/stitch/solve.h), each connected group's geometric mean held at 1 by a vanishing pull;
// an overlap that disagrees with the rest (a bubble, a saturated field) is dropped and the rest
// solved again. A corrected pixel is (I - D) / gain + D.
//
//   std::vector<OverlapMeans> o = {{.a = 0, .b = 1, .mean_a = 812.5, .mean_b = 731.0}, ...};
//   Result<TileGains> g = SolveGains(tiles, o, {});
//   g->gain[1]   // ~0.9 of field 0's
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::correct {

struct OverlapMeans {
  uint32_t a = 0, b = 0;
  double mean_a = 0, mean_b = 0;  ///< the same scene region's mean in each field, flat-corrected, dark subtracted
  double weight = 1;              ///< e.g. the overlap's pixels over a field's
};

struct GainOptions {
  double max_log_residual = 0.05;  ///< an overlap disagreeing by more (about 5 %) ...
  double relative = 4.0;           ///< ... and by more than this times the median is dropped
  double min_mean = 1.0;           ///< overlaps darker than this (grey levels above dark) say nothing
  double pull = 1e-6;              ///< towards gain 1, relative to an overlap's weight
};

struct TileGains {
  std::vector<double> gain;        ///< per field; 1 for a field no overlap reaches
  std::vector<double> residual;    ///< per overlap: |log ratio solved - measured|
  std::vector<std::string> dropped;  ///< per overlap: why it was not used ("" if used)
};

/// INVALID_ARGUMENT for an overlap naming a field past `fields` or with a mean that is not a number.
Result<TileGains> SolveGains(uint32_t fields, std::span<const OverlapMeans> overlaps, const GainOptions& options);

}  // namespace tessera::correct
