#include "common/deskew/deskew.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace tessera::deskew {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr uint32_t kMaxWidth = uint32_t{1} << 20;

bool Within(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

}  // namespace

Status Validate(const Params& p) {
  if (!std::isfinite(p.angle_deg) || p.angle_deg <= 0 || p.angle_deg >= 90) {
    return Error(StatusCode::kInvalidArgument, "oblique angle {} degrees: give the angle between the sheet and the "
                 "stage, above 0 and below 90 (31.5 for a lattice scope, 45 for most oblique ones)", p.angle_deg);
  }
  if (!Within(p.stage_step_um, 1e-6, 1e6)) {
    return Error(StatusCode::kInvalidArgument, "stage step {} um: give the stage's travel between planes, "
                 "between 1e-6 and 1e6 um", p.stage_step_um);
  }
  if (!Within(p.pixel_size_um, 1e-6, 1e6)) {
    return Error(StatusCode::kInvalidArgument, "pixel size {} um: give the camera pixel in the sample, "
                 "between 1e-6 and 1e6 um", p.pixel_size_um);
  }
  if (p.scan_direction != 1 && p.scan_direction != -1) {
    return Error(StatusCode::kInvalidArgument, "scan direction {}: 1 or -1", p.scan_direction);
  }
  if (p.rotate_90 < 0 || p.rotate_90 > 3) {
    return Error(StatusCode::kInvalidArgument, "rotate-90 {}: 0, 1, 2 or 3 quarter turns clockwise", p.rotate_90);
  }
  return OkStatus();
}

double Geometry::Shift(uint32_t k) const {
  const uint32_t steps = params.scan_direction > 0 ? k : planes - 1 - k;
  const double shift = steps * shear;
  const double whole = std::round(shift);
  return std::abs(shift - whole) <= kWholeShearTolerance ? whole : shift;
}

Result<Geometry> Plan(const Params& p, uint32_t frame_width, uint32_t frame_height, uint32_t planes) {
  TESSERA_RETURN_IF_ERROR(Validate(p));
  if (frame_width == 0 || frame_height == 0 || planes == 0) {
    return Error(StatusCode::kInvalidArgument, "a deskew needs frames and planes: {}x{} x {} planes", frame_width,
                 frame_height, planes);
  }
  Geometry g;
  g.params = p;
  const bool turned = p.rotate_90 % 2 == 1;
  g.raw_width = turned ? frame_height : frame_width;
  g.raw_height = turned ? frame_width : frame_height;
  g.planes = planes;
  const double theta = p.angle_deg * kPi / 180;
  g.shear = p.stage_step_um * std::cos(theta) / p.pixel_size_um;
  if (const double whole = std::round(g.shear); std::abs(g.shear - whole) <= kWholeShearTolerance) {
    g.shear = whole;
    g.copy = true;
  }
  const double extra = std::ceil((planes - 1) * g.shear - kWholeShearTolerance);
  if (!(extra >= 0) || extra + g.raw_width > kMaxWidth) {
    return Error(StatusCode::kOutOfRange,
                 "the deskewed planes would be {} pixels wide ({} planes sheared {:.4g} pixels each): more than {}; "
                 "check --stage-step and --pixel-size",
                 extra + g.raw_width, planes, g.shear, kMaxWidth);
  }
  g.width = g.raw_width + static_cast<uint32_t>(extra);
  g.height = g.raw_height;
  g.voxel_um = {p.pixel_size_um, p.pixel_size_um, p.stage_step_um * std::sin(theta)};
  return g;
}

