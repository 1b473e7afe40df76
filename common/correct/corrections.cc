#include "common/correct/corrections.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace tessera::correct {

const ChannelCorrections* SlideCorrections::Of(uint32_t channel) const {
  for (const auto& c : channels) {
    if (c.channel == channel) return &c;
  }
  return nullptr;
}

Status CheckCorrections(const SlideCorrections& s, uint32_t tiles, uint32_t channel_count, uint32_t width,
                        uint32_t height) {
  std::vector<bool> seen(channel_count, false);
  for (const auto& c : s.channels) {
    if (c.channel >= channel_count || seen[c.channel]) {
      return Error(StatusCode::kInvalidArgument, "corrections for channel {}: the slide has {} channels, each corrected once",
                   c.channel, channel_count);
    }
    seen[c.channel] = true;
    if (!(c.dark >= 0 && c.dark <= 65535)) {
      return Error(StatusCode::kInvalidArgument, "channel {} dark level {}: not a grey level", c.channel, c.dark);
    }
    if (c.flat) {
      TESSERA_RETURN_IF_ERROR(CheckFlatField(*c.flat));
      if (c.flat->width != width || c.flat->height != height) {
        return Error(StatusCode::kInvalidArgument, "channel {} flat field of {} x {} px for fields of {} x {}", c.channel,
                     c.flat->width, c.flat->height, width, height);
      }
    }
    if (!c.gains.empty() && c.gains.size() != tiles) {
      return Error(StatusCode::kInvalidArgument, "channel {}: {} gains for {} tiles", c.channel, c.gains.size(), tiles);
    }
    for (double g : c.gains) {
      if (!(g > 0.01 && g < 100)) return Error(StatusCode::kInvalidArgument, "channel {} tile gain {}: outside (0.01, 100)", c.channel, g);
    }
  }
  return OkStatus();
}

void CorrectWindow(const ChannelCorrections& c, uint32_t tile, const stitch::ImageView& in, int64_t x0, int64_t y0,
                   uint32_t scale, std::span<uint16_t> out, uint16_t max_value) {
  const double gain = tile < c.gains.size() ? c.gains[tile] : 1.0;
  if (c.flat) {
    ApplyFlatField(*c.flat, in, x0, y0, scale, out, max_value, gain);
    return;
  }
  const double inverse = 1.0 / gain;
  for (int64_t y = 0; y < in.height; ++y) {
    for (int64_t x = 0; x < in.width; ++x) {
      const double v = (in.at(x, y) - c.dark) * inverse + c.dark;
      out[static_cast<size_t>(y * in.width + x)] = static_cast<uint16_t>(std::clamp(std::nearbyint(v), 0.0, static_cast<double>(max_value)));
    }
  }
}

std::string CorrectionsJson(const SlideCorrections& s) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : s.channels) {
    nlohmann::json j{{"channel", c.channel}, {"dark", c.dark}};
    if (c.flat) {
      const auto [lo, hi] = std::minmax_element(c.flat->gain.begin(), c.flat->gain.end());
      j["flat_field"] = {{"samples", {c.flat->grid_x, c.flat->grid_y}}, {"min", *lo}, {"max", *hi}};
    }
    if (!c.gains.empty()) {
      const auto [lo, hi] = std::minmax_element(c.gains.begin(), c.gains.end());
      j["tile_gains"] = {{"count", c.gains.size()}, {"min", *lo}, {"max", *hi}};
    }
    out.push_back(std::move(j));
  }
  return out.dump();
}

}  // namespace tessera::correct
