#include "common/synth/synthetic_mosaic.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

namespace tessera::synth {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double Unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

constexpr const char* kChannelNames[] = {"DAPI", "GFP", "mCherry", "Cy5"};

}  // namespace

Status ValidateOptions(const SyntheticOptions& o) {
  if (o.cols == 0 || o.rows == 0) return Error(StatusCode::kInvalidArgument, "the grid {}x{} is empty", o.cols, o.rows);
  if (o.width < 8 || o.height < 8) {
    return Error(StatusCode::kInvalidArgument, "tiles of {}x{} are too small (at least 8x8)", o.width, o.height);
  }
  if (!(o.overlap >= 0 && o.overlap < 0.9)) {
    return Error(StatusCode::kInvalidArgument, "overlap {} is outside [0, 0.9)", o.overlap);
  }
  if (o.channels == 0 || o.channels > 16) {
    return Error(StatusCode::kInvalidArgument, "{} channels: use 1 to 16", o.channels);
  }
  if (o.z_planes == 0) return Error(StatusCode::kInvalidArgument, "z planes must be at least 1");
  if (!(o.background >= 0 && o.background <= 1)) return Error(StatusCode::kInvalidArgument, "background {}: give 0 to 1", o.background);
  if (!(o.stripes >= 0 && o.stripes <= 0.9)) return Error(StatusCode::kInvalidArgument, "stripes {}: give 0 to 0.9", o.stripes);
  if (!(o.gain_spread >= 0 && o.gain_spread <= 0.5)) {
    return Error(StatusCode::kInvalidArgument, "gain spread {}: give 0 to 0.5", o.gain_spread);
  }
  if (!(o.position_error_px >= 0)) {
    return Error(StatusCode::kInvalidArgument, "position error must be >= 0");
  }
  if (!(o.z_error_planes >= 0 && o.z_error_planes <= 1000)) {
    return Error(StatusCode::kInvalidArgument, "z error {} planes: give 0 to 1000", o.z_error_planes);
  }
  if (!(o.pixel_size_um >= 1e-3 && o.pixel_size_um <= 1e3)) {
    return Error(StatusCode::kInvalidArgument, "pixel size {} um: give 0.001 to 1000", o.pixel_size_um);
  }
  if (o.oblique) {
    if (o.oblique->rotate_90 != 0 || o.oblique->flip_ud) {
      return Error(StatusCode::kInvalidArgument,
                   "synthetic oblique stacks are generated unrotated and unflipped: drop --rotate-90 and --flip-ud");
    }
    const deskew::Params p{.angle_deg = o.oblique->angle_deg, .stage_step_um = o.oblique->stage_step_um,
                           .pixel_size_um = o.pixel_size_um, .scan_direction = o.oblique->scan_direction};
    TESSERA_RETURN_IF_ERROR(deskew::Plan(p, o.width, o.height, o.z_planes).status());
  }
  return OkStatus();
}

SyntheticMosaic::SyntheticMosaic(const SyntheticOptions& o) : options_(o) {
  plan_.name = "synthetic";
  plan_.width = o.width;
  plan_.height = o.height;
  plan_.z_planes = o.z_planes;
  plan_.dtype = o.dtype;
  const bool light = o.light_sheet || o.oblique.has_value();
  // z: the stage's step between planes (oblique) or the focus step.
  plan_.pixel_size_um = {o.pixel_size_um, o.pixel_size_um, o.oblique ? o.oblique->stage_step_um : 2.0};
  plan_.oblique = o.oblique;
  if (o.oblique) {
    shear_ = *deskew::Plan(DeskewParamsOf(plan_), o.width, o.height, o.z_planes);
    sigma_z_per_px_ = o.pixel_size_um / shear_->voxel_um[2];
  } else {
    sigma_z_per_px_ = o.pixel_size_um / plan_.pixel_size_um[2];
  }
  plan_.channels.clear();
  for (uint32_t c = 0; c < o.channels; ++c) {
    plan_.channels.push_back(c < 4 ? kChannelNames[c] : fmt::format("ch{}", c));
  }
  const double step_x = o.width * (1 - o.overlap), step_y = o.height * (1 - o.overlap);
  for (uint32_t r = 0; r < o.rows; ++r) {
    for (uint32_t c = 0; c < o.cols; ++c) {
      const uint32_t t = r * o.cols + c;
      plan_.tiles.push_back({.name = fmt::format("r{:03}_c{:03}", r, c), .x = c * step_x,
                             .y = r * step_y, .z = 0, .row = static_cast<int>(r),
                             .col = static_cast<int>(c)});
      const double ex = (2 * Unit(Mix(o.seed * 7919 + t * 2)) - 1) * o.position_error_px;
      const double ey = (2 * Unit(Mix(o.seed * 7919 + t * 2 + 1)) - 1) * o.position_error_px;
      true_positions_.push_back({c * step_x + ex, r * step_y + ey});
      const double ez = (2 * Unit(Mix(o.seed * 7919 + t * 2 + 0x5EED)) - 1) * o.z_error_planes;
      true_z_.push_back(light ? ez : 0.0);
    }
  }
  plan_.header_json = fmt::format(
      R"({{"generator": "tessera synthetic", "seed": {}, "overlap": {}, "position_error_px": {}}})",
      o.seed, o.overlap, o.position_error_px);
  cell_ = std::max(16.0, std::min(o.width, o.height) / 8.0);
}

