// Solve: tile positions that agree best with the registered links.
//
// Weighted least squares over the tile graph (x, y and, for stacks, z separately; Eigen's
// sparse Cholesky),
// with a vanishing pull of every tile towards its stage position that fixes each connected
// group's place (its mean stays where the stage put it). Links that disagree with the rest
// are dropped one at a time, the worst first, and the rest solved again: a link whose
// residual is over `max_residual_px`, or over `relative` times the median residual (and over
// `min_outlier_px`). Tiles left without a link keep their stage positions.
//
//   std::vector<TileLink> links = ...;            // from RegisterPair, reliable ones used
//   auto s = SolvePositions(stage_xy, links, {});
//   s->positions[i]                               // x, y of tile i, sub-pixel
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::stitch {

struct TileLink {
  uint32_t a = 0, b = 0;   ///< tiles
  double dx = 0, dy = 0;   ///< b's position minus a's, as registered
  double weight = 1;       ///< e.g. the link's NCC
  bool reliable = true;    ///< unreliable links are reported, never used
  double dz = 0;           ///< b's z minus a's in planes, for stacks registered in 3-D
};

struct SolveOptions {
  double max_residual_px = 2.0;  ///< a link disagreeing by more is dropped
  double relative = 4.0;         ///< ... or by more than this times the median residual
  double min_outlier_px = 0.5;   ///< (and more than this)
  double stage_weight = 1e-6;    ///< pull towards the stage positions, relative to a link's
};

struct Solution {
  std::vector<std::array<double, 2>> positions;  ///< per tile
  std::vector<double> z;                         ///< per tile, planes, when solved in 3-D
  std::vector<int> group;                        ///< per tile: its connected group (-1: no link, stage position)
  std::vector<double> residual;                  ///< per link: |solved offset - registered offset|, px (voxels in 3-D)
  std::vector<bool> used;                        ///< per link: in the final solve
  std::vector<std::string> dropped;              ///< per link: why it was not used ("" if used)
  int iterations = 0;
};

/// INVALID_ARGUMENT for a link naming a tile that does not exist. With `stage_z` (one per
/// tile) z is solved too, from the links' dz, and residuals are 3-D.
Result<Solution> SolvePositions(const std::vector<std::array<double, 2>>& stage, const std::vector<TileLink>& links,
                                const SolveOptions& options, const std::vector<double>& stage_z = {});

}  // namespace tessera::stitch
