#include "server/gateway/iiif.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "server/gateway/url.h"

namespace tessera::gateway {
namespace {

constexpr std::string_view kSyntax = "{region}/{size}/{rotation}/{quality}.{format}";

// A non-negative decimal: digits with at most one point ("12", "12.5", ".5").
std::optional<double> ParseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 20 || s == ".") return std::nullopt;
  double v = 0, scale = 0;
  for (char c : s) {
    if (c == '.') {
      if (scale != 0) return std::nullopt;
      scale = 1;
    } else if (c >= '0' && c <= '9') {
      if (scale != 0) {
        scale /= 10;
        v += (c - '0') * scale;
      } else {
        v = v * 10 + (c - '0');
      }
    } else {
      return std::nullopt;
    }
  }
  return v;
}

Status ParseRegion(std::string_view s, int64_t width, int64_t height, IiifImageRequest& r) {
  if (s == "full") {
    r.x = r.y = 0;
    r.w = width;
    r.h = height;
    return OkStatus();
  }
  if (s == "square") {
    const int64_t side = std::min(width, height);
    r.x = (width - side) / 2;
    r.y = (height - side) / 2;
    r.w = r.h = side;
    return OkStatus();
  }
  const bool pct = s.starts_with("pct:");
  const auto parts = Split(pct ? s.substr(4) : s, ',');
  if (parts.size() != 4) {
    return Error(StatusCode::kInvalidArgument,
                 "region '{}' is not full, square, x,y,w,h or pct:x,y,w,h", s);
  }
  int64_t box[4];
  for (int i = 0; i < 4; ++i) {
    if (pct) {
      const auto v = ParseDecimal(parts[i]);
      if (!v || *v > 100) return Error(StatusCode::kInvalidArgument, "region '{}': '{}' is not a percentage", s, parts[i]);
      box[i] = static_cast<int64_t>(std::llround(*v * static_cast<double>(i % 2 ? height : width) / 100));
    } else {
      const auto v = ParseCount(parts[i]);
      if (!v) return Error(StatusCode::kInvalidArgument, "region '{}': '{}' is not a pixel count", s, parts[i]);
      if (*v > kMaxIiifPixelCount) {
        return Error(StatusCode::kInvalidArgument, "region '{}': {} is over the largest pixel count, {}", s, *v,
                     kMaxIiifPixelCount);
      }
      box[i] = *v;
    }
  }
  if (box[2] == 0 || box[3] == 0) return Error(StatusCode::kInvalidArgument, "region '{}' is empty", s);
  if (box[0] >= width || box[1] >= height) {
    return Error(StatusCode::kInvalidArgument, "region '{}' lies outside the {} x {} image", s, width, height);
  }
  r.x = box[0];
  r.y = box[1];
  r.w = std::min(box[2], width - box[0]);  // a region reaching past the edge is cropped
  r.h = std::min(box[3], height - box[1]);
  return OkStatus();
}