std::array<double, 2> SyntheticMosaic::TruePosition(uint32_t t) const { return true_positions_[t]; }

void SyntheticMosaic::BlobsNear(uint32_t channel, double x0, double y0, double x1, double y1,
                                std::vector<Blob>& out) const {
  // Each grid cell of the scene holds a few blobs placed by hashing (seed, channel, cell).
  const double scale = cell_ / 64.0;
  const double reach = 40 * scale;  // blobs further than this cannot touch the window
  const int64_t gx0 = static_cast<int64_t>(std::floor((x0 - reach) / cell_));
  const int64_t gx1 = static_cast<int64_t>(std::floor((x1 + reach) / cell_));
  const int64_t gy0 = static_cast<int64_t>(std::floor((y0 - reach) / cell_));
  const int64_t gy1 = static_cast<int64_t>(std::floor((y1 + reach) / cell_));
  for (int64_t gy = gy0; gy <= gy1; ++gy) {
    for (int64_t gx = gx0; gx <= gx1; ++gx) {
      uint64_t h = Mix(options_.seed ^ Mix((channel * 0x1000193ull + static_cast<uint64_t>(gx) * 73856093ull) ^
                                           (static_cast<uint64_t>(gy) * 19349663ull)));
      const int count = static_cast<int>(h % 4);  // 0..3 cells here
      for (int i = 0; i < count; ++i) {
        h = Mix(h);
        Blob b;
        b.x = static_cast<float>((static_cast<double>(gx) + Unit(h)) * cell_);
        b.y = static_cast<float>((static_cast<double>(gy) + Unit(Mix(h + 1))) * cell_);
        // Nuclei (channel 0) are round and mid-sized; other channels small or large.
        const double u = Unit(Mix(h + 2));
        b.sigma = static_cast<float>(scale * (channel == 0 ? 5 + 4 * u : 3 + 9 * u));
        b.amplitude = static_cast<float>(0.25 + 0.75 * Unit(Mix(h + 3)));
        out.push_back(b);
      }
    }
  }
}

void SyntheticMosaic::BlobsNear3(uint32_t channel, double x0, double y0, double x1, double y1, double z,
                                 std::vector<Blob>& out) const {
  // Cells of the 3-D scene: a 2-D layout per slab of kSlab planes, each cell a depth in it.
  constexpr double kSlab = 8;
  const double reach = 40 * cell_ / 64.0 * sigma_z_per_px_ + 1;
  const int64_t s0 = static_cast<int64_t>(std::floor((z - reach) / kSlab));
  const int64_t s1 = static_cast<int64_t>(std::floor((z + reach) / kSlab));
  std::vector<Blob> slab;
  for (int64_t s = s0; s <= s1; ++s) {
    slab.clear();
    BlobsNear(channel + 977 * static_cast<uint32_t>(s & 0xFFFF), x0, y0, x1, y1, slab);
    for (Blob& b : slab) {
      const uint64_t where = uint64_t{std::bit_cast<uint32_t>(b.x)} << 32 | std::bit_cast<uint32_t>(b.y);
      b.z = static_cast<float>((static_cast<double>(s) + Unit(Mix(where ^ options_.seed))) * kSlab);
      out.push_back(b);
    }
  }
}

