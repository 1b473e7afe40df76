// `tessera ls`, `tessera info ID`, `tessera close ID`, `tessera get ID`.
#include <array>
#include <sstream>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "client/client.h"
#include "common/imageio/tiff.h"

namespace tessera::cli {
namespace {

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace

void AddSlideCommands(CLI::App& app, int& exit_code) {
  static std::string server;
  static bool json = false;
  auto* ls = app.add_subcommand("ls", "List slides: id, state, frames stored, size, name");
  AddServerOption(ls, server);
  ls->add_flag("--json", json, "One JSON object per slide, one per line");
  ls->callback([&] {
    auto slides = Client(server).List();
    if (!slides.ok()) {
      exit_code = Fail(slides.status().ToString());
      return;
    }
    if (!json) fmt::print("{:<9} {:<10} {:>15} {:>11}  {}\n", "ID", "STATE", "FRAMES", "STORED", "NAME");
    for (const auto& s : *slides) {
      if (json) {
        fmt::print("{}\n", SummaryToJson(s));
        continue;
      }
      fmt::print("{:<9} {:<10} {:>15} {:>11}  {}\n", s.id, s.state,
                 fmt::format("{}/{}", s.frames_written, s.frames_total), HumanBytes(s.bytes_stored),
                 s.name);
    }
  });

  static std::string info_id;
  auto* info = app.add_subcommand("info", "Show a slide: state, file, shape, tiles");
  AddServerOption(info, server);
  info->add_option("ID", info_id, "Slide id (see `tessera ls`)")->required();
  info->add_flag("--json", json, "Machine-readable: id, name, state, path, shape, pixel_size_um, tiles[...], views");
  info->callback([&] {
    Client client(server);
    auto s = client.Info(info_id);
    if (!s.ok()) {
      exit_code = Fail(s.status().ToString());
      return;
    }
    // A slide's derived views that exist, with their shape and voxel size.
    std::vector<SlideSummary> views;
    if (info_id.find(':') == std::string::npos) {
      for (const char* view : {"deskewed", "fused"}) {
        if (std::string_view(view) == "deskewed" && !s->plan.oblique) continue;
        if (auto v = client.Info(fmt::format("{}:{}", info_id, view)); v.ok()) views.push_back(std::move(*v));
      }
    }
    if (json) {
      auto j = nlohmann::json::parse(SummaryToJson(*s));
      for (const SlideSummary& v : views) {
        const ScanPlan& p = v.plan;
        j["views"][v.id.substr(v.id.find(':') + 1)] = {
            {"id", v.id}, {"state", v.state}, {"path", v.path},
            {"shape", {{"tiles", p.tiles.size()}, {"channels", p.channels.size()}, {"z", p.z_planes},
                       {"height", p.height}, {"width", p.width}}},
            {"pixel_size_um", p.pixel_size_um}};
      }
      fmt::print("{}\n", j.dump(2));
      return;
    }
    const ScanPlan& p = s->plan;
    fmt::print("id       {}\nname     {}\nstate    {}\nfile     {}\n", s->id, s->name, s->state, s->path);
    fmt::print("frames   {}/{} stored ({})\n", s->frames_written, s->frames_total, HumanBytes(s->bytes_stored));
    fmt::print("shape    {} tiles x {} channels x {} z x {}x{} {}\n", p.tiles.size(), p.channels.size(),
               p.z_planes, p.height, p.width, DtypeName(p.dtype));
    fmt::print("channels {}\n", fmt::join(p.channels, ", "));
    fmt::print("chunks   {}x{} blosc {}\n", p.chunk_y, p.chunk_x, codec::CompressorName(p.codec.compressor));
    if (!s->proxy_endpoint.empty()) {
      fmt::print("proxy    {}{}\n", s->proxy_endpoint,
                 s->proxy_local_endpoint.empty() ? "" : fmt::format(" (on its host: {})", s->proxy_local_endpoint));
    }
    if (!s->error.empty()) fmt::print("error    {}\n", s->error);
    fmt::print("voxel    {} x {} x {} um\n", p.pixel_size_um[0], p.pixel_size_um[1], p.pixel_size_um[2]);
    if (const StitchState& st = s->stitch; !st.state.empty()) {
      fmt::print("stitch   {}", st.state);
      if (st.state == "running") fmt::print(" ({} {}/{})", st.stage, st.done, st.total);
      if (!st.error.empty()) fmt::print(": {}", st.error);
      fmt::print("\n");
    }
    for (const SlideSummary& v : views) {
      fmt::print("view     {} ({}): {} tiles x {} z x {}x{}, voxel {} x {} x {} um\n", v.id, v.state, v.plan.tiles.size(),
                 v.plan.z_planes, v.plan.height, v.plan.width, v.plan.pixel_size_um[0], v.plan.pixel_size_um[1],
                 v.plan.pixel_size_um[2]);
    }
  });

  static std::string close_id;
  auto* close = app.add_subcommand("close", "Close an acquiring slide: store what is held, stop its proxy and writer");
  AddServerOption(close, server);
  close->add_option("ID", close_id, "Slide id")->required();
  close->callback([&] {
    auto s = Client(server).CloseSlide(close_id);
    if (!s.ok()) {
      exit_code = Fail(s.status().ToString());
      return;
    }
    fmt::print("{} {} {}/{} frames\n", s->id, s->state, s->frames_written, s->frames_total);
  });

  // ---- get
  static std::string get_id, get_region, get_box, get_out;
  static uint32_t get_level = 0;
  static int64_t get_tile = -1;
  static std::vector<uint32_t> get_channels;
  static int64_t get_z = -1;
  auto* get = app.add_subcommand(
      "get", "Read a field of view, a mosaic region or a 3-D box at a zoom level and write it as TIFF");
  AddServerOption(get, server);
  get->add_option("ID", get_id, "Slide id, or a view of it: ID:fused, ID:deskewed")->required();
  get->add_option("--level", get_level, "Zoom level: level L is 2^L times smaller")->capture_default_str();
  auto* tile_opt = get->add_option("--tile", get_tile, "One field of view (its index in the scan plan)");
  auto* region_opt = get->add_option("--region", get_region, "A mosaic region x,y,w,h in level-L pixels");
  auto* box_opt = get->add_option("--box", get_box,
                                  "A 3-D box x,y,z,w,h,d of the volume: level-L pixels in x and y, planes in z "
                                  "(stacks placed at their z; plane 0 the lowest stack's first)");
  tile_opt->excludes(region_opt);
  box_opt->excludes(tile_opt)->excludes(region_opt);
  get->add_option("--channel", get_channels, "Channel index; repeat for several (default: all)");
  auto* z_opt = get->add_option("--z", get_z, "One z plane (default: all)");
  z_opt->excludes(box_opt);
  get->add_option("-o,--output", get_out,
                  "TIFF file to write (BigTIFF when over 2 GiB): the z planes of each channel as pages, with the voxel "
                  "size as Fiji reads it (several channels: an ImageJ hyperstack)")
      ->required();
  get->callback([&] {
    if ((get_tile >= 0) + !get_region.empty() + !get_box.empty() != 1) {
      exit_code = Fail("give one of --tile T, --region x,y,w,h and --box x,y,z,w,h,d");
      return;
    }
    Client client(server);
    const uint32_t z0 = get_z < 0 ? 0 : static_cast<uint32_t>(get_z);
    const uint32_t z1 = get_z < 0 ? 0 : z0 + 1;
    Result<Array> a = Status(StatusCode::kInternal, "unreachable");
    bool z_clipped = false;
    if (get_tile >= 0) {
      a = client.ReadTile({get_id, static_cast<uint32_t>(get_tile), get_level, get_channels, z0, z1});
    } else if (!get_box.empty()) {
      const auto parsed = ParseBox(get_box);
      if (!parsed.ok()) {
        exit_code = Fail(parsed.status().ToString());
        return;
      }
      const std::array<int64_t, 6>& b = *parsed;
      // Planes before the first are outside the volume, as columns left of the mosaic are.
      const int64_t zb = std::max<int64_t>(0, b[2]), ze = b[2] + b[5];
      if (ze <= 0 || ze > int64_t{kMaxZPlanes} + 2 * static_cast<int64_t>(kMaxTilePosition)) {
        exit_code = Fail(fmt::format("--box planes [{}, {}) lie outside the volume", b[2], ze));
        return;
      }
      z_clipped = zb != b[2];
      a = client.ReadRegion({get_id, get_level, b[0], b[1], b[3], b[4], get_channels, static_cast<uint32_t>(zb),
                             static_cast<uint32_t>(ze)});
    } else {
      const auto r = ParseRegion(get_region);
      if (!r.ok()) {
        exit_code = Fail(r.status().ToString());
        return;
      }
      a = client.ReadRegion({get_id, get_level, (*r)[0], (*r)[1], (*r)[2], (*r)[3], get_channels, z0, z1});
    }
    if (!a.ok()) {
      exit_code = Fail(a.status().ToString());
      return;
    }
    if (a->clipped || z_clipped) {
      fmt::print(stderr, "note: the {} reaches outside the {}; written: x={} y={} z={} {}x{}x{}\n",
                 get_box.empty() ? "region" : "box", get_box.empty() ? "mosaic" : "volume", a->x, a->y, a->z_begin,
                 a->shape[3], a->shape[2], a->shape[1]);
    }
    if (a->missing_chunks > 0) {
      fmt::print(stderr, "note: {} chunks are not stored yet (the slide is being acquired); they read as 0\n",
                 a->missing_chunks);
    }
    imageio::Image image;
    image.width = static_cast<uint32_t>(a->shape[3]);
    image.height = static_cast<uint32_t>(a->shape[2]);
    image.planes = static_cast<uint32_t>(a->shape[0] * a->shape[1]);
    image.dtype = a->dtype;
    image.channels = static_cast<uint32_t>(a->shape[0]);
    image.voxel_um = a->pixel_size_um;
    image.pixels = std::move(a->data);
    const bool big = image.pixels.size() > (uint64_t{2} << 30);
    if (Status s = imageio::WriteTiff(get_out, image, big); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    fmt::print("{} {}x{}x{} x {} channels {} level {} origin {},{},{} voxel {}x{}x{} um\n", get_out, image.width,
               image.height, image.planes / image.channels, image.channels, DtypeName(image.dtype), a->level, a->x, a->y,
               a->z_begin, a->pixel_size_um[0], a->pixel_size_um[1], a->pixel_size_um[2]);
  });
}

}  // namespace tessera::cli