template <typename T>
Status Orient(const Params& p, std::span<const T> frame, uint32_t width, uint32_t height, std::span<T> out) {
  const size_t n = size_t{width} * height;
  if (frame.size() != n || out.size() != n) {
    return Error(StatusCode::kInvalidArgument, "orient: a {}x{} frame of {} values into {}", width, height,
                 frame.size(), out.size());
  }
  const int turns = p.rotate_90 & 3;
  const bool turned = turns % 2 == 1;
  const size_t ow = turned ? height : width, oh = turned ? width : height;
  for (size_t i = 0; i < oh; ++i) {
    const size_t row = p.flip_ud ? oh - 1 - i : i;  // output row i is row `row` of the turned frame
    T* dst = out.data() + i * ow;
    switch (turns) {
      case 0: std::memcpy(dst, frame.data() + row * width, width * sizeof(T)); break;
      case 1:  // clockwise: turned[r][c] = frame[H - 1 - c][r]
        for (size_t c = 0; c < ow; ++c) dst[c] = frame[(height - 1 - c) * width + row];
        break;
      case 2:  // turned[r][c] = frame[H - 1 - r][W - 1 - c]
        for (size_t c = 0; c < ow; ++c) dst[c] = frame[(height - 1 - row) * width + (width - 1 - c)];
        break;
      default:  // three quarter turns: turned[r][c] = frame[c][W - 1 - r]
        for (size_t c = 0; c < ow; ++c) dst[c] = frame[c * width + (width - 1 - row)];
        break;
    }
  }
  return OkStatus();
}

template <typename T>
Status DeskewPlane(const Geometry& g, uint32_t k, std::span<const T> oriented, std::span<T> out) {
  const size_t U = g.raw_width, X = g.width, Y = g.height;
  if (k >= g.planes || oriented.size() != U * Y || out.size() != X * Y) {
    return Error(StatusCode::kInvalidArgument, "deskew plane {} of {}: {} raw values for {}x{}, {} out for {}x{}", k,
                 g.planes, oriented.size(), U, Y, out.size(), X, Y);
  }
  const double shift = g.Shift(k);
  if (g.copy || shift == std::floor(shift)) {  // O[y][x] = D[y][x - shift], a whole shift
    const size_t at = static_cast<size_t>(shift);
    for (size_t y = 0; y < Y; ++y) {
      T* dst = out.data() + y * X;
      std::memset(dst, 0, X * sizeof(T));
      std::memcpy(dst + at, oriented.data() + y * U, U * sizeof(T));
    }
    return OkStatus();
  }
  // The shift is the same for every voxel of the plane: with shift = n + r (n whole, 0 < r < 1),
  // q = x - shift = (x - n - 1) + (1 - r), so x takes raw samples i = x - n - 1 and i + 1 with
  // weights r and 1 - r, and is inside [0, U - 1] exactly for n + 1 <= x <= n + U - 1.
  const double n = std::floor(shift), f = 1 - (shift - n), keep = 1 - f;
  const size_t first = static_cast<size_t>(n) + 1, last = static_cast<size_t>(n) + U - 1;  // inclusive
  for (size_t y = 0; y < Y; ++y) {
    const T* src = oriented.data() + y * U;
    T* dst = out.data() + y * X;
    std::memset(dst, 0, first * sizeof(T));
    for (size_t x = first, i = 0; x <= last; ++x, ++i) {
      // Non-negative: truncation is the floor (and vectorises).
      dst[x] = static_cast<T>(static_cast<uint32_t>(src[i] * keep + src[i + 1] * f + 0.5));
    }
    if (last + 1 < X) std::memset(dst + last + 1, 0, (X - last - 1) * sizeof(T));
  }
  return OkStatus();
}

template Status Orient<uint8_t>(const Params&, std::span<const uint8_t>, uint32_t, uint32_t, std::span<uint8_t>);
template Status Orient<uint16_t>(const Params&, std::span<const uint16_t>, uint32_t, uint32_t, std::span<uint16_t>);
template Status DeskewPlane<uint8_t>(const Geometry&, uint32_t, std::span<const uint8_t>, std::span<uint8_t>);
template Status DeskewPlane<uint16_t>(const Geometry&, uint32_t, std::span<const uint16_t>, std::span<uint16_t>);

}  // namespace tessera::deskew
