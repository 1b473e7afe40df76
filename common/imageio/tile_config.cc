#include "common/imageio/tile_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/plan/scan_plan.h"

namespace tessera::imageio {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A finite decimal number; from_chars alone would take "nan" and "inf".
bool ParseDouble(std::string_view s, double* out) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty() && std::isfinite(*out);
}

// Text from the file, for an error message: short and printable whatever the file holds.
std::string Excerpt(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out;
  for (char c : s.substr(0, kMax)) out += c >= 0x20 && c < 0x7F ? c : '?';
  if (s.size() > kMax) out += "...";
  return out;
}

}  // namespace

Result<TileConfig> ParseTileConfig(std::string_view text, const std::string& base_dir,
                                   const std::string& source) {
  if (text.size() > kMaxTileConfigBytes) {
    return Error(StatusCode::kInvalidArgument, "{}: {} bytes, over the limit of {} (kMaxTileConfigBytes)", source,
                 text.size(), kMaxTileConfigBytes);
  }
  TileConfig config;
  std::set<std::string> files;
  int line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    auto fail = [&](const std::string& what) {
      return Error(StatusCode::kInvalidArgument, "{}:{}: {}", source, line_no, what);
    };
    // "dim = 2"; a tile file named "dimension.tif" is a tile, not a broken dim line.
    if (line.starts_with("dim") && Trim(line.substr(3)).starts_with('=')) {
      double d = 0;
      if (!ParseDouble(Trim(line.substr(3)).substr(1), &d) || (d != 2 && d != 3)) {
        return fail("expected 'dim = 2' or 'dim = 3'");
      }
      if (!config.entries.empty()) return fail("'dim' must come before the first tile");
      config.dim = static_cast<int>(d);
      continue;
    }
    if (line.starts_with("dim") && line.find(';') == std::string_view::npos) {
      return fail("expected 'dim = 2' or 'dim = 3'");
    }
    if (config.entries.size() >= kMaxTiles) {
      return fail(fmt::format("more than {} tiles (kMaxTiles)", kMaxTiles));
    }
    const auto semi1 = line.find(';');
    const auto semi2 = semi1 == std::string_view::npos ? semi1 : line.find(';', semi1 + 1);
    if (semi2 == std::string_view::npos) return fail("expected 'file; ; (x, y)'");
    TileConfigEntry e;
    e.file = std::string(Trim(line.substr(0, semi1)));
    if (e.file.empty()) return fail("the file name is empty");
    if (Status s = ValidateName("the file name", e.file); !s.ok()) return fail(s.message());
    std::string_view coords = Trim(line.substr(semi2 + 1));
    if (coords.size() < 2 || coords.front() != '(' || coords.back() != ')') {
      return fail(config.dim == 3 ? "expected '(x, y, z)' after the second ';'"
                                  : "expected '(x, y)' after the second ';'");
    }
    coords = coords.substr(1, coords.size() - 2);
    std::vector<double> values;
    bool extra = false;  // more than three values: the rest is never parsed
    size_t pos = 0;
    while (pos <= coords.size()) {
      size_t comma = coords.find(',', pos);
      if (comma == std::string_view::npos) comma = coords.size();
      double v = 0;
      if (values.size() == 3) {
        extra = true;
        break;
      }
      if (!ParseDouble(coords.substr(pos, comma - pos), &v)) {
        return fail(fmt::format("'{}' is not a finite number", Excerpt(Trim(coords.substr(pos, comma - pos)))));
      }
      if (std::fabs(v) > kMaxTilePosition) {
        return fail(fmt::format("{} is beyond the limit of +-{} pixels (kMaxTilePosition)", v, kMaxTilePosition));
      }
      values.push_back(v);
      pos = comma + 1;
    }
    if (extra) return fail(fmt::format("more than 3 coordinates for dim = {}", config.dim));
    if (values.size() != static_cast<size_t>(config.dim)) {
      return fail(fmt::format("{} coordinates for dim = {}", values.size(), config.dim));
    }
    e.x = values[0];
    e.y = values[1];
    e.z = config.dim == 3 ? values[2] : 0;
    if (!files.insert(e.file).second) return fail(fmt::format("'{}' is listed twice", Excerpt(e.file)));
    e.path = (std::filesystem::path(base_dir) / e.file).string();
    config.entries.push_back(std::move(e));
  }
  if (config.entries.empty()) {
    return Error(StatusCode::kInvalidArgument, "{}: no tiles listed", source);
  }
  return config;
}

Result<TileConfig> ReadTileConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error(StatusCode::kNotFound, "cannot read {}", path);
  // At most one byte past the limit, so that the parser refuses an over-long file.
  const auto size = static_cast<std::streamoff>(in.tellg());
  std::string text(static_cast<size_t>(std::clamp<std::streamoff>(size, 0, kMaxTileConfigBytes + 1)), '\0');
  in.seekg(0);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::string dir = std::filesystem::path(path).parent_path().string();
  return ParseTileConfig(text, dir.empty() ? "." : dir, path);
}

}  // namespace tessera::imageio
