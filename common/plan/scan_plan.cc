#include "common/plan/scan_plan.h"

#include "common/durable/durable.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <fstream>
#include <set>

namespace tessera {

size_t DtypeSize(Dtype d) { return d == Dtype::kUint8 ? 1 : 2; }

std::string_view DtypeName(Dtype d) { return d == Dtype::kUint8 ? "uint8" : "uint16"; }

Result<Dtype> ParseDtype(std::string_view name) {
  if (name == "uint8" || name == "u8") return Dtype::kUint8;
  if (name == "uint16" || name == "u16") return Dtype::kUint16;
  return Error(StatusCode::kInvalidArgument, "unsupported dtype '{}': use uint8 or uint16", name);
}

namespace {

constexpr auto kInvalid = StatusCode::kInvalidArgument;

// The deepest nesting of arrays and objects in JSON text, strings skipped: refused before
// any recursive code (nlohmann's dump) meets a document of a million '['.
size_t JsonDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF): what
// nlohmann's dump accepts without throwing, and what protobuf's string fields require.
bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0, min = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      n = 1, cp = b & 0x1Fu, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2, cp = b & 0x0Fu, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      n = 3, cp = b & 0x07u, min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

Status CheckPosition(size_t tile, std::string_view axis, double v) {
  if (!std::isfinite(v)) return Error(kInvalid, "tile {}: {} = {} is not a finite number", tile, axis, v);
  if (std::fabs(v) > kMaxTilePosition) {
    return Error(kInvalid, "tile {}: {} = {} is beyond the limit of +-{} pixels (kMaxTilePosition)", tile, axis, v,
                 kMaxTilePosition);
  }
  return OkStatus();
}

// A name goes into HDF5 attributes, protobuf strings and log lines: bounded, UTF-8, and
// free of control characters.
Status ValidateName(std::string_view what, std::string_view name) {
  if (name.size() > kMaxNameBytes) {
    return Error(kInvalid, "{} is {} bytes long, over the limit of {} (kMaxNameBytes)", what, name.size(),
                 kMaxNameBytes);
  }
  if (!IsUtf8(name)) return Error(kInvalid, "{} is not valid UTF-8", what);
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return Error(kInvalid, "{} holds a control character", what);
  }
  return OkStatus();
}

