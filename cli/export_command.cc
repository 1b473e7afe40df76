// tessera export: a slide or view written in the ecosystem's formats, away from Tessera.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "cli/progress.h"
#include "client/client.h"
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
  int64_t width = 1, height = 1;
  for (const auto& p : view.positions) {
    width = std::max(width, (static_cast<int64_t>(std::floor(p[0] + 0.5)) + plan.width) >> level);
    height = std::max(height, (static_cast<int64_t>(std::floor(p[1] + 0.5)) + plan.height) >> level);
  }
  auto a = client.ReadRegion({.slide = id, .level = level, .x = 0, .y = 0, .width = width, .height = height,
                              .z_begin = 0, .z_end = 1});
  if (a.ok()) return gateway::DefaultStyles(*a, plan.channels);
  std::vector<gateway::ChannelStyle> styles;  // no pixels to go by: names and colours, full windows
  for (uint32_t c = 0; c < plan.channels.size(); ++c) {
    styles.push_back(gateway::DefaultStyle({}, c, static_cast<uint32_t>(plan.channels.size()), plan.channels[c]));
  }
  return styles;
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

Status Export(const std::string& server, const std::string& id, const std::string& output) {
  std::error_code ec;
  if (fs::exists(output, ec)) {
    return Error(StatusCode::kAlreadyExists, "{} exists: give another -o, or remove it first", output);
  }
  Client client(server);
  TESSERA_ASSIGN_OR_RETURN(SlideView view, client.Describe(id));
  const ScanPlan& plan = view.summary.plan;
  const auto styles = Styles(client, id, view);
  // Written beside the target and renamed at the end: a folder at `output` is always complete.
  const fs::path partial = output + ".partial";
  fs::remove_all(partial, ec);
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
  Counts counts;
  uint64_t done = 0;
  for (size_t i = 0; i < fields.size(); ++i) {
    TESSERA_RETURN_IF_ERROR(ExportField(client, id, fields[i].second, images[i], fields[i].first, bar, counts, done));
  }
  bar.Finish();
  fs::rename(partial, output, ec);
  if (ec) return Error(StatusCode::kInternal, "cannot rename {} to {}: {}", partial.string(), output, ec.message());
  fmt::print("exported {} as OME-Zarr 0.4 to {}: {} image{}, {} chunks ({:.1f} MB) copied as stored{}\n", id, output,
             fields.size(), fields.size() == 1 ? "" : "s", counts.chunks, static_cast<double>(counts.bytes) / 1e6,
             counts.missing ? fmt::format(", {} not written yet (left out: the fill value)", counts.missing) : "");
  return OkStatus();
}

}  // namespace

void AddExportCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "export", "Write a slide or view as OME-Zarr on disk, its stored chunks copied as they are (no recompression)");
  static std::string server, id, output, format = "ome-zarr";
  AddServerOption(cmd, server);
  cmd->add_option("ID", id, "Slide id or view (s000001, s000001:fused, s000001:deskewed)")->required();
  cmd->add_option("--format", format,
                  "ome-zarr: Zarr v2 / OME-Zarr 0.4 (zarr-python, napari, Neuroglancer, Fiji's n5-zarr); a slide of "
                  "several fields gets fields/{t}/, a view of one field (a fused image) is the image itself")
      ->check(CLI::IsMember({"ome-zarr"}))
      ->capture_default_str();
  cmd->add_option("-o,--output", output, "The folder to write (must not exist; written as OUTPUT.partial, then renamed)")
      ->required();
  cmd->callback([&] {
    if (Status s = Export(server, id, output); !s.ok()) exit_code = Fail(s.ToString());
  });
}

}  // namespace tessera::cli
