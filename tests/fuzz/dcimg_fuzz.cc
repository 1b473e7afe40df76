// libFuzzer target: DCIMG files, parsed from memory by the code StackReader uses on files.
// ParseDcimg must refuse (never crash, never read outside the file) or give a layout whose
// every frame and four-pixel table lies inside the file; ReadDcimgFrame then reads frame 0
// and the last one.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/imageio/dcimg.h"
#include "tests/fuzz/fuzz_check.h"

using tessera::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  const imageio::ReadAt read = [&](uint64_t offset, std::span<uint8_t> out) -> Status {
    Check(offset <= size && out.size() <= size - offset);  // the parser checked every offset first
    std::memcpy(out.data(), data + offset, out.size());
    return OkStatus();
  };
  auto layout = imageio::ParseDcimg(size, read);
  if (!layout.ok()) {
    const StatusCode code = layout.status().code();
    Check(code == StatusCode::kDataLoss || code == StatusCode::kInvalidArgument);
    return 0;
  }
  Check(layout->width >= 1 && layout->width <= kMaxFrameEdge && layout->height >= 1 && layout->height <= kMaxFrameEdge);
  Check(layout->frames >= 1 && layout->frames <= kMaxZPlanes);
  const size_t frame = size_t{layout->width} * layout->height * DtypeSize(layout->dtype);
  if (frame > (size_t{64} << 20)) return 0;  // a real frame, but more than a fuzz run should hold
  std::vector<uint8_t> out(frame);
  Check(imageio::ReadDcimgFrame(*layout, 0, read, out).ok());
  Check(imageio::ReadDcimgFrame(*layout, layout->frames - 1, read, out).ok());
  return 0;
}
