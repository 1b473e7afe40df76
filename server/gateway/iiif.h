// IIIF Image API 3.0: the request URL's grammar and the image information document.
//
//   {region}/{size}/{rotation}/{quality}.{format}      https://iiif.io/api/image/3.0/
//   region   full | square | x,y,w,h | pct:x,y,w,h     (cropped to the image; empty: 400)
//   size     max | w, | ,h | w,h | !w,h | pct:n, each with a leading ^ to allow upscaling
//   rotation 0 | 90 | 180 | 270, with a leading ! to mirror first (others: 501)
//   quality  default | color | gray                     (bitonal: 501)
//   format   jpg | png                                   (tif, gif, webp, jp2, pdf: 501)
//
//   auto req = ParseImageRequest("0,0,1024,1024/512,/0/default.jpg", 20000, 15000, limits);
//   // req->x == 0, req->w == 1024, req->out_w == 512, req->out_h == 512
//
// Errors are INVALID_ARGUMENT (400: not the grammar, an empty region, upscaling without ^),
// UNIMPLEMENTED (501: valid but not offered here) and RESOURCE_EXHAUSTED (over the limits).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status/status.h"

namespace tessera::gateway {

/// The largest number a region or size may hold: a scan plan's bounds (kMaxTilePosition,
/// kMaxFrameEdge) keep every slide's extent inside a uint32, so a larger number is a
/// malformed request (400), never a value to wrap or to multiply.
inline constexpr int64_t kMaxIiifPixelCount = 0xFFFFFFFF;

/// The largest image the gateway renders (info.json's maxWidth, maxHeight, maxArea).
struct IiifLimits {
  int64_t max_width = 8192;
  int64_t max_height = 8192;
  int64_t max_area = int64_t{8192} * 8192;
};

struct IiifImageRequest {
  enum class Quality { kDefault, kColor, kGray };
  enum class Format { kJpg, kPng };
  int64_t x = 0, y = 0, w = 0, h = 0;  ///< the region in full-resolution pixels, inside the image
  int64_t out_w = 0, out_h = 0;        ///< the size before rotation
  int rotation = 0;                    ///< 0, 90, 180, 270 clockwise
  bool mirror = false;                 ///< mirrored left-right before rotating
  Quality quality = Quality::kDefault;
  Format format = Format::kJpg;
};

/// Parses "{region}/{size}/{rotation}/{quality}.{format}" for an image of width x height.
/// A spec over kMaxUrlBytes, or a number over kMaxIiifPixelCount, is INVALID_ARGUMENT.
Result<IiifImageRequest> ParseImageRequest(std::string_view spec, int64_t width, int64_t height,
                                           const IiifLimits& limits);

/// The zoom level (0: full resolution, each next one half the last) to read `req` from:
/// the coarsest whose resolution is still at least the output's in both directions.
int ChooseLevel(const IiifImageRequest& req, int levels);

/// info.json: the required fields plus tiles (tile edge, a scale factor per level), sizes,
/// the limits, and what this server offers beyond level 0 of the compliance profile.
std::string InfoJson(const std::string& id, int64_t width, int64_t height, int levels, int tile,
                     const IiifLimits& limits);

}  // namespace tessera::gateway
