#include "common/plan/scan_plan.h"

#include "common/durable/durable.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <set>

namespace tessera {

size_t DtypeSize(Dtype d) { return d == Dtype::kUint8 ? 1 : 2; }

std::string_view DtypeName(Dtype d) { return d == Dtype::kUint8 ? "uint8" : "uint16"; }

Result<Dtype> ParseDtype(std::string_view name) {
  if (name == "uint8" || name == "u8") return Dtype::kUint8;
  if (name == "uint16" || name == "u16") return Dtype::kUint16;
  return Error(StatusCode::kInvalidArgument, "unsupported dtype '{}': use uint8 or uint16", name);
}

Status ScanPlan::Validate() const {
  if (tiles.empty()) return Error(StatusCode::kInvalidArgument, "scan plan has no tiles");
  if (width == 0 || height == 0) return Error(StatusCode::kInvalidArgument, "tile shape {}x{} is empty", width, height);
  if (channels.empty()) return Error(StatusCode::kInvalidArgument, "scan plan has no channels");
  if (z_planes == 0) return Error(StatusCode::kInvalidArgument, "z_planes must be at least 1");
  if (chunk_y == 0 || chunk_x == 0) return Error(StatusCode::kInvalidArgument, "chunk shape {}x{} is empty", chunk_y, chunk_x);
  if (chunk_bytes() > (size_t{1} << 30)) return Error(StatusCode::kInvalidArgument, "chunk of {} bytes is too large", chunk_bytes());
  if (codec.level < 0 || codec.level > 9) return Error(StatusCode::kInvalidArgument, "codec level {} is outside 0..9", codec.level);
  for (double p : pixel_size_um) {
    if (!(p > 0)) return Error(StatusCode::kInvalidArgument, "pixel sizes must be positive (got {})", p);
  }
  std::set<std::string> names;
  for (const auto& tile : tiles) {
    if (!names.insert(tile.name).second && !tile.name.empty()) {
      return Error(StatusCode::kInvalidArgument, "tile name '{}' appears twice in the scan plan", tile.name);
    }
  }
  if (!nlohmann::json::accept(header_json)) return Error(StatusCode::kInvalidArgument, "header is not valid JSON");
  return OkStatus();
}

void ScanPlan::ClampChunks() {
  chunk_y = std::min(chunk_y, height);
  chunk_x = std::min(chunk_x, width);
}

uint32_t ScanPlan::level_count() const {
  uint32_t n = 1;
  for (uint32_t edge = std::max(width, height); edge > kCoarsestLevelEdge; edge = (edge + 1) / 2) ++n;
  return n;
}

LevelShape ScanPlan::Level(uint32_t level) const {
  LevelShape s;
  s.width = width;
  s.height = height;
  for (uint32_t l = 0; l < level; ++l) {
    s.width = (s.width + 1) / 2;
    s.height = (s.height + 1) / 2;
  }
  s.chunk_y = std::min(chunk_y, s.height);
  s.chunk_x = std::min(chunk_x, s.width);
  return s;
}

FrameKey ScanPlan::KeyOf(uint64_t index) const {
  FrameKey k;
  k.z = static_cast<uint32_t>(index % z_planes);
  index /= z_planes;
  k.c = static_cast<uint32_t>(index % channels.size());
  k.t = static_cast<uint32_t>(index / channels.size());
  return k;
}

Status ScanPlan::CheckKey(const FrameKey& k) const {
  if (k.t >= tiles.size() || k.c >= channels.size() || k.z >= z_planes) {
    return Error(StatusCode::kOutOfRange, "frame (t={}, c={}, z={}) is outside the plan ({}x{}x{})",
                 k.t, k.c, k.z, tiles.size(), channels.size(), z_planes);
  }
  return OkStatus();
}

std::string PlanToJson(const ScanPlan& p) {
  nlohmann::json j;
  j["name"] = p.name;
  j["width"] = p.width;
  j["height"] = p.height;
  j["channels"] = p.channels;
  j["z_planes"] = p.z_planes;
  j["dtype"] = DtypeName(p.dtype);
  j["pixel_size_um"] = p.pixel_size_um;
  j["chunk"] = {p.chunk_y, p.chunk_x};
  j["codec"] = {{"compressor", CompressorName(p.codec.compressor)},
                {"level", p.codec.level},
                {"shuffle", p.codec.shuffle}};
  j["header"] = nlohmann::json::parse(p.header_json, nullptr, /*allow_exceptions=*/false);
  j["stitch"] = p.stitch;
  auto& tiles = j["tiles"] = nlohmann::json::array();
  for (const auto& t : p.tiles) {
    tiles.push_back({{"name", t.name}, {"x", t.x}, {"y", t.y}, {"z", t.z}, {"row", t.row},
                     {"col", t.col}});
  }
  return j.dump();
}

Result<ScanPlan> PlanFromJson(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(StatusCode::kInvalidArgument, "scan plan is not a JSON object");
  }
  try {
    ScanPlan p;
    p.name = j.value("name", "");
    p.width = j.at("width").get<uint32_t>();
    p.height = j.at("height").get<uint32_t>();
    p.channels = j.at("channels").get<std::vector<std::string>>();
    p.z_planes = j.value("z_planes", 1u);
    TESSERA_ASSIGN_OR_RETURN(p.dtype, ParseDtype(j.value("dtype", "uint16")));
    if (j.contains("pixel_size_um")) p.pixel_size_um = j["pixel_size_um"].get<std::array<double, 3>>();
    if (j.contains("chunk")) {
      p.chunk_y = j["chunk"].at(0).get<uint32_t>();
      p.chunk_x = j["chunk"].at(1).get<uint32_t>();
    }
    if (j.contains("codec")) {
      const auto& c = j["codec"];
      TESSERA_ASSIGN_OR_RETURN(p.codec.compressor, codec::ParseCompressor(c.value("compressor", "lz4")));
      p.codec.level = c.value("level", 5);
      p.codec.shuffle = c.value("shuffle", true);
    }
    p.header_json = j.contains("header") && !j["header"].is_null() ? j["header"].dump() : "{}";
    p.stitch = j.value("stitch", true);
    for (const auto& t : j.at("tiles")) {
      p.tiles.push_back({t.value("name", ""), t.value("x", 0.0), t.value("y", 0.0), t.value("z", 0.0),
                         t.value("row", -1), t.value("col", -1)});
    }
    return p;
  } catch (const nlohmann::json::exception& e) {
    return Error(StatusCode::kInvalidArgument, "scan plan JSON: {}", e.what());
  }
}

Result<ScanPlan> ReadPlanFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(StatusCode::kNotFound, "cannot read scan plan {}", path);
  std::stringstream text;
  text << in.rdbuf();
  return PlanFromJson(text.str());
}

Status WritePlanFile(const std::string& path, const ScanPlan& plan) {
  return durable::WriteFile(path, PlanToJson(plan));
}

}  // namespace tessera
