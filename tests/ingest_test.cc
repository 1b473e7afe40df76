// End to end: `tessera up`, `tessera scan`, `tessera ls/info`, and the files they leave.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "client/client.h"
#include "common/imageio/tiff.h"
#include "common/storage/slide_file.h"
#include "common/synth/synthetic_mosaic.h"
#include "tests/dcimg_files.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {

TEST(IngestTest, SyntheticScanIsStoredListedAndBitExact) {
  Stack stack;
  ASSERT_FALSE(stack.manager().empty());
  auto scan = RunTessera({"scan", "--synthetic", "--cols", "3", "--rows", "2", "--width", "300",
                          "--height", "200", "--channels", "2", "--z", "2", "--seed", "7",
                          "--chunk", "128", "--name", "demo", "--server", stack.manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  const std::string id = scan.LastLine();
  EXPECT_EQ(id, "s000001");

  auto ls = RunTessera({"ls", "--server", stack.manager()});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find(id), std::string::npos);
  EXPECT_NE(ls.out.find("acquired"), std::string::npos);
  EXPECT_NE(ls.out.find("24/24"), std::string::npos) << ls.out;

  auto info = RunTessera({"info", id, "--json", "--server", stack.manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["name"], "demo");
  EXPECT_EQ(j["state"], "acquired");
  EXPECT_EQ(j["frames_written"], 24);
  ASSERT_EQ(j["tiles"].size(), 6u);
  EXPECT_EQ(j["tiles"][4]["name"], "r001_c001");
  EXPECT_EQ(j["tiles"][4]["width"], 300);
  EXPECT_EQ(j["tiles"][4]["height"], 200);
  EXPECT_GT(j["tiles"][4]["x"].get<double>(), 0.0);
  EXPECT_GT(j["tiles"][4]["y"].get<double>(), 0.0);

  // Every frame in the file equals the frame the generator renders.
  synth::SyntheticOptions o;
  o.cols = 3, o.rows = 2, o.width = 300, o.height = 200, o.channels = 2, o.z_planes = 2, o.seed = 7;
  o.light_sheet = true;  // --z above 1: light-sheet stacks
  synth::SyntheticMosaic mosaic(o);
  auto file = storage::SlideFile::OpenForRead(j["path"].get<std::string>());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->frames_written(), 24u);
  std::vector<uint8_t> expected(mosaic.plan().frame_bytes());
  for (uint64_t i = 0; i < 24; ++i) {
    const FrameKey k = mosaic.plan().KeyOf(i);
    mosaic.RenderFrame(k, expected);
    auto got = (*file)->ReadFrame(k);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, expected) << "frame " << i;
  }
}

// The zoom levels are the same whoever makes them: the writer from the stored chunks, or the
// scanner from its pixels (one chunk per frame, and 64-pixel chunks: odd edges at every level).
TEST(IngestTest, MistTileConfigReadsBackBitExactWithH5pyWhoeverMakesTheLevels) {
  const std::string config = "../shared/data/mist-5x5/TileConfiguration.txt";
  ASSERT_TRUE(std::filesystem::exists(config)) << "run from the repository root, ../shared beside it";
  Stack stack;
  for (const auto& [levels, chunk] : {std::pair{"writer", "512"}, {"scanner", "512"}, {"scanner", "64"}}) {
    SCOPED_TRACE(std::string(levels) + " chunk " + chunk);
    auto scan = RunTessera({"scan", "--tile-config", config, "--levels", levels, "--chunk", chunk, "--no-stitch",
                            "--server", stack.manager()});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    EXPECT_EQ(scan.err.find("zoom levels made here") != std::string::npos, std::string(levels) == "scanner") << scan.err;
    auto info = Client(stack.manager()).Info(scan.LastLine());
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->frames_written, 25u);
    EXPECT_EQ(info->plan.tiles.size(), 25u);
    EXPECT_EQ(info->plan.tiles[1].y, 172.0);
    auto verify = RunProgram({"/usr/bin/python3", "tests/verify_slide.py", info->path, config});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("verified 25 tiles and 3 levels"), std::string::npos) << verify.out;
  }
}

