// `tessera ls`, `tessera info ID`, `tessera close ID`, `tessera get ID`.
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

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
  info->add_flag("--json", json, "Machine-readable: id, name, state, path, tiles[...]");
  info->callback([&] {
    auto s = Client(server).Info(info_id);
    if (!s.ok()) {
      exit_code = Fail(s.status().ToString());
      return;
    }
    if (json) {
      fmt::print("{}\n", SummaryToJson(*s));
      return;
    }
    const ScanPlan& p = s->plan;
    fmt::print("id       {}\nname     {}\nstate    {}\nfile     {}\n", s->id, s->name, s->state, s->path);
    fmt::print("frames   {}/{} stored ({})\n", s->frames_written, s->frames_total, HumanBytes(s->bytes_stored));
    fmt::print("shape    {} tiles x {} channels x {} z x {}x{} {}\n", p.tiles.size(), p.channels.size(),
               p.z_planes, p.height, p.width, DtypeName(p.dtype));
    fmt::print("channels {}\n", fmt::join(p.channels, ", "));
    fmt::print("chunks   {}x{} blosc {}\n", p.chunk_y, p.chunk_x, codec::CompressorName(p.codec.compressor));
    if (!s->proxy_endpoint.empty()) fmt::print("proxy    {}\n", s->proxy_endpoint);
    if (!s->error.empty()) fmt::print("error    {}\n", s->error);
    if (const StitchState& st = s->stitch; !st.state.empty()) {
      fmt::print("stitch   {}", st.state);
      if (st.state == "running") fmt::print(" ({} {}/{})", st.stage, st.done, st.total);
      if (!st.error.empty()) fmt::print(": {}", st.error);
      fmt::print("\n");
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
  static std::string get_id, get_region, get_out;
  static uint32_t get_level = 0;
  static int64_t get_tile = -1;
  static std::vector<uint32_t> get_channels;
  static int64_t get_z = -1;
  auto* get = app.add_subcommand(
      "get", "Read a field of view or a mosaic region at a zoom level and write it as TIFF");
  AddServerOption(get, server);
  get->add_option("ID", get_id, "Slide id")->required();
  get->add_option("--level", get_level, "Zoom level: level L is 2^L times smaller")->capture_default_str();
  auto* tile_opt = get->add_option("--tile", get_tile, "One field of view (its index in the scan plan)");
  auto* region_opt = get->add_option("--region", get_region, "A mosaic region x,y,w,h in level-L pixels");
  tile_opt->excludes(region_opt);
  get->add_option("--channel", get_channels, "Channel index; repeat for several (default: all)");
  get->add_option("--z", get_z, "One z plane (default: all)");
  get->add_option("-o,--output", get_out, "TIFF file to write (BigTIFF when over 2 GiB); one page per channel and z plane")
      ->required();
  get->callback([&] {
    if ((get_tile < 0) == get_region.empty()) {
      exit_code = Fail("give either --tile T or --region x,y,w,h");
      return;
    }
    Client client(server);
    const uint32_t z0 = get_z < 0 ? 0 : static_cast<uint32_t>(get_z);
    const uint32_t z1 = get_z < 0 ? 0 : z0 + 1;
    Result<Array> a = Status(StatusCode::kInternal, "unreachable");
    if (get_tile >= 0) {
      a = client.ReadTile({get_id, static_cast<uint32_t>(get_tile), get_level, get_channels, z0, z1});
    } else {
      int64_t x, y, w, h;
      char c1, c2, c3;
      std::istringstream in(get_region);
      if (!(in >> x >> c1 >> y >> c2 >> w >> c3 >> h) || c1 != ',' || c2 != ',' || c3 != ',') {
        exit_code = Fail(fmt::format("--region '{}' is not x,y,w,h (four integers)", get_region));
        return;
      }
      a = client.ReadRegion({get_id, get_level, x, y, w, h, get_channels, z0, z1});
    }
    if (!a.ok()) {
      exit_code = Fail(a.status().ToString());
      return;
    }
    if (a->clipped) {
      fmt::print(stderr, "note: the region reaches outside the mosaic; written: x={} y={} {}x{}\n", a->x, a->y,
                 a->shape[3], a->shape[2]);
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
    image.pixels = std::move(a->data);
    const bool big = image.pixels.size() > (uint64_t{2} << 30);
    if (Status s = imageio::WriteTiff(get_out, image, big); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    fmt::print("{} {}x{} x {} pages {} level {} origin {},{}\n", get_out, image.width, image.height, image.planes,
               DtypeName(image.dtype), a->level, a->x, a->y);
  });
}

}  // namespace tessera::cli
