// tessera export: a slide or view written in the ecosystem's formats, away from Tessera.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "cli/commands.h"
#include "cli/progress.h"
#include "client/client.h"
#include "common/imageio/ome_tiff.h"
#include "server/gateway/render.h"
#include "server/gateway/zarr.h"

namespace tessera::cli {
namespace {

namespace fs = std::filesystem;
namespace zarr = gateway::zarr;

Status WriteFile(const fs::path& path, std::span<const uint8_t> bytes) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Error(StatusCode::kInternal, "cannot write {}: {}", path.string(), std::strerror(errno));
  return OkStatus();
}
Status WriteText(const fs::path& path, const std::string& text) {
  return WriteFile(path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

// Each channel's default rendering (name, colour, window) from the view's coarsest level, as the
// viewer page's defaults are made.
std::vector<gateway::ChannelStyle> Styles(Client& client, const std::string& id, const SlideView& view) {
  const ScanPlan& plan = view.summary.plan;
  const uint32_t level = view.level_count - 1;
  const auto extent = zarr::MosaicExtents(plan, view.positions, view.level_count).back();
  auto a = client.ReadRegion({.slide = id, .level = level, .x = 0, .y = 0,
                              .width = std::max<int64_t>(1, static_cast<int64_t>(extent[0])),
                              .height = std::max<int64_t>(1, static_cast<int64_t>(extent[1])), .z_begin = 0, .z_end = 1});
  if (a.ok()) return gateway::DefaultStyles(*a, plan.channels);
  std::vector<gateway::ChannelStyle> styles;  // no pixels to go by: names and colours, full windows
  for (uint32_t c = 0; c < plan.channels.size(); ++c) {
    styles.push_back(gateway::DefaultStyle({}, c, static_cast<uint32_t>(plan.channels.size()), plan.channels[c]));
  }
  return styles;
}

// What to export of the slide: everything as stored, or a box of the mosaic composed from its
// fields, from one level down.
struct Selection {
  std::optional<std::array<int64_t, 4>> region;  // x, y, w, h at `level`
  std::optional<std::array<int64_t, 6>> box;     // x, y, z, w, h, d at `level`
  std::optional<uint32_t> level;
  bool composed() const { return region || box || level; }
};

// Levels while the one above does not fit in one tile: the first that fits is the last.
bool MoreLevels(const std::vector<zarr::Box>& boxes) {
  return boxes.empty() || std::max(boxes.back().width, boxes.back().height) > 512;
}

// A field of view's levels as stored, whole.
std::vector<zarr::Box> FieldBoxes(const SlideView& view) {
  const ScanPlan& plan = view.summary.plan;
  std::vector<zarr::Box> boxes;
  for (uint32_t l = 0; l < view.level_count && MoreLevels(boxes); ++l) {
    const LevelShape s = plan.Level(l);
    boxes.push_back({.x = 0, .y = 0, .width = s.width, .height = s.height, .z_begin = 0, .z_end = s.depth});
  }
  return boxes;
}

// The box at the selection's level and at each coarser one, down to the first that fits in one
// 512-pixel tile (each box covers what the one above covers; planes of each level).
Result<std::vector<zarr::Box>> ComposedBoxes(const SlideView& view, const Selection& sel) {
  const ScanPlan& plan = view.summary.plan;
  const uint32_t first = sel.level.value_or(0);
  if (first >= view.level_count) {
    return Error(StatusCode::kInvalidArgument, "--level {}: the slide has levels 0 to {}", first, view.level_count - 1);
  }
  const auto extents = zarr::MosaicExtents(plan, view.positions, view.level_count);
  const LevelShape top = plan.Level(first);
  const int64_t width = static_cast<int64_t>(extents[first][0]), height = static_cast<int64_t>(extents[first][1]);
  const int64_t depth = static_cast<int64_t>(top.DepthOf(view.depth));
  int64_t x0 = 0, y0 = 0, z0 = 0, x1 = width, y1 = height, z1 = depth;
  if (sel.region) {
    const auto& r = *sel.region;
    x0 = r[0], y0 = r[1], x1 = r[0] + r[2], y1 = r[1] + r[3];
  } else if (sel.box) {
    const auto& b = *sel.box;
    x0 = b[0], y0 = b[1], z0 = b[2], x1 = b[0] + b[3], y1 = b[1] + b[4], z1 = b[2] + b[5];
  }
  const int64_t cx0 = std::max<int64_t>(x0, 0), cy0 = std::max<int64_t>(y0, 0), cz0 = std::max<int64_t>(z0, 0);
  const int64_t cx1 = std::min(x1, width), cy1 = std::min(y1, height), cz1 = std::min(z1, depth);
  if (cx1 <= cx0 || cy1 <= cy0 || cz1 <= cz0) {
    return Error(StatusCode::kOutOfRange, "the {} lies outside the mosaic: at level {} it is {} x {} pixels{}",
                 sel.box ? "box" : "region", first, width, height,
                 depth > 1 ? fmt::format(" and {} planes", depth) : "");
  }
  if (cx0 != x0 || cy0 != y0 || cz0 != z0 || cx1 != x1 || cy1 != y1 || cz1 != z1) {
    fmt::print(stderr, "note: the {} reaches outside the mosaic; exported: x={} y={} z={} {}x{}x{} at level {}\n",
               sel.box ? "box" : "region", cx0, cy0, cz0, cx1 - cx0, cy1 - cy0, cz1 - cz0, first);
  }
  // Planes in level-0 units, so that each level takes the planes its own z spacing has.
  const uint64_t p0 = static_cast<uint64_t>(cz0) << top.z_shift;
  const uint64_t p1 = std::min<uint64_t>(static_cast<uint64_t>(cz1) << top.z_shift, view.depth);
  std::vector<zarr::Box> boxes;
  for (uint32_t l = first; l < view.level_count && MoreLevels(boxes); ++l) {
    const uint32_t k = l - first;
    const uint64_t f = uint64_t{1} << k;
    const LevelShape s = plan.Level(l);
    zarr::Box b;
    b.x = static_cast<uint64_t>(cx0) >> k;
    b.y = static_cast<uint64_t>(cy0) >> k;
    const uint64_t x_end = std::min((static_cast<uint64_t>(cx1) + f - 1) >> k, extents[l][0]);
    const uint64_t y_end = std::min((static_cast<uint64_t>(cy1) + f - 1) >> k, extents[l][1]);
    if (x_end <= b.x || y_end <= b.y) break;  // the level's tiles end before the box (rounding)
    b.width = x_end - b.x;
    b.height = y_end - b.y;
    b.z_begin = p0 >> s.z_shift;
    b.z_end = std::max(b.z_begin + 1, s.DepthOf(p1));
    boxes.push_back(b);
  }
  return boxes;
}

struct Counts {
  uint64_t chunks = 0, bytes = 0, missing = 0;
};

// One field of view as an OME-Zarr 0.4 image under `dir`: its metadata, and every stored chunk
// copied as it is (a Blosc frame is a Zarr Blosc chunk); chunks not written yet are left out
// (the fill value to a reader).
Status ExportField(Client& client, const std::string& id, uint32_t t, const zarr::Image& image, const fs::path& dir,
                   ProgressBar& bar, Counts& counts, uint64_t& done) {
  using zarr::Version;
  TESSERA_RETURN_IF_ERROR(WriteText(dir / ".zgroup", zarr::GroupMetadata(image, Version::kV2)));
  TESSERA_RETURN_IF_ERROR(WriteText(dir / ".zattrs", zarr::GroupMetadata(image, Version::kV2, zarr::Key::kAttributes)));
  TESSERA_RETURN_IF_ERROR(WriteText(dir / ".zmetadata", zarr::ConsolidatedV2(image)));
  for (uint32_t level = 0; level < image.levels.size(); ++level) {
    const fs::path ldir = dir / std::to_string(level);
    TESSERA_RETURN_IF_ERROR(WriteText(ldir / ".zarray", zarr::ArrayMetadata(image, Version::kV2, level)));
    TESSERA_RETURN_IF_ERROR(WriteText(ldir / ".zattrs", "{}\n"));
    const auto grid = image.levels[level].chunk_grid();
    const uint64_t planes = image.levels[level].chunks[1];
    for (uint64_t c = 0; c < grid[0]; ++c) {
      for (uint64_t z = 0; z < grid[1]; ++z) {
        for (uint64_t y = 0; y < grid[2]; ++y) {
          for (uint64_t x = 0; x < grid[3]; ++x) {
            if (StopFlag().load()) return Error(StatusCode::kCancelled, "stopped");
            const ChunkKey key{{t, static_cast<uint32_t>(c), static_cast<uint32_t>(z * planes)}, level,
                               static_cast<uint32_t>(y), static_cast<uint32_t>(x)};
            auto chunk = client.ReadChunk(id, key);
            bar.Update(++done, fmt::format("{} MB", counts.bytes >> 20));
            if (!chunk.ok() && chunk.status().code() == StatusCode::kNotFound) {
              ++counts.missing;
              continue;
            }
            TESSERA_RETURN_IF_ERROR(chunk.status());
            TESSERA_RETURN_IF_ERROR(WriteFile(ldir / fmt::format("{}/{}/{}/{}", c, z, y, x), chunk->bytes));
            ++counts.chunks;
            counts.bytes += chunk->bytes.size();
          }
        }
      }
    }
  }
  return OkStatus();
}

uint64_t ChunksOf(const zarr::Image& image) {
  uint64_t n = 0;
  for (const auto& level : image.levels) {
    const auto g = level.chunk_grid();
    n += g[0] * g[1] * g[2] * g[3];
  }
  return n;
}

// Writes `output` through `write(partial)`: beside the target, renamed at the end (removed on an
// error), so that a file or folder at `output` is always complete.
template <typename Write>
Status WriteAtomically(const std::string& output, Write write) {
  std::error_code ec;
  if (fs::exists(output, ec)) {
    return Error(StatusCode::kAlreadyExists, "{} exists: give another -o, or remove it first", output);
  }
  const fs::path partial = output + ".partial";
  fs::remove_all(partial, ec);
  if (Status s = write(partial); !s.ok()) {  // stopped or failed: nothing half-written is left
    fs::remove_all(partial, ec);
    return s;
  }
  fs::rename(partial, output, ec);
  if (ec) return Error(StatusCode::kInternal, "cannot rename {} to {}: {}", partial.string(), output, ec.message());
  return OkStatus();
}

// Every field of view as stored (or a one-field view's image at the root), chunks copied.
Status ExportStoredZarr(Client& client, const std::string& id, const SlideView& view,
                        const std::vector<gateway::ChannelStyle>& styles, const fs::path& partial, Counts& counts,
                        size_t& images_written) {
  const ScanPlan& plan = view.summary.plan;
  std::vector<std::pair<fs::path, uint32_t>> fields;  // (folder, field)
  std::vector<zarr::Image> images;
  if (view.positions.size() == 1) {  // a fused image, a one-tile slide: the image itself
    fields.emplace_back(partial, 0);
  } else {  // every field of view as stored, under fields/{t}/, as the gateway's /zarr/{id}/fields/
    for (uint32_t t = 0; t < view.positions.size(); ++t) fields.emplace_back(partial / "fields" / std::to_string(t), t);
  }
  uint64_t total = 0;
  for (const auto& [dir, t] : fields) {
    images.push_back(zarr::FieldImage(plan, view.level_count, view.positions[t], styles));
    total += ChunksOf(images.back());
  }
  if (fields.size() > 1) {
    const std::string attrs = zarr::FieldsAttributes(plan, view.positions, id);
    TESSERA_RETURN_IF_ERROR(WriteText(partial / ".zgroup", zarr::PlainGroup(zarr::Version::kV2)));
    TESSERA_RETURN_IF_ERROR(WriteText(partial / ".zattrs", attrs + "\n"));
    TESSERA_RETURN_IF_ERROR(WriteText(partial / "fields" / ".zgroup", zarr::PlainGroup(zarr::Version::kV2)));
    TESSERA_RETURN_IF_ERROR(WriteText(partial / "fields" / ".zattrs", attrs + "\n"));
  }
  ProgressBar bar("export", total);
  uint64_t done = 0;
  for (size_t i = 0; i < fields.size(); ++i) {
    TESSERA_RETURN_IF_ERROR(ExportField(client, id, fields[i].second, images[i], fields[i].first, bar, counts, done));
  }
  bar.Finish();
  images_written = fields.size();
  return OkStatus();
}

// A composed box as one OME-Zarr image at the root: each chunk read as a region (every pixel
// from its owner field) and compressed with the slide's codec.
Status ExportComposedZarr(Client& client, const std::string& id, const zarr::Image& image, uint32_t first,
                          const std::vector<zarr::Box>& boxes, const fs::path& partial, Counts& counts) {
  using zarr::Version;
  TESSERA_RETURN_IF_ERROR(WriteText(partial / ".zgroup", zarr::GroupMetadata(image, Version::kV2)));
  TESSERA_RETURN_IF_ERROR(WriteText(partial / ".zattrs", zarr::GroupMetadata(image, Version::kV2, zarr::Key::kAttributes)));
  TESSERA_RETURN_IF_ERROR(WriteText(partial / ".zmetadata", zarr::ConsolidatedV2(image)));
  ProgressBar bar("export", ChunksOf(image));
  uint64_t done = 0;
  Array a;
  for (uint32_t k = 0; k < image.levels.size(); ++k) {
    const zarr::Array& level = image.levels[k];
    const fs::path ldir = partial / std::to_string(k);
    TESSERA_RETURN_IF_ERROR(WriteText(ldir / ".zarray", zarr::ArrayMetadata(image, Version::kV2, k)));
    TESSERA_RETURN_IF_ERROR(WriteText(ldir / ".zattrs", "{}\n"));
    const zarr::Box& at = boxes[k];  // where the image's level k lies in the slide's level first + k
    const auto grid = level.chunk_grid();
    for (uint64_t c = 0; c < grid[0]; ++c) {
      for (uint64_t z = 0; z < grid[1]; ++z) {
        for (uint64_t y = 0; y < grid[2]; ++y) {
          for (uint64_t x = 0; x < grid[3]; ++x) {
            if (StopFlag().load()) return Error(StatusCode::kCancelled, "stopped");
            const zarr::Box b = zarr::ChunkBox(level, {c, z, y, x});
            TESSERA_RETURN_IF_ERROR(client.ReadRegion(
                {.slide = id, .level = first + k, .x = static_cast<int64_t>(at.x + b.x),
                 .y = static_cast<int64_t>(at.y + b.y), .width = static_cast<int64_t>(b.width),
                 .height = static_cast<int64_t>(b.height), .channels = {static_cast<uint32_t>(c)},
                 .z_begin = static_cast<uint32_t>(at.z_begin + b.z_begin), .z_end = static_cast<uint32_t>(at.z_begin + b.z_end)},
                a));
            counts.missing += a.missing_chunks;
            TESSERA_ASSIGN_OR_RETURN(auto packed, zarr::EncodeChunk(image, k, a.data,
                                                                    {static_cast<uint64_t>(a.shape[1]),
                                                                     static_cast<uint64_t>(a.shape[2]),
                                                                     static_cast<uint64_t>(a.shape[3])}));
            TESSERA_RETURN_IF_ERROR(WriteFile(ldir / fmt::format("{}/{}/{}/{}", c, z, y, x), packed));
            ++counts.chunks;
            counts.bytes += packed.size();
            bar.Update(++done, fmt::format("{} MB", counts.bytes >> 20));
          }
        }
      }
    }
  }
  bar.Finish();
  return OkStatus();
}

// A composed box, or a field of view's boxes, as a pyramidal OME-TIFF: its levels as the file's
// sub-resolutions, every plane's pixels read a batch of tiles at a time.
Status ExportOmeTiff(Client& client, const std::string& id, const SlideView& view,
                     const std::vector<gateway::ChannelStyle>& styles, std::optional<uint32_t> field, uint32_t first,
                     const std::vector<zarr::Box>& boxes, const fs::path& partial, Counts& counts,
                     imageio::OmeTiffLayout& layout) {
  const ScanPlan& plan = view.summary.plan;
  const LevelShape top = plan.Level(first);
  for (const zarr::Box& b : boxes) layout.sizes.push_back({static_cast<uint32_t>(b.width), static_cast<uint32_t>(b.height)});
  layout.planes = static_cast<uint32_t>(boxes[0].z_end - boxes[0].z_begin);
  layout.dtype = plan.dtype;
  layout.channels.clear();
  for (const auto& st : styles) layout.channels.push_back({st.name, st.r, st.g, st.b});
  const double f = static_cast<double>(uint64_t{1} << first);
  layout.voxel_um = {plan.pixel_size_um[0] * f, plan.pixel_size_um[1] * f, plan.pixel_size_um[2] * top.z_scale()};
  layout.name = id;
  TESSERA_ASSIGN_OR_RETURN(auto writer, imageio::OmeTiffWriter::Create(partial.string(), layout));
  ProgressBar bar("export", writer.tiles_total());
  Array a;
  while (const auto want = writer.Next()) {
    if (StopFlag().load()) return Error(StatusCode::kCancelled, "stopped");
    const zarr::Box& at = boxes[want->level];
    const uint32_t level = first + want->level;
    // The full resolution's plane, in level-0 planes, then in this level's.
    const uint64_t plane0 = (boxes[0].z_begin + want->z) << top.z_shift;
    const uint32_t z = static_cast<uint32_t>(std::min(plane0 >> plan.Level(level).z_shift, at.z_end - 1));
    const int64_t x = static_cast<int64_t>(at.x + want->x), y = static_cast<int64_t>(at.y + want->y);
    if (field) {
      TESSERA_RETURN_IF_ERROR(client.ReadTile({.slide = id, .tile = *field, .level = level, .channels = {want->channel},
                                               .z_begin = z, .z_end = z + 1, .x = x, .y = y, .width = want->width,
                                               .height = want->height},
                                              a));
    } else {
      TESSERA_RETURN_IF_ERROR(client.ReadRegion({.slide = id, .level = level, .x = x, .y = y, .width = want->width,
                                                 .height = want->height, .channels = {want->channel}, .z_begin = z,
                                                 .z_end = z + 1},
                                                a));
    }
    if (a.shape[2] != want->height || a.shape[3] != want->width) {
      return Error(StatusCode::kInternal, "level {} at {},{}: {} x {} read where {} x {} were asked", level,
                   at.x + want->x, at.y + want->y, a.shape[3], a.shape[2], want->width, want->height);
    }
    counts.missing += a.missing_chunks;
    TESSERA_RETURN_IF_ERROR(writer.Write(a.data));
    bar.Update(writer.tiles_done(), fmt::format("{} MB", writer.bytes_written() >> 20));
  }
  TESSERA_RETURN_IF_ERROR(writer.Close());
  bar.Finish();
  counts.chunks = writer.tiles_total();
  counts.bytes = writer.bytes_written();
  return OkStatus();
}

Status Export(const std::string& server, const std::string& id, const std::string& format, const Selection& sel,
              const std::string& output) {
  Client client(server);
  TESSERA_ASSIGN_OR_RETURN(SlideView view, client.Describe(id));
  const auto styles = Styles(client, id, view);
  Counts counts;
  const auto note = [&] {
    return counts.missing
               ? fmt::format("; {} chunks not stored yet (the slide is being acquired) read as 0", counts.missing)
               : std::string();
  };
  if (format == "ome-zarr" && !sel.composed()) {
    size_t images = 0;
    TESSERA_RETURN_IF_ERROR(WriteAtomically(output, [&](const fs::path& partial) {
      return ExportStoredZarr(client, id, view, styles, partial, counts, images);
    }));
    fmt::print("exported {} as OME-Zarr 0.4 to {}: {} image{}, {} chunks ({:.1f} MB) copied as stored{}\n", id, output,
               images, images == 1 ? "" : "s", counts.chunks, static_cast<double>(counts.bytes) / 1e6,
               counts.missing ? fmt::format(", {} not written yet (left out: the fill value)", counts.missing) : "");
    return OkStatus();
  }
  // A view of one field (a fused image) is the image itself, as stored; else a box of the mosaic.
  const std::optional<uint32_t> field =
      view.positions.size() == 1 && !sel.composed() ? std::optional<uint32_t>(0) : std::nullopt;
  TESSERA_ASSIGN_OR_RETURN(const auto boxes, field ? FieldBoxes(view) : ComposedBoxes(view, sel));
  const uint32_t first = sel.level.value_or(0);
  const zarr::Box& b = boxes[0];
  const std::string what =
      fmt::format("{}x{}x{} {}, {} level{}", b.width, b.height, b.z_end - b.z_begin,
                  field ? "as stored" : fmt::format("at level {}, origin {},{},{}", first, b.x, b.y, b.z_begin),
                  boxes.size(), boxes.size() == 1 ? "" : "s");
  if (format == "ome-zarr") {
    const zarr::Image image = zarr::RegionImage(view.summary.plan, first, boxes, styles);
    TESSERA_RETURN_IF_ERROR(WriteAtomically(output, [&](const fs::path& partial) {
      return ExportComposedZarr(client, id, image, first, boxes, partial, counts);
    }));
    fmt::print("exported {} as OME-Zarr 0.4 to {}: {}; {} chunks ({:.1f} MB) composed{}\n", id, output, what,
               counts.chunks, static_cast<double>(counts.bytes) / 1e6, note());
    return OkStatus();
  }
  imageio::OmeTiffLayout layout;
  TESSERA_RETURN_IF_ERROR(WriteAtomically(output, [&](const fs::path& partial) {
    return ExportOmeTiff(client, id, view, styles, field, first, boxes, partial, counts, layout);
  }));
  fmt::print("exported {} as OME-TIFF to {}: {}; {} channel{}, {} tiles ({:.1f} MB), voxel {} x {} x {} um{}\n", id,
             output, what, layout.channels.size(), layout.channels.size() == 1 ? "" : "s", counts.chunks,
             static_cast<double>(counts.bytes) / 1e6, layout.voxel_um[0], layout.voxel_um[1], layout.voxel_um[2],
             note());
  return OkStatus();
}

}  // namespace

void AddExportCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "export",
      "Write a slide or view as OME-Zarr (its stored chunks copied as they are) or as a pyramidal OME-TIFF; with "
      "--region, --box or --level, a region of interest composed from its fields");
  static std::string server, id, output, format = "ome-zarr", region, box;
  static uint32_t level = 0;
  AddServerOption(cmd, server);
  cmd->add_option("ID", id, "Slide id or view (s000001, s000001:fused, s000001:deskewed)")->required();
  cmd->add_option("--format", format,
                  "ome-zarr: Zarr v2 / OME-Zarr 0.4 (zarr-python, napari, Neuroglancer, Fiji's n5-zarr); a slide of "
                  "several fields gets fields/{t}/ as stored, a view of one field (a fused image) is the image itself, "
                  "a region the composed image. ome-tiff: a pyramidal OME-TIFF of the mosaic or region (Fiji, QuPath, "
                  "OMERO, tifffile): tiled 512 x 512, Deflate, reduced resolutions as SubIFDs")
      ->check(CLI::IsMember({"ome-zarr", "ome-tiff"}))
      ->capture_default_str();
  auto* region_opt = cmd->add_option("--region", region, "A mosaic region x,y,w,h in level-L pixels, every plane");
  auto* box_opt =
      cmd->add_option("--box", box, "A 3-D box x,y,z,w,h,d: level-L pixels in x and y, level-L planes in z");
  box_opt->excludes(region_opt);
  auto* level_opt = cmd->add_option("--level", level,
                                    "The finest level to export (level L is 2^L times smaller); coarser levels follow "
                                    "down to one 512-pixel tile");
  cmd->add_option("-o,--output", output,
                  "The folder (ome-zarr) or file (ome-tiff, e.g. slide.ome.tif) to write: must not exist; written as "
                  "OUTPUT.partial, then renamed")
      ->required();
  cmd->callback([&exit_code, region_opt, box_opt, level_opt] {
    Selection sel;
    if (*region_opt) {
      auto r = ParseRegion(region);
      if (!r.ok()) {
        exit_code = Fail(r.status().ToString());
        return;
      }
      sel.region = *r;
    }
    if (*box_opt) {
      auto b = ParseBox(box);
      if (!b.ok()) {
        exit_code = Fail(b.status().ToString());
        return;
      }
      sel.box = *b;
    }
    if (*level_opt) sel.level = level;
    if (Status s = Export(server, id, format, sel, output); !s.ok()) exit_code = Fail(s.ToString());
  });
}

}  // namespace tessera::cli
