// `tessera scan`: push a scan as a microscope would, from TIFF tiles on disk or synthetic.
#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/progress.h"
#include "client/client.h"
#include "client/scanner.h"
#include "common/imageio/stack.h"
#include "common/imageio/tile_config.h"
#include "common/synth/synthetic_mosaic.h"

namespace tessera::cli {
namespace {

struct ScanArgs {
  std::string server;
  std::string tile_config;
  bool synthetic = false;
  bool stitch = true;
  bool local = true;
  std::string levels = "auto";
  std::string name;
  synth::SyntheticOptions synth;
  std::string dtype = "uint16";
  double rate = 0;  // frames per second, 0 = as fast as possible
  std::string codec = "lz4";
  int level = 5;
  uint32_t chunk = 512;
  double pixel_size_um = 0;
  std::string header = "{}";
  int timeout_s = 60;
  ObliqueScan oblique;  // an oblique light-sheet scan when angle_deg is set
  bool widefield = false;  // synthetic z-stacks as a focus series rather than light-sheet stacks
};

// The oblique scan the options ask for, if any.
std::optional<ObliqueScan> ObliqueOf(const ScanArgs& a) {
  if (a.oblique.angle_deg == 0 && a.oblique.stage_step_um == 0) return std::nullopt;
  return a.oblique;
}

// Produces frame `index` of the plan into `out`.
using FrameSource = std::function<Status(uint64_t index, std::vector<uint8_t>& out)>;

// A scan of the tiles a TileConfiguration names (dim 2 or 3): each file a multi-page TIFF or a
// DCIMG stack whose planes are the tile's z planes, read a plane at a time as they are pushed.
Result<ScanPlan> PlanFromTileConfig(const ScanArgs& a, FrameSource& source) {
  TESSERA_ASSIGN_OR_RETURN(auto config, imageio::ReadTileConfig(a.tile_config));
  TESSERA_ASSIGN_OR_RETURN(auto opened, imageio::StackReader::Open(config.entries.front().path));
  const imageio::TiffInfo first = opened->info();
  ScanPlan plan;
  plan.name = a.name.empty() ? std::filesystem::path(a.tile_config).parent_path().filename().string()
                             : a.name;
  plan.width = first.width;
  plan.height = first.height;
  plan.z_planes = first.planes;
  plan.dtype = first.dtype;
  plan.channels = {"ch0"};
  for (const auto& e : config.entries) {
    plan.tiles.push_back({.name = e.file, .x = e.x, .y = e.y, .z = e.z});
  }
  plan.header_json = a.header;
  // The stack being pushed stays open; the next tile's opens when its first plane is asked.
  auto current = std::make_shared<std::pair<size_t, std::unique_ptr<imageio::StackReader>>>(0, std::move(opened));
  source = [config, first, current](uint64_t index, std::vector<uint8_t>& out) -> Status {
    const size_t tile = index / first.planes;
    const auto& entry = config.entries[tile];
    if (current->first != tile || current->second == nullptr) {
      current->second.reset();
      TESSERA_ASSIGN_OR_RETURN(current->second, imageio::StackReader::Open(entry.path));
      current->first = tile;
      const imageio::TiffInfo& info = current->second->info();
      if (info.width != first.width || info.height != first.height || info.dtype != first.dtype ||
          info.planes != first.planes) {
        return Error(StatusCode::kInvalidArgument,
                     "{} is {}x{}x{} {}; the first tile is {}x{}x{} {}: tiles of a scan share one shape",
                     entry.path, info.planes, info.height, info.width, DtypeName(info.dtype), first.planes,
                     first.height, first.width, DtypeName(first.dtype));
      }
    }
    out.resize(current->second->plane_bytes());
    return current->second->ReadPlane(static_cast<uint32_t>(index % first.planes), out);
  };
  return plan;
}

int RunScan(const ScanArgs& a) {
  FrameSource source;
  ScanPlan plan;
  if (a.synthetic == !a.tile_config.empty()) {
    return Fail("give exactly one of --tile-config FILE and --synthetic");
  }
  if (a.synthetic) {
    synth::SyntheticOptions o = a.synth;
    auto dtype = ParseDtype(a.dtype);
    if (!dtype.ok()) return Fail(dtype.status().ToString());
    o.dtype = *dtype;
    o.oblique = ObliqueOf(a);
    if (a.widefield && (o.light_sheet || o.oblique)) return Fail("--widefield and --light-sheet (or --oblique) exclude each other");
    o.light_sheet = o.light_sheet || (o.z_planes > 1 && !a.widefield);  // stacks are light-sheet volumes unless told
    if (a.pixel_size_um > 0) o.pixel_size_um = a.pixel_size_um;
    if (Status s = synth::ValidateOptions(o); !s.ok()) return Fail(s.ToString());
    auto mosaic = std::make_shared<synth::SyntheticMosaic>(o);
    plan = mosaic->plan();
    if (!a.name.empty()) plan.name = a.name;
    // The truth a stitch can be judged against: where each tile really is.
    nlohmann::json truth = nlohmann::json::array();
    for (uint32_t t = 0; t < plan.tiles.size(); ++t) truth.push_back(mosaic->TruePosition(t));
    nlohmann::json header = nlohmann::json::parse(a.header, nullptr, /*allow_exceptions=*/false);
    if (!header.is_object()) return Fail("--header must be a JSON object");
    header["synthetic"] = {{"seed", o.seed}, {"position_error_px", o.position_error_px}, {"true_positions", truth}};
    if (o.light_sheet || o.oblique) {  // light-sheet stacks: where each one really is in z, in planes
      nlohmann::json z = nlohmann::json::array();
      for (uint32_t t = 0; t < plan.tiles.size(); ++t) z.push_back(mosaic->TrueZ(t));
      header["synthetic"]["z_error_planes"] = o.z_error_planes;
      header["synthetic"]["true_z"] = z;
    }
    plan.header_json = header.dump();
    source = [mosaic](uint64_t index, std::vector<uint8_t>& out) {
      out.resize(mosaic->plan().frame_bytes());
      mosaic->RenderFrame(mosaic->plan().KeyOf(index), out);
      return OkStatus();
    };
  } else {
    auto p = PlanFromTileConfig(a, source);
    if (!p.ok()) return Fail(p.status().ToString());
    plan = *std::move(p);
  }
  auto compressor = codec::ParseCompressor(a.codec);
  if (!compressor.ok()) return Fail(compressor.status().ToString());
  plan.codec.compressor = *compressor;
  plan.codec.level = a.level;
  plan.chunk_y = plan.chunk_x = a.chunk;
  if (a.pixel_size_um > 0) plan.pixel_size_um = {a.pixel_size_um, a.pixel_size_um, plan.pixel_size_um[2]};
  if (!a.synthetic && a.header != "{}") plan.header_json = a.header;
  if (!a.synthetic) plan.oblique = ObliqueOf(a);
  if (Status s = plan.Validate(); !s.ok()) return Fail(s.ToString());
  plan.stitch = a.stitch;

  ScannerOptions so;
  so.timeout_ms = a.timeout_s * 1000;
  so.stop = &StopFlag();
  so.local = a.local;
  so.levels = a.levels == "scanner"  ? ScannerOptions::Levels::kScanner
              : a.levels == "writer" ? ScannerOptions::Levels::kWriter
                                     : ScannerOptions::Levels::kAuto;
  auto scanner = Scanner::Open(a.server, plan, so);
  if (!scanner.ok()) return Fail(scanner.status().ToString());
  Scanner& sc = **scanner;
  fmt::print(stderr, "slide {}: {} frames ({} tiles x {} channels x {} z) of {}x{} {}\n", sc.slide_id(),
             plan.frame_count(), plan.tiles.size(), plan.channels.size(), plan.z_planes, plan.width,
             plan.height, DtypeName(plan.dtype));

  ProgressBar bar("scan", plan.frame_count());
  const auto start = std::chrono::steady_clock::now();
  auto note = [&](const Scanner::Progress& p) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return fmt::format("durable {} | {:.0f} MB/s raw, ratio {:.2f}", p.frames_durable,
                       s > 0 ? static_cast<double>(p.raw_bytes) / s / 1e6 : 0.0,
                       p.compressed_bytes > 0 ? static_cast<double>(p.raw_bytes) / static_cast<double>(p.compressed_bytes) : 0.0);
  };
  std::vector<uint8_t> frame;
  for (uint64_t i = 0; i < plan.frame_count(); ++i) {
    if (StopFlag()) return Fail(fmt::format("interrupted; slide {} stays acquiring (resume is not supported yet; close it with `tessera close {}`)", sc.slide_id(), sc.slide_id()));
    if (a.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::duration<double>(static_cast<double>(i) / a.rate));
    }
    if (Status s = source(i, frame); !s.ok()) return Fail(s.ToString());
    if (Status s = sc.Push(plan.KeyOf(i), frame); !s.ok()) return Fail(s.ToString());
    bar.Update(i + 1, note(sc.progress()));
  }
  Status s = sc.Close([&](const Scanner::Progress& p) { bar.Update(plan.frame_count(), note(p)); });
  bar.Finish();
  if (!s.ok()) return Fail(s.ToString());
  const auto p = sc.progress();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "stored {} frames durably in {:.1f} s ({:.0f} MB/s raw, compression {:.2f}x{})\n",
             p.frames_durable, secs, static_cast<double>(p.raw_bytes) / secs / 1e6,
             static_cast<double>(p.raw_bytes) / static_cast<double>(std::max<uint64_t>(p.compressed_bytes, 1)),
             p.level_bytes > 0 ? fmt::format("; zoom levels made here, {:.1f} MB more", static_cast<double>(p.level_bytes) / 1e6)
                               : std::string());
  fmt::print("{}\n", sc.slide_id());
  return 0;
}

}  // namespace