Status ScanPlan::Validate() const {
  if (tiles.empty()) return Error(kInvalid, "scan plan has no tiles");
  if (width == 0 || height == 0) return Error(kInvalid, "tile shape {}x{} is empty", width, height);
  if (channels.empty()) return Error(kInvalid, "scan plan has no channels");
  if (z_planes == 0) return Error(kInvalid, "z_planes must be at least 1");
  if (chunk_y == 0 || chunk_x == 0 || chunk_z == 0) {
    return Error(kInvalid, "chunk shape {}x{}x{} is empty", chunk_z, chunk_y, chunk_x);
  }
  // The products first, checked, so that no bound below is ever computed from a wrapped value.
  uint64_t frames = 0, pixels = 0, frame_bytes = 0, slide_bytes = 0;
  if (__builtin_mul_overflow(uint64_t{tiles.size()}, uint64_t{channels.size()}, &frames) ||
      __builtin_mul_overflow(frames, uint64_t{z_planes}, &frames)) {
    return Error(kInvalid, "frame count {} tiles x {} channels x {} z planes overflows 64 bits", tiles.size(),
                 channels.size(), z_planes);
  }
  if (__builtin_mul_overflow(uint64_t{width}, uint64_t{height}, &pixels) ||
      __builtin_mul_overflow(pixels, uint64_t{DtypeSize(dtype)}, &frame_bytes) ||
      __builtin_mul_overflow(frames, frame_bytes, &slide_bytes)) {
    return Error(kInvalid, "slide size {} frames of {}x{} {} overflows 64 bits", frames, width, height,
                 DtypeName(dtype));
  }
  if (tiles.size() > kMaxTiles) {
    return Error(kInvalid, "scan plan has {} tiles, over the limit of {} (kMaxTiles)", tiles.size(), kMaxTiles);
  }
  if (channels.size() > kMaxChannels) {
    return Error(kInvalid, "scan plan has {} channels, over the limit of {} (kMaxChannels)", channels.size(),
                 kMaxChannels);
  }
  if (z_planes > kMaxZPlanes) {
    return Error(kInvalid, "z_planes = {} is over the limit of {} (kMaxZPlanes)", z_planes, kMaxZPlanes);
  }
  if (width > kMaxFrameEdge || height > kMaxFrameEdge) {
    return Error(kInvalid, "tile shape {}x{} is over the limit of {} pixels a side (kMaxFrameEdge)", width, height,
                 kMaxFrameEdge);
  }
  if (chunk_y > kMaxChunkEdge || chunk_x > kMaxChunkEdge) {
    return Error(kInvalid, "chunk shape {}x{} is over the limit of {} pixels a side (kMaxChunkEdge)", chunk_y,
                 chunk_x, kMaxChunkEdge);
  }
  if (chunk_z > kMaxChunkPlanes || chunk_z > z_planes) {
    return Error(kInvalid, "chunks of {} planes: at most {} (kMaxChunkPlanes) and at most z_planes ({})", chunk_z,
                 kMaxChunkPlanes, z_planes);
  }
  if (const uint64_t b = uint64_t{chunk_z} * chunk_y * chunk_x * DtypeSize(dtype); b > kMaxChunkBytes) {
    return Error(kInvalid, "chunks of {}x{}x{} {} are {} bytes, over the limit of {} (kMaxChunkBytes)", chunk_z, chunk_y,
                 chunk_x, DtypeName(dtype), b, kMaxChunkBytes);
  }
  if (const uint64_t n = uint64_t{chunks_y()} * chunks_x(); n > kMaxChunksPerFrame) {
    return Error(kInvalid, "{}x{} frames in {}x{} chunks make {} chunks a frame, over the limit of {} "
                 "(kMaxChunksPerFrame): use larger chunks", width, height, chunk_y, chunk_x, n, kMaxChunksPerFrame);
  }
  if (frames > kMaxFrames) {
    return Error(kInvalid, "scan plan has {} frames (tiles x channels x z planes), over the limit of {} (kMaxFrames)",
                 frames, kMaxFrames);
  }
  if (slide_bytes > kMaxSlideBytes) {
    return Error(kInvalid, "scan plan holds {} bytes of pixels, over the limit of {} (kMaxSlideBytes)", slide_bytes,
                 kMaxSlideBytes);
  }
  if (codec.level < 0 || codec.level > 9) return Error(kInvalid, "codec level {} is outside 0..9", codec.level);
  for (double p : pixel_size_um) {
    if (!std::isfinite(p) || !(p > 0)) {
      return Error(kInvalid, "pixel sizes must be positive finite numbers (got {})", p);
    }
    if (p < kMinPixelSizeUm || p > kMaxPixelSizeUm) {
      return Error(kInvalid, "pixel size {} um is outside {}..{} um (kMinPixelSizeUm, kMaxPixelSizeUm)", p,
                   kMinPixelSizeUm, kMaxPixelSizeUm);
    }
  }
  TESSERA_RETURN_IF_ERROR(ValidateName("the scan plan's name", name));
  for (size_t c = 0; c < channels.size(); ++c) {
    TESSERA_RETURN_IF_ERROR(ValidateName(fmt::format("channel {}'s name", c), channels[c]));
  }
  std::set<std::string_view> names;
  for (size_t i = 0; i < tiles.size(); ++i) {
    const TilePlacement& tile = tiles[i];
    TESSERA_RETURN_IF_ERROR(ValidateName(fmt::format("tile {}'s name", i), tile.name));
    TESSERA_RETURN_IF_ERROR(CheckPosition(i, "x", tile.x));
    TESSERA_RETURN_IF_ERROR(CheckPosition(i, "y", tile.y));
    TESSERA_RETURN_IF_ERROR(CheckPosition(i, "z", tile.z));
    for (int v : {tile.row, tile.col}) {
      if (v < -1 || v >= static_cast<int>(kMaxTiles)) {
        return Error(kInvalid, "tile {}: grid index {} is outside -1..{} (kMaxTiles)", i, v, kMaxTiles - 1);
      }
    }
    if (!names.insert(tile.name).second && !tile.name.empty()) {
      return Error(kInvalid, "tile name '{}' appears twice in the scan plan", tile.name);
    }
  }
  if (header_json.size() > kMaxHeaderJsonBytes) {
    return Error(kInvalid, "header of {} bytes is over the limit of {} (kMaxHeaderJsonBytes)", header_json.size(),
                 kMaxHeaderJsonBytes);
  }
  if (const size_t depth = JsonDepth(header_json); depth > kMaxJsonDepth) {
    return Error(kInvalid, "header nests {} deep, over the limit of {} (kMaxJsonDepth)", depth, kMaxJsonDepth);
  }
  if (!nlohmann::json::accept(header_json)) return Error(kInvalid, "header is not valid JSON");
  if (oblique) {  // the parameters, and planes the deskew can make
    if (Status s = deskew::Plan(DeskewParamsOf(*this), width, height, z_planes).status(); !s.ok()) {
      return Error(kInvalid, "oblique scan: {}", s.message());
    }
  }
  return OkStatus();
}

