#include "common/imageio/tile_config.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace tessera::imageio {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool ParseDouble(std::string_view s, double* out) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

}  // namespace

Result<TileConfig> ParseTileConfig(std::string_view text, const std::string& base_dir,
                                   const std::string& source) {
  TileConfig config;
  bool dim_seen = false;
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
    if (line.starts_with("dim")) {
      const auto eq = line.find('=');
      double d = 0;
      if (eq == std::string_view::npos || !ParseDouble(line.substr(eq + 1), &d) || (d != 2 && d != 3)) {
        return fail("expected 'dim = 2' or 'dim = 3'");
      }
      if (!config.entries.empty()) return fail("'dim' must come before the first tile");
      config.dim = static_cast<int>(d);
      dim_seen = true;
      continue;
    }
    const auto semi1 = line.find(';');
    const auto semi2 = semi1 == std::string_view::npos ? semi1 : line.find(';', semi1 + 1);
    if (semi2 == std::string_view::npos) return fail("expected 'file; ; (x, y)'");
    TileConfigEntry e;
    e.file = std::string(Trim(line.substr(0, semi1)));
    if (e.file.empty()) return fail("the file name is empty");
    std::string_view coords = Trim(line.substr(semi2 + 1));
    if (coords.size() < 2 || coords.front() != '(' || coords.back() != ')') {
      return fail(config.dim == 3 ? "expected '(x, y, z)' after the second ';'"
                                  : "expected '(x, y)' after the second ';'");
    }
    coords = coords.substr(1, coords.size() - 2);
    std::vector<double> values;
    size_t pos = 0;
    while (pos <= coords.size()) {
      size_t comma = coords.find(',', pos);
      if (comma == std::string_view::npos) comma = coords.size();
      double v = 0;
      if (!ParseDouble(coords.substr(pos, comma - pos), &v)) {
        return fail(fmt::format("'{}' is not a number", Trim(coords.substr(pos, comma - pos))));
      }
      values.push_back(v);
      pos = comma + 1;
    }
    if (values.size() != static_cast<size_t>(config.dim)) {
      return fail(fmt::format("{} coordinates for dim = {}", values.size(), config.dim));
    }
    e.x = values[0];
    e.y = values[1];
    e.z = config.dim == 3 ? values[2] : 0;
    if (!files.insert(e.file).second) return fail(fmt::format("'{}' is listed twice", e.file));
    e.path = (std::filesystem::path(base_dir) / e.file).string();
    config.entries.push_back(std::move(e));
  }
  (void)dim_seen;
  if (config.entries.empty()) {
    return Error(StatusCode::kInvalidArgument, "{}: no tiles listed", source);
  }
  return config;
}

Result<TileConfig> ReadTileConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(StatusCode::kNotFound, "cannot read {}", path);
  std::stringstream text;
  text << in.rdbuf();
  std::string dir = std::filesystem::path(path).parent_path().string();
  return ParseTileConfig(text.str(), dir.empty() ? "." : dir, path);
}

}  // namespace tessera::imageio
