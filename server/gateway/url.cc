#include "server/gateway/url.h"

#include <algorithm>
#include <cctype>

namespace tessera::gateway {
namespace {

// Strict UTF-8: a decoded path or parameter goes on into protobuf strings (slide ids) and
// JSON replies, both of which require it.
bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 0 : (b & 0xE0) == 0xC0 ? 1 : (b & 0xF0) == 0xE0 ? 2 : (b & 0xF8) == 0xF0 ? 3 : 4;
    if (n == 4 || i + n >= s.size()) return false;  // not a lead byte, or cut short
    uint32_t cp = n == 0 ? b : b & (0x7Fu >> (n + 1));
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Result<std::string> PercentDecode(std::string_view in) {
  if (in.size() > kMaxUrlBytes) {
    return Error(StatusCode::kInvalidArgument, "the URL is {} bytes long, over the limit of {}", in.size(), kMaxUrlBytes);
  }
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      return Error(StatusCode::kInvalidArgument, "the URL has a broken percent escape at character {}", i);
    }
    const char c = static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
    if (c == '\0') return Error(StatusCode::kInvalidArgument, "the URL holds a NUL character");
    out += c;
    i += 2;
  }
  if (!IsUtf8(out)) return Error(StatusCode::kInvalidArgument, "the URL is not valid UTF-8 once decoded");
  return out;
}

std::optional<int64_t> ParseCount(std::string_view s) {
  if (s.empty() || s.size() > 12) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<std::pair<int64_t, int64_t>> ParseRange(std::string_view s, char sep) {
  const size_t at = s.find(sep);
  const int64_t a = ParseCount(s.substr(0, at)).value_or(-1);
  const int64_t b = at == std::string_view::npos ? a + 1 : ParseCount(s.substr(at + 1)).value_or(-1);
  if (a < 0 || b <= a) return std::nullopt;
  return std::make_pair(a, b);
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

Result<std::map<std::string, std::string>> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> params;
  if (query.empty()) return params;
  if (query.size() > kMaxUrlBytes) {
    return Error(StatusCode::kInvalidArgument, "the query is {} bytes long, over the limit of {}", query.size(),
                 kMaxUrlBytes);
  }
  size_t count = 0;
  for (std::string_view pair : Split(query, '&')) {
    if (pair.empty()) continue;
    if (++count > kMaxQueryParams) {
      return Error(StatusCode::kInvalidArgument, "the query has more than {} parameters", kMaxQueryParams);
    }
    const size_t eq = pair.find('=');
    TESSERA_ASSIGN_OR_RETURN(std::string key, PercentDecode(pair.substr(0, eq)));
    TESSERA_ASSIGN_OR_RETURN(std::string value,
                             PercentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1)));
    params[std::move(key)] = std::move(value);
  }
  return params;
}

Result<std::optional<std::pair<uint64_t, uint64_t>>> ParseByteRange(std::string_view header, uint64_t size) {
  using Range = std::optional<std::pair<uint64_t, uint64_t>>;
  constexpr std::string_view kBytes = "bytes=";
  if (!header.starts_with(kBytes) || header.find(',') != std::string_view::npos) return Range();
  const std::string_view spec = header.substr(kBytes.size());
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return Range();
  const std::string_view first = spec.substr(0, dash), last = spec.substr(dash + 1);
  const std::optional<int64_t> a = ParseCount(first), b = ParseCount(last);
  if ((!first.empty() && !a) || (!last.empty() && !b) || (first.empty() && last.empty())) return Range();
  const uint64_t to = b.value_or(0);
  if (first.empty()) {  // the last n bytes
    if (to == 0 || size == 0) return Error(StatusCode::kOutOfRange, "Range {}: nothing to send", header);
    const uint64_t n = std::min(to, size);
    return Range(std::make_pair(size - n, n));
  }
  const uint64_t begin = static_cast<uint64_t>(a.value_or(0));
  if (begin >= size) return Error(StatusCode::kOutOfRange, "Range {} starts past the {} bytes", header, size);
  if (!last.empty() && to < begin) return Range();  // syntactically invalid: ignored
  const uint64_t end = last.empty() ? size : std::min(to + 1, size);
  return Range(std::make_pair(begin, end - begin));
}

bool EtagListMatches(std::string_view header, std::string_view etag) {
  for (std::string_view item : Split(header, ',')) {
    while (item.starts_with(' ')) item.remove_prefix(1);
    while (item.ends_with(' ')) item.remove_suffix(1);
    if (item == "*") return true;
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag) return true;
  }
  return false;
}

}  // namespace tessera::gateway
