// Solve: tile positions that agree best with the registered links.
//
// Weighted least squares over the tile graph (x and y separately; Eigen's sparse Cholesky),
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
};

struct SolveOptions {
  double max_residual_px = 2.0;  ///< a link disagreeing by more is dropped
  double relative = 4.0;         ///< ... or by more than this times the median residual
  double min_outlier_px = 0.5;   ///< (and more than this)
  double stage_weight = 1e-6;    ///< pull towards the stage positions, relative to a link's
};

struct Solution {
  std::vector<std::array<double, 2>> positions;  ///< per tile
  std::vector<int> group;                        ///< per tile: its connected group (-1: no link, stage position)
  std::vector<double> residual;                  ///< per link: |solved offset - registered offset|, px
  std::vector<bool> used;                        ///< per link: in the final solve
  std::vector<std::string> dropped;              ///< per link: why it was not used ("" if used)
  int iterations = 0;
};

/// INVALID_ARGUMENT for a link naming a tile that does not exist.
Result<Solution> SolvePositions(const std::vector<std::array<double, 2>>& stage, const std::vector<TileLink>& links,
                                const SolveOptions& options);

}  // namespace tessera::stitch
