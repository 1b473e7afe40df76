// libFuzzer target: IIIF Image API request paths, "{region}/{size}/{rotation}/{quality}.{format}",
// parsed for three images (a slide, one pixel, the largest extent a slide can have). A
// request is refused with a 400/413/501 code or lies inside the image and the limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/gateway/iiif.h"
#include "tests/fuzz/fuzz_check.h"

using tessera::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  using namespace tessera::gateway;
  const std::string_view spec(reinterpret_cast<const char*>(data), size);
  const IiifLimits limits;
  const int64_t sizes[][2] = {{3000, 2000}, {1, 1}, {kMaxIiifPixelCount, kMaxIiifPixelCount}};
  for (const auto& [width, height] : sizes) {
    auto req = ParseImageRequest(spec, width, height, limits);
    if (!req.ok()) {
      const StatusCode code = req.status().code();
      Check(code == StatusCode::kInvalidArgument || code == StatusCode::kUnimplemented ||
            code == StatusCode::kResourceExhausted);
      continue;
    }
    Check(req->x >= 0 && req->y >= 0 && req->w >= 1 && req->h >= 1);
    Check(req->x + req->w <= width && req->y + req->h <= height);
    Check(req->out_w >= 1 && req->out_w <= limits.max_width && req->out_h >= 1 && req->out_h <= limits.max_height);
    Check(req->out_w * req->out_h <= limits.max_area);
    Check(req->rotation % 90 == 0 && req->rotation >= 0 && req->rotation < 360);
    for (int levels : {1, 17, 62, 1000}) {
      const int level = ChooseLevel(*req, levels);
      Check(level >= 0 && level < levels);
    }
  }
  return 0;
}
