// Fuse: one box of the fused mosaic from the fields of view that cover it, blended.
//
// Each tile lies at its solved position rounded to the pixel (as the dealer places it: no
// resampling, the values stay the camera's). Where tiles overlap, each contributes with a
// weight that rises linearly from its edge over `blend` pixels (a feather), so seams fade
// instead of cutting; a pixel no tile covers is 0. Only the box is computed, from only the
// parts of the tiles inside it: memory follows the box, not the mosaic.
//
//   std::vector<FuseInput> in = {{window_of_tile_3, tile_x, tile_y, 2048, 2048}, ...};
//   std::vector<uint16_t> out = FuseBox({0, 0, 512, 512}, in, 64);
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/stitch/register.h"

namespace tessera::stitch {

struct FuseInput {
  ImageView window;          ///< the part of the tile inside the box (or more)
  int64_t window_x = 0, window_y = 0;  ///< the window's top-left in the tile's pixels
  int64_t x = 0, y = 0;      ///< the tile's top-left in the mosaic (rounded solved position)
  int64_t width = 0, height = 0;  ///< the whole tile's size (for the feather)
};

/// The box [x, x + w) x [y, y + h) of the mosaic (level-0 pixels), row-major, into `out`
/// (w * h values). Row by row: a run of columns inside one tile's window is its pixels, a
/// run inside several is blended; nothing the size of the box is allocated.
void FuseBox(const Rect& box, std::span<const FuseInput> tiles, int64_t blend, std::span<uint16_t> out);
/// The same, returned.
std::vector<uint16_t> FuseBox(const Rect& box, std::span<const FuseInput> tiles, int64_t blend);

}  // namespace tessera::stitch
