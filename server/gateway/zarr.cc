#include "server/gateway/zarr.h"

#include <nlohmann/json.hpp>

#include <charconv>

#include "common/mosaic/mosaic.h"
#include "common/pyramid/pyramid.h"
#include "server/gateway/url.h"

namespace tessera::gateway::zarr {
namespace {

using nlohmann::json;

constexpr uint32_t kMosaicChunkEdge = 512;
constexpr std::array<const char*, 4> kAxes = {"c", "z", "y", "x"};

// Level l of an image whose level 0 has voxels of `um` (x, y, z) placed at `origin_px` (level-0
// pixels): its voxel's centre moves by half the voxels it averages ((2^l - 1) / 2 of level 0's).
Array LevelArray(const LevelShape& s, const ScanPlan& plan, uint32_t level, std::array<uint64_t, 4> shape,
                 std::array<uint64_t, 4> chunks, const std::array<double, 3>& origin_px) {
  const double f = static_cast<double>(uint64_t{1} << level), fz = s.z_scale();
  const auto& um = plan.pixel_size_um;
  Array a;
  a.shape = shape;
  a.chunks = chunks;
  a.scale = {1.0, um[2] * fz, um[1] * f, um[0] * f};
  a.translation = {0.0, (origin_px[2] + (fz - 1) / 2) * um[2], (origin_px[1] + (f - 1) / 2) * um[1],
                   (origin_px[0] + (f - 1) / 2) * um[0]};
  return a;
}

std::string DtypeV2(Dtype d) { return d == Dtype::kUint16 ? "<u2" : "|u1"; }

json BloscV2(const Image& image) {
  return {{"id", "blosc"},
          {"cname", std::string(codec::CompressorName(image.codec.compressor))},
          {"clevel", image.codec.level},
          {"shuffle", image.codec.shuffle ? 1 : 0},
          {"blocksize", 0}};
}

json ArrayJson(const Image& image, Version version, uint32_t level) {
  const Array& a = image.levels[level];
  if (version == Version::kV2) {
    return {{"zarr_format", 2},       {"shape", a.shape},  {"chunks", a.chunks},
            {"dtype", DtypeV2(image.dtype)}, {"compressor", BloscV2(image)}, {"fill_value", 0},
            {"order", "C"},           {"filters", nullptr}, {"dimension_separator", "/"}};
  }
  return {{"zarr_format", 3},
          {"node_type", "array"},
          {"shape", a.shape},
          {"data_type", std::string(DtypeName(image.dtype))},
          {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", a.chunks}}}}},
          {"chunk_key_encoding", {{"name", "default"}, {"configuration", {{"separator", "/"}}}}},
          {"fill_value", 0},
          {"codecs",
           {{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
            {{"name", "blosc"},
             {"configuration",
              {{"cname", std::string(codec::CompressorName(image.codec.compressor))},
               {"clevel", image.codec.level},
               {"shuffle", image.codec.shuffle ? "shuffle" : "noshuffle"},
               {"typesize", DtypeSize(image.dtype)},
               {"blocksize", 0}}}}}},
          {"attributes", json::object()},
          {"dimension_names", kAxes}};
}

// OME's multiscales and omero, the same in 0.4 and 0.5 but for where they sit.
json OmeAttributes(const Image& image, Version version) {
  json axes = json::array();
  axes.push_back({{"name", "c"}, {"type", "channel"}});
  for (const char* name : {"z", "y", "x"}) axes.push_back({{"name", name}, {"type", "space"}, {"unit", "micrometer"}});
  json datasets = json::array();
  for (size_t l = 0; l < image.levels.size(); ++l) {
    const Array& a = image.levels[l];
    datasets.push_back({{"path", std::to_string(l)},
                        {"coordinateTransformations",
                         {{{"type", "scale"}, {"scale", a.scale}}, {{"type", "translation"}, {"translation", a.translation}}}}});
  }
  json multiscale = {{"axes", axes}, {"datasets", datasets}, {"name", "image"}, {"type", "mean"}};
  if (version == Version::kV2) multiscale["version"] = "0.4";
  const double top = image.dtype == Dtype::kUint16 ? 65535 : 255;
  json channels = json::array();
  for (const ChannelStyle& c : image.channels) {
    channels.push_back({{"label", c.name},
                        {"color", fmt::format("{:02X}{:02X}{:02X}", c.r, c.g, c.b)},
                        {"active", c.on},
                        {"coefficient", 1},
                        {"family", "linear"},
                        {"inverted", false},
                        {"window", {{"min", 0}, {"max", top}, {"start", c.min}, {"end", c.max}}}});
  }
  json ome = {{"multiscales", {multiscale}}, {"omero", {{"channels", channels}, {"rdefs", {{"model", "color"}}}}}};
  if (version == Version::kV3) ome["version"] = "0.5";
  return ome;
}

// A whole number of the key, digits only.
std::optional<uint64_t> Index(std::string_view s) {
  const auto v = ParseCount(s);
  if (!v) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

}  // namespace

std::array<uint64_t, 4> Array::chunk_grid() const {
  std::array<uint64_t, 4> g{};
  for (size_t i = 0; i < 4; ++i) g[i] = (shape[i] + chunks[i] - 1) / chunks[i];
  return g;
}

Image FieldImage(const ScanPlan& plan, uint32_t level_count, const std::array<double, 3>& position,
                 std::vector<ChannelStyle> channels) {
  Image image{.dtype = plan.dtype, .codec = plan.codec, .levels = {}, .channels = std::move(channels)};
  const uint64_t c = plan.channels.size();
  for (uint32_t l = 0; l < level_count; ++l) {
    const LevelShape s = plan.Level(l);
    image.levels.push_back(LevelArray(s, plan, l, {c, s.depth, s.height, s.width}, {1, s.chunk_z, s.chunk_y, s.chunk_x},
                                      position));
  }
  return image;
}

Image MosaicImage(const ScanPlan& plan, const std::vector<std::array<uint64_t, 2>>& extents, int64_t depth,
                  std::vector<ChannelStyle> channels) {
  std::vector<Box> boxes;
  for (uint32_t l = 0; l < extents.size(); ++l) {
    boxes.push_back({.x = 0, .y = 0, .width = std::max<uint64_t>(1, extents[l][0]),
                     .height = std::max<uint64_t>(1, extents[l][1]), .z_begin = 0,
                     .z_end = std::max<uint64_t>(1, plan.Level(l).DepthOf(static_cast<uint64_t>(std::max<int64_t>(0, depth))))});
  }
  return RegionImage(plan, 0, boxes, std::move(channels));
}

std::vector<std::array<uint64_t, 2>> MosaicExtents(const ScanPlan& plan, const std::vector<std::array<double, 3>>& positions,
                                                   uint32_t level_count) {
  std::vector<std::array<double, 2>> xy;
  for (const auto& p : positions) xy.push_back({p[0], p[1]});
  const mosaic::MosaicIndex index(std::move(xy), {.width = plan.width, .height = plan.height});
  std::vector<std::array<uint64_t, 2>> extents;
  for (uint32_t l = 0; l < level_count; ++l) {
    const mosaic::Box b = index.Bounds(static_cast<int>(l));
    extents.push_back({static_cast<uint64_t>(std::max<int64_t>(0, b.x + b.w)),
                       static_cast<uint64_t>(std::max<int64_t>(0, b.y + b.h))});
  }
  return extents;
}

Image RegionImage(const ScanPlan& plan, uint32_t first, const std::vector<Box>& boxes,
                  std::vector<ChannelStyle> channels) {
  Image image{.dtype = plan.dtype, .codec = plan.codec, .levels = {}, .channels = std::move(channels)};
  const uint64_t c = plan.channels.size();
  // The fields' chunk edges, but no less than kMosaicChunkEdge (small tiles are stored as one
  // chunk each: a mosaic in chunks of their size would ask for many small ones).
  const uint64_t edge_y = std::max(plan.chunk_y, kMosaicChunkEdge), edge_x = std::max(plan.chunk_x, kMosaicChunkEdge);
  for (uint32_t k = 0; k < boxes.size(); ++k) {
    const uint32_t l = first + k;
    const LevelShape s = plan.Level(l);
    const Box& b = boxes[k];
    const uint64_t d = std::max<uint64_t>(1, b.z_end - b.z_begin);
    const double f = static_cast<double>(uint64_t{1} << l);
    image.levels.push_back(LevelArray(s, plan, l, {c, d, b.height, b.width},
                                      {1, std::min<uint64_t>(plan.chunk_z, d), std::min<uint64_t>(edge_y, b.height),
                                       std::min<uint64_t>(edge_x, b.width)},
                                      {static_cast<double>(b.x) * f, static_cast<double>(b.y) * f,
                                       static_cast<double>(b.z_begin) * s.z_scale()}));
  }
  return image;
}

Box ChunkBox(const Array& level, const std::array<uint64_t, 4>& chunk) {
  const auto& [cc, cz, cy, cx] = level.chunks;
  const uint64_t x = chunk[3] * cx, y = chunk[2] * cy, z = chunk[1] * cz;
  return {.x = x, .y = y, .width = std::min(cx, level.shape[3] - x), .height = std::min(cy, level.shape[2] - y),
          .z_begin = z, .z_end = z + std::min(cz, level.shape[1] - z)};
}

Result<std::vector<uint8_t>> EncodeChunk(const Image& image, uint32_t level, std::span<const uint8_t> pixels,
                                         const std::array<uint64_t, 3>& shape) {
  const Array& a = image.levels.at(level);
  const auto [cc, cz, cy, cx] = a.chunks;
  const size_t elem = DtypeSize(image.dtype);
  const auto [d, h, w] = shape;
  if (d > cz || h > cy || w > cx || pixels.size() != d * h * w * elem) {
    return Error(StatusCode::kInvalidArgument, "{} bytes of {} x {} x {} pixels do not fit a chunk of {} x {} x {}",
                 pixels.size(), d, h, w, cz, cy, cx);
  }
  std::vector<uint8_t> chunk(cz * cy * cx * elem, 0);
  // Each plane of the part is chunk (0, 0) of an image of its size: copied, the rest zero.
  const LevelShape plane{.width = static_cast<uint32_t>(w), .height = static_cast<uint32_t>(h),
                         .chunk_y = static_cast<uint32_t>(cy), .chunk_x = static_cast<uint32_t>(cx)};
  const size_t plane_bytes = plane.pixels() * elem, chunk_plane = plane.chunk_pixels() * elem;
  for (size_t p = 0; p < d; ++p) {
    pyramid::ExtractChunk(pixels.subspan(p * plane_bytes, plane_bytes), plane, elem, 0, 0,
                          std::span(chunk).subspan(p * chunk_plane, chunk_plane));
  }
  codec::BloscParams params = image.codec;
  params.threads = 1;
  return codec::Compress(chunk, elem, params);
}

Result<Key> ParseKey(const Image& image, Version version, std::string_view key) {
  const bool v2 = version == Version::kV2;
  if (key.empty() || key == (v2 ? ".zgroup" : "zarr.json")) return Key{};
  if (v2 && key == ".zattrs") return Key{.kind = Key::kAttributes};
  if (v2 && key == ".zmetadata") return Key{.kind = Key::kConsolidated};
  auto parts = Split(key, '/');
  if (!parts.empty() && parts.back().empty()) parts.pop_back();  // "0/" is the array's folder
  const auto level = Index(parts[0]);
  if (!level || *level >= image.levels.size()) {
    return Error(StatusCode::kNotFound, "no '{}' in this image: it has levels 0 to {}{}", parts[0],
                 image.levels.size() - 1, v2 ? ", .zgroup, .zattrs and .zmetadata" : " and zarr.json");
  }
  Key k{.kind = Key::kArray, .level = static_cast<uint32_t>(*level)};
  if (parts.size() == 1) return k;
  if (parts.size() == 2 && parts[1] == (v2 ? ".zarray" : "zarr.json")) return k;
  if (parts.size() == 2 && v2 && parts[1] == ".zattrs") return Key{.kind = Key::kArrayAttributes, .level = k.level};
  const size_t first = v2 ? 1 : 2;  // v3 keys are "c/..." under the array
  if (parts.size() == first + 4 && (v2 || parts[1] == "c")) {
    const auto grid = image.levels[k.level].chunk_grid();
    for (size_t i = 0; i < 4; ++i) {
      const auto v = Index(parts[first + i]);
      if (!v || *v >= grid[i]) {
        return Error(StatusCode::kNotFound, "no chunk '{}' in level {}: its chunk grid is {} x {} x {} x {} (c, z, y, x)",
                     key, k.level, grid[0], grid[1], grid[2], grid[3]);
      }
      k.chunk[i] = *v;
    }
    k.kind = Key::kChunk;
    return k;
  }
  return Error(StatusCode::kNotFound, "no '{}' in this image: a chunk is {}", key,
               v2 ? "{level}/{c}/{z}/{y}/{x}" : "{level}/c/{c}/{z}/{y}/{x}");
}

std::string GroupMetadata(const Image& image, Version version, Key::Kind kind) {
  if (version == Version::kV2) {
    if (kind == Key::kAttributes) return OmeAttributes(image, version).dump(2) + "\n";
    return PlainGroup(version);
  }
  json arrays = json::object();
  for (uint32_t l = 0; l < image.levels.size(); ++l) arrays[std::to_string(l)] = ArrayJson(image, version, l);
  const json group = {{"zarr_format", 3},
                      {"node_type", "group"},
                      {"attributes", {{"ome", OmeAttributes(image, version)}}},
                      {"consolidated_metadata", {{"kind", "inline"}, {"must_understand", false}, {"metadata", arrays}}}};
  return group.dump(2) + "\n";
}

std::string ArrayMetadata(const Image& image, Version version, uint32_t level) {
  return ArrayJson(image, version, level).dump(2) + "\n";
}

std::string ConsolidatedV2(const Image& image) {
  json metadata = {{".zgroup", {{"zarr_format", 2}}}, {".zattrs", OmeAttributes(image, Version::kV2)}};
  for (uint32_t l = 0; l < image.levels.size(); ++l) {
    metadata[std::to_string(l) + "/.zarray"] = ArrayJson(image, Version::kV2, l);
    metadata[std::to_string(l) + "/.zattrs"] = json::object();
  }
  return json{{"zarr_consolidated_format", 1}, {"metadata", metadata}}.dump(2) + "\n";
}

std::string PlainGroup(Version version, std::string_view attributes) {
  const json attrs = json::parse(attributes);
  if (version == Version::kV2) return json{{"zarr_format", 2}}.dump() + "\n";
  return json{{"zarr_format", 3}, {"node_type", "group"}, {"attributes", attrs}}.dump(2) + "\n";
}

std::string FieldsAttributes(const ScanPlan& plan, const std::vector<std::array<double, 3>>& positions,
                             std::string_view slide) {
  json fields = json::array();
  for (size_t t = 0; t < plan.tiles.size(); ++t) {
    fields.push_back({{"path", std::to_string(t)},
                      {"name", plan.tiles[t].name},
                      {"position_px", t < positions.size() ? json(positions[t]) : json()}});
  }
  json tessera = {{"fields", fields}};
  if (!slide.empty()) tessera["slide"] = slide;
  return json{{"tessera", tessera}}.dump();
}

}  // namespace tessera::gateway::zarr