Status ParseSize(std::string_view s, const IiifLimits& limits, IiifImageRequest& r) {
  const std::string_view asked = s;
  const bool upscale = s.starts_with('^');
  if (upscale) s.remove_prefix(1);
  const double rw = static_cast<double>(r.w), rh = static_cast<double>(r.h);
  double w = 0, h = 0;
  if (s == "max") {
    // At most the region (or, with ^, the limits), keeping its shape, within the limits.
    double scale = upscale ? 1e12 : 1.0;
    scale = std::min({scale, static_cast<double>(limits.max_width) / rw, static_cast<double>(limits.max_height) / rh,
                      std::sqrt(static_cast<double>(limits.max_area) / (rw * rh))});
    w = std::max(1.0, std::floor(rw * scale));
    h = std::max(1.0, std::floor(rh * scale));
  } else if (s.starts_with("pct:")) {
    const auto n = ParseDecimal(s.substr(4));
    if (!n || *n <= 0) return Error(StatusCode::kInvalidArgument, "size '{}': '{}' is not a percentage", asked, s.substr(4));
    w = std::round(rw * *n / 100);
    h = std::round(rh * *n / 100);
  } else {
    const bool confined = s.starts_with('!');
    if (confined) s.remove_prefix(1);
    const auto parts = Split(s, ',');
    if (parts.size() != 2 || (parts[0].empty() && parts[1].empty()) || (confined && (parts[0].empty() || parts[1].empty()))) {
      return Error(StatusCode::kInvalidArgument, "size '{}' is not max, w,, ,h, w,h, !w,h or pct:n (IIIF 3 has no 'full')",
                   asked);
    }
    const auto pw = parts[0].empty() ? std::optional<int64_t>(0) : ParseCount(parts[0]);
    const auto ph = parts[1].empty() ? std::optional<int64_t>(0) : ParseCount(parts[1]);
    if (!pw || !ph) return Error(StatusCode::kInvalidArgument, "size '{}': not pixel counts", asked);
    if (*pw > kMaxIiifPixelCount || *ph > kMaxIiifPixelCount) {
      return Error(StatusCode::kInvalidArgument, "size '{}': over the largest pixel count, {}", asked,
                   kMaxIiifPixelCount);
    }
    w = static_cast<double>(*pw);
    h = static_cast<double>(*ph);
    if (confined) {
      double scale = std::min(w / rw, h / rh);
      if (!upscale) scale = std::min(scale, 1.0);
      w = std::round(rw * scale);
      h = std::round(rh * scale);
    } else if (parts[1].empty()) {
      h = std::round(rh * w / rw);
    } else if (parts[0].empty()) {
      w = std::round(rw * h / rh);
    }
  }
  if (w < 1 || h < 1) return Error(StatusCode::kInvalidArgument, "size '{}' gives an empty image", asked);
  if (!upscale && (w > rw || h > rh)) {
    return Error(StatusCode::kInvalidArgument,
                 "size '{}' is larger than the {} x {} region: prefix it with ^ to allow upscaling", asked, r.w, r.h);
  }
  if (w > static_cast<double>(limits.max_width) || h > static_cast<double>(limits.max_height) ||
      w * h > static_cast<double>(limits.max_area)) {
    return Error(StatusCode::kResourceExhausted,
                 "size '{}' gives a {} x {} image, over this server's limit ({} x {}, {} pixels): ask for a smaller "
                 "size or a smaller region",
                 asked, w, h, limits.max_width, limits.max_height, limits.max_area);
  }
  r.out_w = static_cast<int64_t>(w);
  r.out_h = static_cast<int64_t>(h);
  return OkStatus();
}

Status ParseRotation(std::string_view s, IiifImageRequest& r) {
  const std::string_view asked = s;
  r.mirror = s.starts_with('!');
  if (r.mirror) s.remove_prefix(1);
  const auto degrees = ParseDecimal(s);
  if (!degrees || *degrees > 360) {
    return Error(StatusCode::kInvalidArgument, "rotation '{}' is not a number of degrees from 0 to 360", asked);
  }
  const double d = std::fmod(*degrees, 360.0);
  if (d != 0 && d != 90 && d != 180 && d != 270) {
    return Error(StatusCode::kUnimplemented, "rotation '{}': only multiples of 90 degrees are offered", asked);
  }
  r.rotation = static_cast<int>(d);
  return OkStatus();
}

Status ParseQualityFormat(std::string_view s, IiifImageRequest& r) {
  const size_t dot = s.rfind('.');
  if (dot == std::string_view::npos) {
    return Error(StatusCode::kInvalidArgument, "'{}' names no format: end the URL with {{quality}}.jpg or .png", s);
  }
  const std::string_view quality = s.substr(0, dot), format = s.substr(dot + 1);
  if (quality == "default") r.quality = IiifImageRequest::Quality::kDefault;
  else if (quality == "color") r.quality = IiifImageRequest::Quality::kColor;
  else if (quality == "gray") r.quality = IiifImageRequest::Quality::kGray;
  else if (quality == "bitonal") return Error(StatusCode::kUnimplemented, "quality 'bitonal' is not offered: use default, color or gray");
  else return Error(StatusCode::kInvalidArgument, "quality '{}' is not default, color, gray or bitonal", quality);
  if (format == "jpg") r.format = IiifImageRequest::Format::kJpg;
  else if (format == "png") r.format = IiifImageRequest::Format::kPng;
  else if (format == "tif" || format == "gif" || format == "webp" || format == "jp2" || format == "pdf") {
    return Error(StatusCode::kUnimplemented, "format '{}' is not offered: use jpg or png (raw pixels: the region endpoint)",
                 format);
  } else {
    return Error(StatusCode::kInvalidArgument, "format '{}' is not an IIIF format: use jpg or png", format);
  }
  return OkStatus();
}

}  // namespace

