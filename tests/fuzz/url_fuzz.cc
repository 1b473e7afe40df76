// libFuzzer target: the gateway's URL pieces (server/gateway/url.h): percent-decoding, the
// query string, counts and ranges, the Range and If-* headers; and the keys of an OME-Zarr
// image (server/gateway/zarr.h). Each refuses or returns values inside its contract.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/gateway/url.h"
#include "server/gateway/zarr.h"
#include "tests/fuzz/fuzz_check.h"

using tessera::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  using namespace tessera::gateway;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto path = PercentDecode(in); path.ok()) {
    Check(path->size() <= in.size());
    for (std::string_view part : Split(*path, '/')) Check(part.size() <= path->size());
  } else {
    Check(path.status().code() == StatusCode::kInvalidArgument);
  }
  if (auto query = ParseQuery(in); query.ok()) {
    Check(query->size() <= kMaxQueryParams);
  } else {
    Check(query.status().code() == StatusCode::kInvalidArgument);
  }
  if (auto n = ParseCount(in)) Check(*n >= 0 && *n <= 999'999'999'999);
  for (char sep : {':', '-'}) {
    if (auto r = ParseRange(in, sep)) Check(r->first >= 0 && r->second > r->first);
  }
  for (uint64_t body : {uint64_t{0}, uint64_t{1}, uint64_t{1000}}) {
    if (auto r = ParseByteRange(in, body); r.ok()) {
      if (*r) Check((*r)->second > 0 && (*r)->first + (*r)->second <= body);
    } else {
      Check(r.status().code() == StatusCode::kOutOfRange);
    }
  }
  (void)EtagListMatches(in, "\"0123456789abcdef\"");
  static const zarr::Image image = [] {
    ScanPlan plan;
    plan.width = 1000;
    plan.height = 700;
    plan.chunk_y = plan.chunk_x = 256;
    plan.channels = {"a", "b"};
    plan.z_planes = 3;
    plan.tiles.push_back({.name = "t"});
    return zarr::FieldImage(plan, plan.level_count(), {0, 0, 0}, {});
  }();
  for (auto version : {zarr::Version::kV2, zarr::Version::kV3}) {
    if (auto key = zarr::ParseKey(image, version, in); key.ok()) {
      Check(key->level < image.levels.size());
      if (key->kind == zarr::Key::kChunk) {
        const auto grid = image.levels[key->level].chunk_grid();
        for (size_t i = 0; i < 4; ++i) Check(key->chunk[i] < grid[i]);
      }
    } else {
      Check(key.status().code() == StatusCode::kNotFound);
    }
  }
  return 0;
}
