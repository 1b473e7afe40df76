// `tessera ls`, `tessera info ID`, `tessera close ID`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "client/cli/commands.h"
#include "client/client.h"

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

void AddServerOption(CLI::App* cmd, std::string& server) {
  cmd->add_option("--server", server, "The manager's endpoint (env TESSERA_SERVER)")
      ->default_str(kDefaultServer);
}

}  // namespace

void AddSlideCommands(CLI::App& app, int& exit_code) {
  static std::string server = DefaultServer();
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
}

}  // namespace tessera::cli
