// URL pieces: percent escapes, path segments, query parameters; and the HTTP header values
// readers of chunks send (Range, If-None-Match).
//
//   auto path = PercentDecode("/iiif/3/s1/full/max/0/default.jpg");
//   auto query = ParseQuery("channels=0,1&window0=100%2C4000");  // {"channels": "0,1", ...}
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status/status.h"

namespace tessera::gateway {

/// The longest URL text (path or query) the parsers take, as Beast's request-line limit.
inline constexpr size_t kMaxUrlBytes = 8192;
/// The most parameters a query may hold.
inline constexpr size_t kMaxQueryParams = 256;

/// Decodes %XX escapes; INVALID_ARGUMENT for a broken one, a NUL, or more than kMaxUrlBytes.
Result<std::string> PercentDecode(std::string_view in);

/// A whole number written with digits only (no sign, no exponent), at most 12 of them: so
/// never above 999,999,999,999, and the product of two never overflows an int64.
std::optional<int64_t> ParseCount(std::string_view s);

/// "a{sep}b" -> [a, b) with b > a; "a" alone -> [a, a + 1).
std::optional<std::pair<int64_t, int64_t>> ParseRange(std::string_view s, char sep);

/// "a/b/c" -> {"a", "b", "c"}; views into `s`.
std::vector<std::string_view> Split(std::string_view s, char sep);

/// "k=v&k2=v2" -> {k: v, k2: v2}, values decoded; a key without "=" has an empty value,
/// a repeated key its last value. INVALID_ARGUMENT for a broken escape, a query over
/// kMaxUrlBytes or more than kMaxQueryParams parameters.
Result<std::map<std::string, std::string>> ParseQuery(std::string_view query);

/// A Range header against a body of `size` bytes: nullopt for none or one the server may ignore
/// (not "bytes=", several ranges); else the first byte and the count: "bytes=a-b", "bytes=a-",
/// "bytes=-n" (the last n). OUT_OF_RANGE when it is unsatisfiable (starts at or past the end).
Result<std::optional<std::pair<uint64_t, uint64_t>>> ParseByteRange(std::string_view header, uint64_t size);

/// Whether an If-None-Match / If-Match value ("*", or a list of quoted entity tags, weak ones
/// W/"..." included) names `etag` (quoted).
bool EtagListMatches(std::string_view header, std::string_view etag);

}  // namespace tessera::gateway