deskew::Params DeskewParamsOf(const ScanPlan& plan) {
  const ObliqueScan o = plan.oblique.value_or(ObliqueScan{});
  return {.angle_deg = o.angle_deg, .stage_step_um = o.stage_step_um, .pixel_size_um = plan.pixel_size_um[0],
          .scan_direction = o.scan_direction, .rotate_90 = o.rotate_90, .flip_ud = o.flip_ud};
}

Result<ScanPlan> DeskewedPlanOf(const ScanPlan& raw) {
  if (!raw.oblique) return Error(StatusCode::kFailedPrecondition, "plan {} is not an oblique scan", raw.name);
  TESSERA_ASSIGN_OR_RETURN(const deskew::Geometry g,
                           deskew::Plan(DeskewParamsOf(raw), raw.width, raw.height, raw.z_planes));
  ScanPlan d = raw;
  d.name = raw.name + " (deskewed)";
  d.width = g.width;
  d.height = g.height;
  d.pixel_size_um = g.voxel_um;
  d.oblique.reset();
  d.stitch = false;
  d.ClampChunks();
  TESSERA_RETURN_IF_ERROR(d.Validate());
  return d;
}

void ScanPlan::ClampChunks() {
  chunk_y = std::min(chunk_y, height);
  chunk_x = std::min(chunk_x, width);
  chunk_z = std::min(chunk_z, z_planes);
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
  // A volume view halves z from level l to l + 1 where level l's voxel is not coarser in z
  // than in x (anisotropy-aware, as Neuroglancer's multiscale volumes are).
  if (chunk_z > 1) {
    double xy = pixel_size_um[0], z = pixel_size_um[2];
    uint32_t planes = z_planes;
    for (uint32_t l = 0; l < level; ++l, xy *= 2) {
      if (planes > 1 && z <= xy * (1 + 1e-9)) {
        planes = (planes + 1) / 2;
        z *= 2;
        ++s.z_shift;
      }
    }
  }
  s.depth = static_cast<uint32_t>(s.DepthOf(z_planes));
  s.chunk_z = std::min(chunk_z, s.depth);
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
  if (p.chunk_z != 1) j["chunk_z"] = p.chunk_z;
  j["codec"] = {{"compressor", CompressorName(p.codec.compressor)},
                {"level", p.codec.level},
                {"shuffle", p.codec.shuffle}};
  j["header"] = nlohmann::json::parse(p.header_json, nullptr, /*allow_exceptions=*/false);
  j["stitch"] = p.stitch;
  if (p.oblique) {
    j["oblique"] = {{"angle_deg", p.oblique->angle_deg},   {"stage_step_um", p.oblique->stage_step_um},
                    {"scan_direction", p.oblique->scan_direction}, {"rotate_90", p.oblique->rotate_90},
                    {"flip_ud", p.oblique->flip_ud}};
  }
  auto& tiles = j["tiles"] = nlohmann::json::array();
  for (const auto& t : p.tiles) {
    tiles.push_back({{"name", t.name}, {"x", t.x}, {"y", t.y}, {"z", t.z}, {"row", t.row},
                     {"col", t.col}});
  }
  return j.dump();
}

namespace {

using Json = nlohmann::json;

// What a field held, for an error message: numbers as written, anything else by type
// (a string is never echoed, so a message stays short and valid UTF-8).
std::string Shown(const Json& j) {
  return j.is_number() || j.is_boolean() || j.is_null() ? j.dump() : std::string(j.type_name());
}

// A JSON whole number in T's range. nlohmann's get<uint32_t>() would wrap a negative and
// cast a float with undefined behaviour past the range, so the type is checked first.
template <typename T>
Result<T> Whole(const Json& j, std::string_view field) {
  constexpr auto kMin = std::numeric_limits<T>::min();
  constexpr auto kMax = std::numeric_limits<T>::max();
  if (j.is_number_unsigned()) {
    if (const uint64_t v = j.get<uint64_t>(); v <= static_cast<uint64_t>(kMax)) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= static_cast<int64_t>(kMin) && (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(kMax))) {
      return static_cast<T>(v);
    }
  }
  return Error(kInvalid, "scan plan: {} must be a whole number from {} to {} (got {})", field, kMin, kMax, Shown(j));
}

