// libFuzzer target: the gateway's URL pieces (server/gateway/url.h): percent-decoding, the
// query string, counts and ranges. Each refuses or returns values inside its contract.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/gateway/url.h"
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
  return 0;
}