// Light-sheet stacks as tiles: a dim = 3 configuration of DCIMG stacks (two versions) and a
// multi-page TIFF, each frame or page a z plane, pushed a plane at a time and stored bit-exact.
TEST(IngestTest, Dim3StacksOfDcimgAndTiffAreStoredPlaneByPlane) {
  const std::string dir = FreshDir("stacks");
  const uint32_t w = 64, h = 32, planes = 5;
  for (uint32_t version : {0x7u, 0x2000000u}) {
    const std::string bytes = Build({.version = version, .width = w, .height = h, .frames = planes});
    std::ofstream(dir + (version == 0x7 ? "/a.dcimg" : "/b.dcimg"), std::ios::binary).write(bytes.data(),
                                                                                      static_cast<std::streamsize>(bytes.size()));
  }
  imageio::Image tiff{.width = w, .height = h, .planes = planes, .dtype = Dtype::kUint16};
  tiff.pixels.resize(size_t{w} * h * planes * 2);
  for (uint32_t k = 0; k < planes; ++k) {
    for (uint32_t y = 0; y < h; ++y) {
      for (uint32_t x = 0; x < w; ++x) {
        const uint16_t v = Truth(k, y, x);
        std::memcpy(tiff.pixels.data() + ((size_t{k} * h + y) * w + x) * 2, &v, 2);
      }
    }
  }
  ASSERT_TRUE(imageio::WriteTiff(dir + "/c.tif", tiff).ok());
  std::ofstream(dir + "/TileConfiguration.txt") << "dim = 3\na.dcimg; ; (0.0, 0.0, 0.0)\n"
                                                   "b.dcimg; ; (50.0, 0.0, 2.0)\nc.tif; ; (0.0, 25.0, -1.0)\n";
  Stack stack;
  auto scan = RunTessera({"scan", "--no-stitch", "--tile-config", dir + "/TileConfiguration.txt", "--server",
                          stack.manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  auto info = Client(stack.manager()).Info(scan.LastLine());
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->plan.z_planes, planes);
  ASSERT_EQ(info->plan.tiles.size(), 3u);
  EXPECT_EQ(info->plan.tiles[1].z, 2.0);
  EXPECT_EQ(info->plan.tiles[2].z, -1.0);
  auto file = storage::SlideFile::OpenForRead(info->path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ((*file)->frames_written(), 3u * planes);
  for (uint32_t t = 0; t < 3; ++t) {
    for (uint32_t z = 0; z < planes; ++z) {
      auto got = (*file)->ReadFrame({.t = t, .c = 0, .z = z});
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      const auto* px = reinterpret_cast<const uint16_t*>(got->data());
      for (uint32_t i = 0; i < w * h; ++i) {
        ASSERT_EQ(px[i], Truth(z, i / w, i % w)) << "tile " << t << " plane " << z << " pixel " << i;
      }
    }
  }
}

// A synthetic oblique light-sheet scan: its plan carries the deskew's parameters, `tessera info
// --json` the deskewed view's shape and voxel size, and its header the truth in x, y and z.
TEST(IngestTest, AnObliqueSyntheticScanRecordsItsDeskewAndItsTruth) {
  Stack stack;
  auto scan = RunTessera({"scan", "--synthetic", "--no-stitch", "--cols", "2", "--rows", "1", "--width", "128",
                          "--height", "64", "--channels", "1", "--z", "12", "--oblique", "45", "--stage-step",
                          "2.8284271247461903", "--pixel-size", "2", "--scan-direction", "-1", "--server",
                          stack.manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  auto info = RunTessera({"info", scan.LastLine(), "--json", "--server", stack.manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  ASSERT_TRUE(j.contains("oblique")) << info.out;
  EXPECT_EQ(j["oblique"]["scan_direction"], -1);
  EXPECT_EQ(j["oblique"]["deskewed"]["copy"], true);  // 45 degrees, a step of sqrt(2) pixels
  EXPECT_EQ(j["oblique"]["deskewed"]["shape"]["width"], 128 + 11);
  EXPECT_NEAR(j["oblique"]["deskewed"]["voxel_um"][2].get<double>(), 2.0, 1e-9);
  EXPECT_EQ(j["header"]["synthetic"]["true_z"].size(), 2u);
  EXPECT_EQ(j["frames_written"], 24);
  // Parameters the deskew cannot take are refused before a slide opens, by name.
  auto steep = RunTessera({"scan", "--synthetic", "--oblique", "90", "--stage-step", "1", "--server", stack.manager()});
  EXPECT_NE(steep.exit_code, 0);
  EXPECT_NE(steep.err.find("oblique angle 90"), std::string::npos) << steep.err;
}

TEST(IngestTest, ExampleProgramStoresItsSlide) {
  Stack stack;
  const auto example = std::filesystem::path(TesseraBin()).parent_path().parent_path() / "client" /
                       "examples" / "push_frames";
  auto run = RunProgram({example.string(), stack.manager()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto info = Client(stack.manager()).Info(run.LastLine());
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->state, "acquired");
  EXPECT_EQ(info->frames_written, 8u);
  EXPECT_EQ(info->plan.channels, (std::vector<std::string>{"DAPI", "GFP"}));
}

TEST(IngestTest, UnknownSlideIsNotFoundWithAHint) {
  Stack stack;
  auto info = RunTessera({"info", "s999999", "--server", stack.manager()});
  EXPECT_EQ(info.exit_code, 1);
  EXPECT_NE(info.err.find("NOT_FOUND: slide s999999 is not in the catalog"), std::string::npos)
      << info.err;
}

TEST(IngestTest, NoServerGivesAnActionableError) {
  auto ls = RunTessera({"ls", "--server", "tcp://127.0.0.1:1"});
  EXPECT_EQ(ls.exit_code, 1);
  EXPECT_NE(ls.err.find("UNAVAILABLE"), std::string::npos) << ls.err;
  EXPECT_NE(ls.err.find("tessera up"), std::string::npos) << ls.err;
}

TEST(IngestTest, UpStopsCleanlyWithItsChildrenOnSigint) {
  auto stack = std::make_unique<Stack>();
  auto plan = ScanPlan{};
  plan.width = plan.height = 64;
  plan.tiles.push_back({.name = "a"});
  auto slide = Client(stack->manager()).OpenSlide(plan);
  ASSERT_TRUE(slide.ok()) << slide.status().ToString();
  ASSERT_GT(slide->proxy_pid, 0);
  ASSERT_EQ(::kill(stack->pid(), SIGINT), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(stack->pid(), &st, 0), stack->pid());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_NE(::kill(slide->proxy_pid, 0), 0);
  EXPECT_NE(::kill(slide->writer_pid, 0), 0);
  // The slide was acquiring: a new `tessera up` on the same data finds it and restarts it.
  Stack again({}, stack->data_dir());
  Client client(again.manager());
  auto info = client.Info(slide->id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, "acquiring");
  // Its writer and proxy start while the manager serves: they are there once ready.
  EXPECT_TRUE(WaitFor([&] {
    info = client.Info(slide->id);
    return info.ok() && info->proxy_pid > 0 && info->writer_pid > 0;
  })) << "the slide's proxy and writer were not restarted";
}

}  // namespace
}  // namespace tessera::testing
