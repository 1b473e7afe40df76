// libFuzzer target: TIFF files, decoded from memory by the same code as ReadTiff.
// DecodeTiff must refuse (never crash, never allocate what the header merely claims) or
// return an image whose buffer holds exactly its planes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/imageio/tiff.h"
#include "tests/fuzz/fuzz_check.h"

using tessera::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  auto image = imageio::DecodeTiff(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!image.ok()) {
    const StatusCode code = image.status().code();
    Check(code == StatusCode::kDataLoss || code == StatusCode::kInvalidArgument);
    return 0;
  }
  Check(image->width >= 1 && image->width <= kMaxFrameEdge && image->height >= 1 && image->height <= kMaxFrameEdge);
  Check(image->planes >= 1 && image->planes <= kMaxZPlanes);
  Check(image->pixels.size() == uint64_t{image->width} * image->height * image->planes * DtypeSize(image->dtype));
  return 0;
}