Result<double> Number(const Json& j, std::string_view field) {
  if (!j.is_number()) return Error(kInvalid, "scan plan: {} must be a number (got {})", field, Shown(j));
  return j.get<double>();
}

Result<std::string> String(const Json& j, std::string_view field) {
  if (!j.is_string()) return Error(kInvalid, "scan plan: {} must be a string (got {})", field, Shown(j));
  return j.get<std::string>();
}

Result<bool> Bool(const Json& j, std::string_view field) {
  if (!j.is_boolean()) return Error(kInvalid, "scan plan: {} must be true or false (got {})", field, Shown(j));
  return j.get<bool>();
}

// The member `key` of object `j`, or nullptr when it is absent.
const Json* Member(const Json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

Result<ScanPlan> PlanFromDom(const Json& j) {
  ScanPlan p;
  const Json* m = nullptr;
  if ((m = Member(j, "name"))) {
    TESSERA_ASSIGN_OR_RETURN(p.name, String(*m, "name"));
  }
  if (!(m = Member(j, "width"))) return Error(kInvalid, "scan plan: width is missing");
  TESSERA_ASSIGN_OR_RETURN(p.width, Whole<uint32_t>(*m, "width"));
  if (!(m = Member(j, "height"))) return Error(kInvalid, "scan plan: height is missing");
  TESSERA_ASSIGN_OR_RETURN(p.height, Whole<uint32_t>(*m, "height"));
  if (!(m = Member(j, "channels")) || !m->is_array()) {
    return Error(kInvalid, "scan plan: channels must be an array of names");
  }
  if (m->size() > kMaxChannels) {
    return Error(kInvalid, "scan plan has {} channels, over the limit of {} (kMaxChannels)", m->size(), kMaxChannels);
  }
  p.channels.clear();
  for (const Json& c : *m) {
    TESSERA_ASSIGN_OR_RETURN(std::string name, String(c, "a channel name"));
    p.channels.push_back(std::move(name));
  }
  if ((m = Member(j, "z_planes"))) {
    TESSERA_ASSIGN_OR_RETURN(p.z_planes, Whole<uint32_t>(*m, "z_planes"));
  }
  if ((m = Member(j, "dtype"))) {
    TESSERA_ASSIGN_OR_RETURN(std::string dtype, String(*m, "dtype"));
    TESSERA_ASSIGN_OR_RETURN(p.dtype, ParseDtype(dtype));
  }
  if ((m = Member(j, "pixel_size_um"))) {
    if (!m->is_array() || m->size() != 3) return Error(kInvalid, "scan plan: pixel_size_um must be [x, y, z]");
    for (size_t i = 0; i < 3; ++i) {
      TESSERA_ASSIGN_OR_RETURN(p.pixel_size_um[i], Number((*m)[i], "pixel_size_um"));
    }
  }
  if ((m = Member(j, "chunk"))) {
    if (!m->is_array() || m->size() != 2) return Error(kInvalid, "scan plan: chunk must be [chunk_y, chunk_x]");
    TESSERA_ASSIGN_OR_RETURN(p.chunk_y, Whole<uint32_t>((*m)[0], "chunk_y"));
    TESSERA_ASSIGN_OR_RETURN(p.chunk_x, Whole<uint32_t>((*m)[1], "chunk_x"));
  }
  if ((m = Member(j, "chunk_z"))) {
    TESSERA_ASSIGN_OR_RETURN(p.chunk_z, Whole<uint32_t>(*m, "chunk_z"));
  }
  if ((m = Member(j, "codec"))) {
    if (!m->is_object()) return Error(kInvalid, "scan plan: codec must be an object");
    const Json* f = nullptr;
    if ((f = Member(*m, "compressor"))) {
      TESSERA_ASSIGN_OR_RETURN(std::string compressor, String(*f, "codec.compressor"));
      TESSERA_ASSIGN_OR_RETURN(p.codec.compressor, codec::ParseCompressor(compressor));
    }
    if ((f = Member(*m, "level"))) {
      TESSERA_ASSIGN_OR_RETURN(p.codec.level, Whole<int>(*f, "codec.level"));
    }
    if ((f = Member(*m, "shuffle"))) {
      TESSERA_ASSIGN_OR_RETURN(p.codec.shuffle, Bool(*f, "codec.shuffle"));
    }
  }
  if ((m = Member(j, "header")) && !m->is_null()) p.header_json = m->dump();
  if ((m = Member(j, "stitch"))) {
    TESSERA_ASSIGN_OR_RETURN(p.stitch, Bool(*m, "stitch"));
  }
  if ((m = Member(j, "oblique")) && !m->is_null()) {
    if (!m->is_object()) return Error(kInvalid, "scan plan: oblique must be an object");
    ObliqueScan o;
    const Json* f = nullptr;
    if (!(f = Member(*m, "angle_deg"))) return Error(kInvalid, "scan plan: oblique.angle_deg is missing");
    TESSERA_ASSIGN_OR_RETURN(o.angle_deg, Number(*f, "oblique.angle_deg"));
    if (!(f = Member(*m, "stage_step_um"))) return Error(kInvalid, "scan plan: oblique.stage_step_um is missing");
    TESSERA_ASSIGN_OR_RETURN(o.stage_step_um, Number(*f, "oblique.stage_step_um"));
    if ((f = Member(*m, "scan_direction"))) {
      TESSERA_ASSIGN_OR_RETURN(o.scan_direction, Whole<int>(*f, "oblique.scan_direction"));
    }
    if ((f = Member(*m, "rotate_90"))) {
      TESSERA_ASSIGN_OR_RETURN(o.rotate_90, Whole<int>(*f, "oblique.rotate_90"));
    }
    if ((f = Member(*m, "flip_ud"))) {
      TESSERA_ASSIGN_OR_RETURN(o.flip_ud, Bool(*f, "oblique.flip_ud"));
    }
    p.oblique = o;
  }
  if (!(m = Member(j, "tiles")) || !m->is_array()) return Error(kInvalid, "scan plan: tiles must be an array");
  if (m->size() > kMaxTiles) {
    return Error(kInvalid, "scan plan has {} tiles, over the limit of {} (kMaxTiles)", m->size(), kMaxTiles);
  }
  p.tiles.reserve(m->size());
  for (const Json& t : *m) {
    if (!t.is_object()) return Error(kInvalid, "scan plan: tile {} is not an object", p.tiles.size());
    TilePlacement tile;
    const Json* f = nullptr;
    if ((f = Member(t, "name"))) {
      TESSERA_ASSIGN_OR_RETURN(tile.name, String(*f, "a tile's name"));
    }
    if ((f = Member(t, "x"))) {
      TESSERA_ASSIGN_OR_RETURN(tile.x, Number(*f, "a tile's x"));
    }
    if ((f = Member(t, "y"))) {
      TESSERA_ASSIGN_OR_RETURN(tile.y, Number(*f, "a tile's y"));
    }
    if ((f = Member(t, "z"))) {
      TESSERA_ASSIGN_OR_RETURN(tile.z, Number(*f, "a tile's z"));
    }
    if ((f = Member(t, "row"))) {
      TESSERA_ASSIGN_OR_RETURN(tile.row, Whole<int>(*f, "a tile's row"));
    }
    if ((f = Member(t, "col"))) {
      TESSERA_ASSIGN_OR_RETURN(tile.col, Whole<int>(*f, "a tile's col"));
    }
    p.tiles.push_back(std::move(tile));
  }
  TESSERA_RETURN_IF_ERROR(p.Validate());
  return p;
}

}  // namespace

