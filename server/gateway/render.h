// Render: 16-bit (or 8-bit) multi-channel pixels to an 8-bit picture a browser can show,
// and its JPEG (libjpeg-turbo) or PNG (libpng) encoding.
//
// Each channel has a window (raw min -> 0, raw max -> 255, linear, clamped), a colour and
// on/off; the picture is the sum of the coloured channels that are on (additive, clamped),
// as fluorescence viewers show it. Defaults come from the data's histogram; a viewer
// overrides them with query parameters (docs/protocol.md):
//   channels=0,2          the channels that are on (empty: none)
//   window0=100,4000      channel 0's window, raw values
//   color1=ff00ff         channel 1's colour, hex RGB
//
//   std::vector<ChannelStyle> styles = {DefaultStyle(values, 0, 1, "DAPI")};
//   auto img = Render(planes, {0, 0, 1024, 1024}, styles, request);  // request: 512 x 512 out
//   auto jpg = EncodeJpeg(*img);
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/array.h"
#include "common/status/status.h"
#include "server/gateway/iiif.h"

namespace tessera::gateway {

struct ChannelStyle {
  std::string name;
  bool on = true;
  uint32_t min = 0, max = 65535;  ///< the window, raw values
  uint8_t r = 255, g = 255, b = 255;
};

/// A channel's default: the window from the 0.1st to the 99.9th percentile of its non-zero
/// values (zero is where no tile lies), the colour from its name (DAPI blue, GFP green, ...)
/// or from a palette by index (white when it is the only channel).
ChannelStyle DefaultStyle(std::span<const uint16_t> values, uint32_t channel, uint32_t channel_count,
                          const std::string& name);

/// Every channel's default from `region` (channels x 1 plane, e.g. a whole slide at its coarsest
/// level): DefaultStyle of each channel's plane, named by `names`.
std::vector<ChannelStyle> DefaultStyles(const Array& region, const std::vector<std::string>& names);

/// `defaults` with the query's channels=, window{c}= and color{c}= applied; other
/// parameters are left for others. INVALID_ARGUMENT for a malformed value or a channel
/// that does not exist.
Result<std::vector<ChannelStyle>> ApplyStyleQuery(std::vector<ChannelStyle> defaults,
                                                  const std::map<std::string, std::string>& query);

/// Source pixels: `channels` planes of height x width samples of 1 or 2 bytes, row-major.
struct Planes {
  std::span<const uint8_t> data;
  int bytes_per_sample = 2;
  int channels = 1;
  int64_t width = 0, height = 0;
};

/// A box of the source, in its pixels (fractions allowed); parts outside the source are black.
struct SourceBox {
  double x = 0, y = 0, w = 0, h = 0;
};

/// 8-bit pixels, row-major, interleaved: 3 channels (RGB) or 1 (gray).
struct Image8 {
  int64_t width = 0, height = 0;
  int channels = 3;
  std::vector<uint8_t> pixels;
};

/// `box` of `src` resampled to req.out_w x req.out_h (area average when shrinking, nearest
/// when enlarging), windowed, coloured and summed with `styles` (one per source plane),
/// then mirrored and rotated as `req` asks; gray for Quality::kGray.
Result<Image8> Render(const Planes& src, const SourceBox& box, const std::vector<ChannelStyle>& styles,
                      const IiifImageRequest& req);

/// Baseline JPEG, no chroma subsampling (thin coloured structures keep their colour).
Result<std::string> EncodeJpeg(const Image8& image, int quality = 85);
/// PNG, fast compression.
Result<std::string> EncodePng(const Image8& image);

}  // namespace tessera::gateway