void SyntheticMosaic::RenderFrame(const FrameKey& key, std::span<uint8_t> out) const {
  const uint32_t w = options_.width, h = options_.height;
  auto [tx, ty] = true_positions_[key.t];
  // An oblique frame sees the scene's plane shifted along x by the shear.
  if (shear_) tx += shear_->Shift(key.z);
  const bool light = options_.light_sheet || shear_.has_value();
  const double depth = true_z_[key.t] + key.z;  // the scene's plane, light sheet
  std::vector<float> img(size_t{w} * h, 0.0f);
  std::vector<Blob> blobs;
  if (light) {
    BlobsNear3(key.c, tx, ty, tx + w, ty + h, depth, blobs);
  } else {
    BlobsNear(key.c, tx, ty, tx + w, ty + h, blobs);
  }
  // Defocus: blobs widen and dim away from the middle plane.
  const double dz = options_.z_planes > 1 ? std::abs(key.z - (options_.z_planes - 1) / 2.0) : 0.0;
  for (const Blob& b : blobs) {
    float sigma = b.sigma, amp = b.amplitude;
    if (light) {  // a section through the cell: dimmer away from its centre, no wider
      const double sz = b.sigma * sigma_z_per_px_, d = depth - b.z;
      if (std::abs(d) > 3.5 * sz) continue;
      amp *= static_cast<float>(std::exp(-d * d / (2 * sz * sz)));
    } else {
      sigma *= static_cast<float>(1 + 0.6 * dz);
      amp /= static_cast<float>(1 + 0.8 * dz * dz);
    }
    const float r = 3.5f * sigma;
    const float cx = static_cast<float>(b.x - tx), cy = static_cast<float>(b.y - ty);
    const int xa = std::max(0, static_cast<int>(std::floor(cx - r)));
    const int xb = std::min(static_cast<int>(w) - 1, static_cast<int>(std::ceil(cx + r)));
    const int ya = std::max(0, static_cast<int>(std::floor(cy - r)));
    const int yb = std::min(static_cast<int>(h) - 1, static_cast<int>(std::ceil(cy + r)));
    if (xa > xb || ya > yb) continue;
    const float inv = -1.0f / (2 * sigma * sigma);
    std::vector<float> gx(static_cast<size_t>(xb - xa + 1));
    for (int x = xa; x <= xb; ++x) {
      const float d = static_cast<float>(x) - cx;
      gx[static_cast<size_t>(x - xa)] = std::exp(d * d * inv);
    }
    for (int y = ya; y <= yb; ++y) {
      const float d = static_cast<float>(y) - cy;
      const float gy = amp * std::exp(d * d * inv);
      float* row = img.data() + size_t(y) * w;
      for (int x = xa; x <= xb; ++x) row[x] += gy * gx[static_cast<size_t>(x - xa)];
    }
  }
  const bool u8 = options_.dtype == Dtype::kUint8;
  const float offset = u8 ? 10.0f : 100.0f;
  const float peak = u8 ? 200.0f : 3000.0f * (1 + 0.5f * static_cast<float>(key.c % 3));
  const float read_noise = u8 ? 1.5f : 4.0f;
  const float max_value = u8 ? 255.0f : 65535.0f;
  const uint64_t frame_seed = Mix(options_.seed ^ Mix(key.t * 0x10001ull + key.c * 0x101ull + key.z));
  const auto background = static_cast<float>(options_.background);
  const auto gain = static_cast<float>(TrueGain(key.t));
  for (uint32_t y = 0; y < h; ++y) {
    const float fy = (static_cast<float>(y) / static_cast<float>(h) - 0.5f) * 2;
    // A stripe: the row dimmed from a column on (a shadow cast along the sheet), per frame.
    const uint64_t stripe_hash = Mix(frame_seed ^ (0x5eedull * (y + 1)));
    const bool striped = options_.stripes > 0 && stripe_hash % 16 == 0;
    const auto stripe_from = static_cast<uint32_t>((stripe_hash >> 8) % std::max(1u, w / 4));
    const auto stripe_gain = static_cast<float>(1 - options_.stripes * (0.5 + 0.5 * Unit(stripe_hash >> 16)));
    for (uint32_t x = 0; x < w; ++x) {
      const float fx = (static_cast<float>(x) / static_cast<float>(w) - 0.5f) * 2;
      const float illum = options_.vignetting ? 1.0f - 0.25f * (fx * fx + fy * fy) / 2 : 1.0f;
      float v = (img[size_t{y} * w + x] + background) * peak * illum * gain;
      if (striped && x >= stripe_from) v *= stripe_gain;
      if (options_.noise) {
        // Shot noise ~ sqrt(signal) and read noise, from a counter-based hash: two
        // uniforms summed make a cheap bell shape (variance 1/6 each unit).
        const uint64_t r = Mix(frame_seed + size_t{y} * w + x);
        const float n = (static_cast<float>((r & 0xFFFF) + ((r >> 16) & 0xFFFF)) / 65536.0f - 1.0f) * 2.45f;
        v += n * (std::sqrt(std::max(v, 0.0f)) + read_noise);
      }
      v = std::clamp(v + offset, 0.0f, max_value);
      if (u8) {
        out[size_t{y} * w + x] = static_cast<uint8_t>(v);
      } else {
        const uint16_t p = static_cast<uint16_t>(v);
        std::memcpy(out.data() + (size_t{y} * w + x) * 2, &p, 2);
      }
    }
  }
}

double SyntheticMosaic::TrueGain(uint32_t t) const {
  if (options_.gain_spread == 0) return 1.0;
  return 1.0 + (2 * Unit(Mix(options_.seed * 104729 + t)) - 1) * options_.gain_spread;
}

double SyntheticMosaic::Illumination(uint32_t x, uint32_t y) const {
  if (!options_.vignetting) return 1.0;
  // As RenderFrame computes it, in float.
  const float fy = (static_cast<float>(y) / static_cast<float>(options_.height) - 0.5f) * 2;
  const float fx = (static_cast<float>(x) / static_cast<float>(options_.width) - 0.5f) * 2;
  return 1.0f - 0.25f * (fx * fx + fy * fy) / 2;
}

}  // namespace tessera::synth