Result<ScanPlan> PlanFromJson(std::string_view text) {
  if (text.size() > kMaxPlanJsonBytes) {
    return Error(kInvalid, "scan plan JSON of {} bytes is over the limit of {} (kMaxPlanJsonBytes)", text.size(),
                 kMaxPlanJsonBytes);
  }
  if (const size_t depth = JsonDepth(text); depth > kMaxJsonDepth) {
    return Error(kInvalid, "scan plan JSON nests {} deep, over the limit of {} (kMaxJsonDepth)", depth, kMaxJsonDepth);
  }
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Error(kInvalid, "scan plan is not a JSON object");
  try {
    return PlanFromDom(j);
  } catch (const Json::exception& e) {  // a safety net: every access above is type-checked
    return Error(kInvalid, "scan plan JSON: {}", e.what());
  }
}

Result<ScanPlan> ReadPlanFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error(StatusCode::kNotFound, "cannot read scan plan {}", path);
  // At most one byte past the limit, so that PlanFromJson refuses an over-long file.
  const auto size = static_cast<std::streamoff>(in.tellg());
  std::string text(static_cast<size_t>(std::clamp<std::streamoff>(size, 0, kMaxPlanJsonBytes + 1)), '\0');
  in.seekg(0);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return PlanFromJson(text);
}

Status WritePlanFile(const std::string& path, const ScanPlan& plan) {
  return durable::WriteFile(path, PlanToJson(plan));
}

}  // namespace tessera