void AddScanCommand(CLI::App& app, int& exit_code) {
  static ScanArgs a;
  auto* scan = app.add_subcommand(
      "scan", "Push a scan as a microscope would; prints the slide id on its last line once every "
              "frame is durable");
  AddServerOption(scan, a.server);
  scan->add_option("--tile-config", a.tile_config,
                   "Fiji Grid/Collection TileConfiguration.txt (dim = 2 or 3); its tiles, multi-page (Big)TIFF "
                   "or Hamamatsu .dcimg stacks (each page or frame a z plane), are pushed in line order, a plane "
                   "at a time");
  scan->add_flag("--synthetic", a.synthetic, "Generate a realistic fluorescence mosaic instead");
  scan->add_option("--name", a.name, "Slide name (default: the folder, or 'synthetic')");
  scan->add_option("--cols", a.synth.cols, "Synthetic: grid columns")->capture_default_str();
  scan->add_option("--rows", a.synth.rows, "Synthetic: grid rows")->capture_default_str();
  scan->add_option("--width", a.synth.width, "Synthetic: tile width")->capture_default_str();
  scan->add_option("--height", a.synth.height, "Synthetic: tile height")->capture_default_str();
  scan->add_option("--channels", a.synth.channels, "Synthetic: channels")->capture_default_str();
  scan->add_option("--z", a.synth.z_planes, "Synthetic: z planes")->capture_default_str();
  scan->add_option("--dtype", a.dtype, "Synthetic: uint8 or uint16")->capture_default_str();
  scan->add_option("--overlap", a.synth.overlap, "Synthetic: nominal overlap fraction")->capture_default_str();
  scan->add_option("--position-error", a.synth.position_error_px,
                   "Synthetic: max stage position error in pixels")->capture_default_str();
  scan->add_option("--seed", a.synth.seed, "Synthetic: random seed")->capture_default_str();
  scan->add_flag("!--no-vignetting", a.synth.vignetting, "Synthetic: an even illumination (no fall-off to the corners)");
  scan->add_option("--background", a.synth.background,
                   "Synthetic: autofluorescence everywhere, as a fraction of a cell's peak, under the illumination")
      ->capture_default_str();
  scan->add_option("--stripes", a.synth.stripes,
                   "Synthetic: light-sheet stripes, 1 row in 16 dimmed by up to this fraction from a column on")
      ->capture_default_str();
  scan->add_option("--gain-spread", a.synth.gain_spread,
                   "Synthetic: each tile's brightness times a known factor within 1 +- this (bleaching, exposure)")
      ->capture_default_str();
  scan->add_option("--rate", a.rate, "Frames per second (0: as fast as the stack takes them)")
      ->capture_default_str();
  scan->add_option("--codec", a.codec, "Blosc compressor: lz4 (fast) or zstd (smaller)")->capture_default_str();
  scan->add_option("--level", a.level, "Blosc level 0-9")->capture_default_str();
  scan->add_option("--chunk", a.chunk, "Chunk edge in pixels (fitted to the tile)")->capture_default_str();
  scan->add_option("--pixel-size", a.pixel_size_um, "Pixel size in micrometres (x and y; the camera pixel in the "
                   "sample for an oblique scan)");
  scan->add_flag("--light-sheet", a.synth.light_sheet,
                 "Synthetic: light-sheet stacks (planes are sections of one 3-D scene, cells as 3-D blobs, a "
                 "stage error in z too); the default for --z above 1");
  scan->add_flag("--widefield", a.widefield,
                 "Synthetic: a widefield z-stack instead (a focus series of one 2-D scene: cells blur and dim "
                 "away from the middle plane)");
  scan->add_option("--z-error", a.synth.z_error_planes, "Synthetic light sheet: max stage error in z, planes")
      ->capture_default_str();
  scan->add_option("--oblique", a.oblique.angle_deg,
                   "An oblique (stage-scan) light-sheet scan: the angle between the sheet and the stage, degrees; "
                   "its tiles get a deskewed view (needs --stage-step and --pixel-size)");
  scan->add_option("--stage-step", a.oblique.stage_step_um, "Oblique scan: stage travel between planes, um");
  scan->add_option("--scan-direction", a.oblique.scan_direction, "Oblique scan: 1 or -1")->capture_default_str();
  scan->add_option("--rotate-90", a.oblique.rotate_90,
                   "Oblique scan: quarter turns clockwise of each frame before the deskew")->capture_default_str();
  scan->add_flag("--flip-ud", a.oblique.flip_ud, "Oblique scan: flip each frame up-down (after --rotate-90)");
  scan->add_option("--header", a.header, "Free-form slide header, as JSON")->capture_default_str();
  scan->add_flag("!--no-local", a.local,
                 "Push over the proxy's TCP endpoint even on the stack's host (by default a scanner there uses "
                 "its Unix socket: no TCP hop, no encryption, the credential checked all the same)");
  scan->add_option("--levels", a.levels,
                   "Who makes each frame's zoom levels: scanner (this process, from the pixels, pushed with the "
                   "frame), writer (from the stored chunks), or auto (scanner when pushing over TCP, writer on "
                   "the stack's host)")
      ->check(CLI::IsMember({"auto", "scanner", "writer"}))
      ->capture_default_str();
  scan->add_flag("!--no-stitch", a.stitch,
                 "Do not stitch when the scan closes (by default the stack's workers register and solve it)");
  scan->add_option("--timeout", a.timeout_s, "Fail after this many seconds without progress")
      ->capture_default_str();
  scan->callback([&] { exit_code = RunScan(a); });
}

}  // namespace tessera::cli
