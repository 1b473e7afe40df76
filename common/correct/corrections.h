// Corrections: what a stitch estimated for a slide (flat field, dark level, tile gains per
// channel), stored beside it (the stitch file) and applied when it is read or fused. The raw
// fields of view are never changed: without corrections a reader gets the camera's values.
//
// A corrected pixel of tile t is (I - D) / (F(x, y) * gain[t]) + D, rounded and clamped: the
// illumination and the tile's brightness made even, the dark level kept, so that corrected
// values stay on the camera's scale.
//
//   const ChannelCorrections* c = corrections.Of(channel);
//   if (c) CorrectWindow(*c, tile, window, x0, y0, /*scale=*/1, out, 65535);
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/correct/flatfield.h"
#include "common/status/status.h"
#include "common/stitch/register.h"

namespace tessera::correct {

struct ChannelCorrections {
  uint32_t channel = 0;
  std::optional<FlatField> flat;  ///< none: the illumination is left as it is
  double dark = 0;                ///< D, grey levels (the flat field's when there is one)
  std::vector<double> gains;      ///< per tile; empty: none
};

struct SlideCorrections {
  std::vector<ChannelCorrections> channels;
  bool empty() const { return channels.empty(); }
  /// nullptr when the channel has none.
  const ChannelCorrections* Of(uint32_t channel) const;
};

/// INVALID_ARGUMENT when corrections that came from outside (a message, a file) do not fit a
/// slide of `tiles` fields of `width` x `height` px and `channel_count` channels: a channel
/// twice or past the last, a flat field of another size or out of range, gains not one per
/// tile or outside (0.01, 100).
Status CheckCorrections(const SlideCorrections& c, uint32_t tiles, uint32_t channel_count, uint32_t width,
                        uint32_t height);

/// A window of tile `tile`'s plane (its top-left at level-0 pixel (x0, y0) of the field, each
/// pixel `scale` level-0 pixels) corrected into `out` (in.width * in.height samples).
void CorrectWindow(const ChannelCorrections& c, uint32_t tile, const stitch::ImageView& in, int64_t x0, int64_t y0,
                   uint32_t scale, std::span<uint16_t> out, uint16_t max_value);

/// `tessera info --json`'s "corrections": per channel, the flat field's size and range, the dark
/// level, and the gains' range.
std::string CorrectionsJson(const SlideCorrections& c);

}  // namespace tessera::correct
