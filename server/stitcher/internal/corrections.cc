#include "server/stitcher/internal/corrections.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <map>

#include "common/correct/flatfield.h"
#include "common/correct/gains.h"

namespace tessera::stitcher::internal {
namespace {

constexpr uint32_t kMinLevelEdge = 128;             // px: the coarsest level read has at least this
constexpr uint32_t kMaxFlatFields = 1024;           // fields the flat field is estimated from
constexpr uint64_t kCacheBytes = uint64_t{64} << 20;  // level images kept for the overlaps
constexpr int kInFlight = 8;                         // reads under way

// A field at the coarse level, as uint16.
struct Coarse {
  int64_t width = 0, height = 0;
  std::vector<uint16_t> pixels;
};

Result<Coarse> ToCoarse(Result<Array> a) {
  TESSERA_RETURN_IF_ERROR(a.status());
  Coarse c{a->shape[3], a->shape[2], {}};
  if (a->dtype == Dtype::kUint16) {
    const auto v = a->values<uint16_t>();
    c.pixels.assign(v.begin(), v.end());
  } else {
    const auto v = a->values<uint8_t>();
    c.pixels.assign(v.begin(), v.end());
  }
  return c;
}

}  // namespace

Result<correct::SlideCorrections> EstimateCorrections(Client& client, const SlideSummary& slide,
                                                      const CorrectionsRequest& req,
                                                      const std::function<void(uint64_t, uint64_t)>& progress) {
  const ScanPlan& plan = slide.plan;
  const auto tiles = static_cast<uint32_t>(plan.tiles.size());
  uint32_t level = 0;
  while (level + 1 < plan.level_count() && std::min(plan.Level(level + 1).width, plan.Level(level + 1).height) >= kMinLevelEdge) {
    ++level;
  }
  const uint32_t scale = 1u << level;
  const uint16_t max_value = plan.dtype == Dtype::kUint8 ? 255 : 65535;
  auto read = [&](uint32_t tile, uint32_t channel) {
    return client.ReadTileAsync({.slide = slide.id, .tile = tile, .level = level, .channels = {channel},
                                 .z_begin = req.z, .z_end = req.z + 1});
  };
  // Fields read for the flat field: all, or evenly spaced ones.
  std::vector<uint32_t> sample;
  const uint32_t step = std::max<uint32_t>(1, (tiles + kMaxFlatFields - 1) / kMaxFlatFields);
  for (uint32_t t = 0; t < tiles; t += step) sample.push_back(t);
  const uint64_t total = uint64_t{sample.size()} * plan.channels.size();
  uint64_t done = 0;
  correct::SlideCorrections out;
  for (uint32_t c = 0; c < plan.channels.size(); ++c) {
    std::map<uint32_t, Coarse> cache;  // the fields read, up to kCacheBytes
    uint64_t cached = 0;
    auto keep = [&](uint32_t t, Coarse f) {
      const uint64_t bytes = f.pixels.size() * 2;
      if (cached + bytes <= kCacheBytes) {
        cached += bytes;
        cache.emplace(t, std::move(f));
      }
    };
    correct::FlatFieldOptions options;
    options.dark = c < req.channel_dark.size() ? req.channel_dark[c] : req.dark;
    correct::FlatFieldEstimator estimator(plan.width, plan.height, options);
    for (size_t i = 0; i < sample.size(); i += kInFlight) {
      std::vector<std::pair<uint32_t, std::future<Result<Array>>>> reads;
      for (size_t k = i; k < std::min(sample.size(), i + kInFlight); ++k) reads.emplace_back(sample[k], read(sample[k], c));
      for (auto& [t, f] : reads) {
        TESSERA_ASSIGN_OR_RETURN(Coarse field, ToCoarse(f.get()));
        estimator.Add({field.pixels.data(), field.width, field.height, 0}, scale);
        keep(t, std::move(field));
        if (progress) progress(++done, total);
      }
    }
    TESSERA_ASSIGN_OR_RETURN(correct::FlatField flat, estimator.Estimate());
    correct::ChannelCorrections cc{.channel = c, .dark = flat.dark};
    if (req.flat_field) cc.flat = flat;
    if (req.normalize) {
      // Each used link's overlap at the solved positions, inset by a pixel of the level, its
      // mean in both fields (flat-corrected, less the dark level).
      // Fields not cached are read again, into one spare per side of the link.
      std::array<Coarse, 2> spare;
      auto field = [&](uint32_t t, int side) -> Result<const Coarse*> {
        if (auto it = cache.find(t); it != cache.end()) return &it->second;
        TESSERA_ASSIGN_OR_RETURN(spare[side], ToCoarse(read(t, c).get()));
        return &spare[side];
      };
      std::vector<correct::OverlapMeans> overlaps;
      std::vector<uint16_t> corrected;
      for (size_t k = 0; k < req.links.size(); ++k) {
        if (!req.used[k] || !req.links[k].reliable) continue;
        const uint32_t ta = req.links[k].a, tb = req.links[k].b;
        const auto& pa = req.positions[ta];
        const auto& pb = req.positions[tb];
        const double x0 = std::max(pa[0], pb[0]), y0 = std::max(pa[1], pb[1]);
        const double x1 = std::min(pa[0], pb[0]) + plan.width, y1 = std::min(pa[1], pb[1]) + plan.height;
        double means[2] = {0, 0};
        int64_t pixels = 0;
        for (int side = 0; side < 2; ++side) {
          const uint32_t t = side == 0 ? ta : tb;
          const auto& p = side == 0 ? pa : pb;
          TESSERA_ASSIGN_OR_RETURN(const Coarse* f, field(t, side));
          // The overlap in the field's level pixels, whole pixels inside it, one in from each side.
          const auto lx0 = static_cast<int64_t>(std::ceil((x0 - p[0]) / scale)) + 1;
          const auto ly0 = static_cast<int64_t>(std::ceil((y0 - p[1]) / scale)) + 1;
          const auto lx1 = std::min<int64_t>(f->width, static_cast<int64_t>(std::floor((x1 - p[0]) / scale)) - 1);
          const auto ly1 = std::min<int64_t>(f->height, static_cast<int64_t>(std::floor((y1 - p[1]) / scale)) - 1);
          if (lx1 - lx0 < 2 || ly1 - ly0 < 2) break;
          const stitch::ImageView window{f->pixels.data() + ly0 * f->width + lx0, lx1 - lx0, ly1 - ly0, f->width};
          corrected.resize(static_cast<size_t>(window.width * window.height));
          correct::CorrectWindow(cc, t, window, lx0 * scale, ly0 * scale, scale, corrected, max_value);
          double sum = 0;
          for (uint16_t v : corrected) sum += v - cc.dark;
          means[side] = sum / static_cast<double>(corrected.size());
          pixels = static_cast<int64_t>(corrected.size());
        }
        if (pixels == 0) continue;
        overlaps.push_back({ta, tb, means[0], means[1], 1.0});
      }
      TESSERA_ASSIGN_OR_RETURN(correct::TileGains g, correct::SolveGains(tiles, overlaps, {}));
      cc.gains = std::move(g.gain);
    }
    out.channels.push_back(std::move(cc));
  }
  return out;
}

}  // namespace tessera::stitcher::internal