Result<IiifImageRequest> ParseImageRequest(std::string_view spec, int64_t width, int64_t height,
                                           const IiifLimits& limits) {
  if (spec.size() > kMaxUrlBytes) {
    return Error(StatusCode::kInvalidArgument, "the request is {} bytes long, over the limit of {}", spec.size(),
                 kMaxUrlBytes);
  }
  std::string_view parts[4];
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    const size_t slash = spec.find('/', start);
    if ((i < 3) == (slash == std::string_view::npos)) {
      return Error(StatusCode::kInvalidArgument, "'{}' is not {}", spec, kSyntax);
    }
    parts[i] = spec.substr(start, i < 3 ? slash - start : std::string_view::npos);
    start = slash + 1;
  }
  if (width <= 0 || height <= 0) return Error(StatusCode::kNotFound, "the image is empty: no tile has landed yet");
  IiifImageRequest r;
  TESSERA_RETURN_IF_ERROR(ParseRegion(parts[0], width, height, r));
  TESSERA_RETURN_IF_ERROR(ParseSize(parts[1], limits, r));
  TESSERA_RETURN_IF_ERROR(ParseRotation(parts[2], r));
  TESSERA_RETURN_IF_ERROR(ParseQualityFormat(parts[3], r));
  return r;
}

int ChooseLevel(const IiifImageRequest& req, int levels) {
  const double scale = std::min(static_cast<double>(req.w) / static_cast<double>(req.out_w),
                                static_cast<double>(req.h) / static_cast<double>(req.out_h));
  int level = 0;
  levels = std::min(levels, 62);  // 2 << level stays inside an int64
  // A little slack: a 1023-pixel region shown at 512 still reads the half-resolution level.
  while (level + 1 < levels && scale >= static_cast<double>(int64_t{2} << level) * 0.999) ++level;
  return level;
}

std::string InfoJson(const std::string& id, int64_t width, int64_t height, int levels, int tile,
                     const IiifLimits& limits) {
  nlohmann::json j;
  j["@context"] = "http://iiif.io/api/image/3/context.json";
  j["id"] = id;
  j["type"] = "ImageService3";
  j["protocol"] = "http://iiif.io/api/image";
  j["profile"] = "level2";
  j["width"] = width;
  j["height"] = height;
  j["maxWidth"] = limits.max_width;
  j["maxHeight"] = limits.max_height;
  j["maxArea"] = limits.max_area;
  levels = std::min(levels, 62);  // 1 << l stays inside an int64
  auto factors = nlohmann::json::array();
  auto sizes = nlohmann::json::array();
  for (int l = levels - 1; l >= 0; --l) {  // sizes: smallest first
    const int64_t f = int64_t{1} << l, w = (width + f - 1) / f, h = (height + f - 1) / f;
    if (w <= limits.max_width && h <= limits.max_height && w * h <= limits.max_area) {
      sizes.push_back({{"width", w}, {"height", h}});
    }
  }
  for (int l = 0; l < levels; ++l) factors.push_back(int64_t{1} << l);
  j["tiles"] = nlohmann::json::array({{{"width", tile}, {"height", tile}, {"scaleFactors", factors}}});
  j["sizes"] = sizes;
  j["extraQualities"] = {"color", "gray"};
  j["extraFeatures"] = {"baseUriRedirect", "cors",       "jsonldMediaType", "mirroring",      "regionByPct",
                        "regionByPx",      "regionSquare", "rotationBy90s", "sizeByConfinedWh", "sizeByH",
                        "sizeByPct",       "sizeByW",    "sizeByWh",        "sizeUpscaling"};
  return j.dump(2) + "\n";
}

}  // namespace tessera::gateway
