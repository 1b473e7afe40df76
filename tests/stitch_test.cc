// Stitching on the real stack: the broker, workers in their own processes over TCP, and
// `tessera stitch` on a slide scanned from ../shared/data/mist-5x5.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "client/client.h"
#include "common/correct/destripe.h"
#include "common/storage/slide_file.h"
#include "common/synth/synthetic_mosaic.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {

constexpr const char* kMist = "../shared/data/mist-5x5/TileConfiguration.txt";

// `tessera ps`, read back: tasks done per worker, and the queue of each service.
struct Ps {
  struct Queue {
    uint64_t workers = 0, queued = 0, running = 0, done = 0, failed = 0, retried = 0;
  };
  std::map<std::string, uint64_t> worker_done;
  std::map<std::string, Queue> services;
  std::string text;
};

Ps ReadPs(const Stack& stack) {
  auto r = RunTessera({"ps", "--server", stack.manager()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Ps ps;
  ps.text = r.out;
  std::istringstream lines(r.out);
  bool queues = false;  // the second table
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string first;
    if (!(words >> first)) continue;
    if (first == "SERVICE") queues = true;
    if (first == "WORKER" || first == "SERVICE" || first == "broker") continue;
    if (queues) {
      Ps::Queue q;
      if (words >> q.workers >> q.queued >> q.running >> q.done >> q.failed >> q.retried) ps.services[first] = q;
    } else {
      std::string services, task;
      uint64_t done = 0;
      if (words >> services >> task >> done) ps.worker_done[first] = done;
    }
  }
  return ps;
}

nlohmann::json Stitch(const Stack& stack, const std::string& slide) {
  auto r = RunTessera({"stitch", slide, "--json", "--server", stack.manager()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
}

class StitchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>(std::vector<std::string>{"--workers", "0", "--auto-stitch", "true"});
    // Workers as on another host: a worker credential, no share of the stack's keys.
    const std::string credential = stack_->data_dir() + "/worker.credential";
    auto issued = RunTessera({"credential", "new", "--role", "worker", "-o", credential});
    ASSERT_EQ(issued.exit_code, 0) << issued.err;
    for (const char* name : {"w1", "w2"}) {
      workers_.push_back(std::make_unique<Process>(
          std::vector<std::string>{"serve", "worker", "--broker", stack_->endpoint("broker"), "--manager",
                                   stack_->manager(), "--name", name, "--credential", credential},
          stack_->data_dir() + "/" + name + ".log"));
    }
    slide_ = Scan({"--no-stitch"});
  }

  std::string Scan(std::vector<std::string> extra) {
    std::vector<std::string> args{"scan", "--tile-config", kMist, "--server", stack_->manager()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto scan = RunTessera(args);
    EXPECT_EQ(scan.exit_code, 0) << scan.err;
    return scan.LastLine();
  }

  std::unique_ptr<Stack> stack_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::string slide_;
};

TEST_F(StitchTest, MistRegistersExactlyOnWorkersInOtherProcesses) {
  const auto qc = Stitch(*stack_, slide_);
  ASSERT_FALSE(qc.is_null());
  EXPECT_EQ(qc["summary"]["tiles"], 25);
  EXPECT_EQ(qc["summary"]["links"], 40);  // the side neighbours of a 5 x 5 grid
  EXPECT_EQ(qc["summary"]["reliable"], 40);
  EXPECT_EQ(qc["summary"]["suspicious"], 0);
  // The tiles are crops of one image: where they truly overlap their pixels are equal, so a
  // right link has NCC 1 at a whole-pixel offset, and the solve agrees with every link.
  for (const auto& l : qc["links"]) {
    EXPECT_GT(l["ncc"].get<double>(), 0.9999) << l.dump();
    EXPECT_NEAR(l["dx"].get<double>(), std::round(l["dx"].get<double>()), 0.1) << l.dump();
    EXPECT_NEAR(l["dy"].get<double>(), std::round(l["dy"].get<double>()), 0.1) << l.dump();
    EXPECT_LT(l["residual_px"].get<double>(), 0.1) << l.dump();
  }
  // Both workers did some of the tasks (the broker hands them to the longest idle): the 40
  // registrations and the fused image's chunks.
  const Ps ps = ReadPs(*stack_);
  EXPECT_GT(ps.worker_done.at("w1"), 0u) << ps.text;
  EXPECT_GT(ps.worker_done.at("w2"), 0u) << ps.text;
  EXPECT_EQ(ps.services.at("register").done, 40u) << ps.text;
  EXPECT_GT(ps.services.at("fuse").done, 0u) << ps.text;
  EXPECT_EQ(ps.worker_done.at("w1") + ps.worker_done.at("w2"), 40u + ps.services.at("fuse").done) << ps.text;
}

// Where the tile dealer composes the mosaic over `tile`'s footprint (its neighbours drawn
// over it where they overlap), how many pixels differ from the tile's own.
int64_t SeamErrors(Client& client, const std::string& slide, uint32_t t = 6) {
  auto info = client.Describe(slide);
  auto tile = client.ReadTile({.slide = slide, .tile = t});
  EXPECT_TRUE(info.ok() && tile.ok());
  if (!info.ok() || !tile.ok()) return -1;
  const auto x = static_cast<int64_t>(std::floor(info->positions[t][0] + 0.5));
  const auto y = static_cast<int64_t>(std::floor(info->positions[t][1] + 0.5));
  auto region = client.ReadRegion({.slide = slide, .level = 0, .x = x, .y = y, .width = tile->shape[3],
                                   .height = tile->shape[2]});
  EXPECT_TRUE(region.ok());
  if (!region.ok()) return -1;
  const auto a = tile->values<uint16_t>(), b = region->values<uint16_t>();
  int64_t errors = 0;
  for (size_t i = 0; i < a.size(); ++i) errors += a[i] != b[i];
  return errors;
}

TEST_F(StitchTest, TheSolvedPositionsAreStoredAndTheMosaicIsServedAtThem) {
  Client client(stack_->manager());
  // At the stage positions the neighbours drawn over tile 6 are misplaced by pixels.
  EXPECT_GT(SeamErrors(client, slide_), 100);
  const auto qc = Stitch(*stack_, slide_);
  ASSERT_FALSE(qc.is_null());
  auto info = RunTessera({"info", slide_, "--json", "--server", stack_->manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  ASSERT_EQ(j["tiles"].size(), 25u);
  for (size_t i = 0; i < 25; ++i) {
    EXPECT_EQ(j["tiles"][i]["x"], qc["tiles"][i]["x"]) << i;  // sub-pixel, as solved
    EXPECT_EQ(j["tiles"][i]["y"], qc["tiles"][i]["y"]) << i;
    EXPECT_EQ(j["tiles"][i]["stage_x"], qc["tiles"][i]["stage_x"]) << i;
  }
  // The tiles are crops of one image: at the solved positions the mosaic over every tile is
  // that tile, pixel for pixel (every tile placed to the nearest pixel of the truth).
  for (uint32_t t = 0; t < 25; ++t) EXPECT_EQ(SeamErrors(client, slide_, t), 0) << "tile " << t;
  // The fused view: a slide of its own, "<id>:fused", at every level. The overlaps of these
  // crops are identical, so blending changes nothing: it is the mosaic at the solved positions.
  auto fused_info = client.Describe(slide_ + ":fused");
  ASSERT_TRUE(fused_info.ok()) << fused_info.status().ToString();
  const auto origin = fused_info->positions[0];
  for (uint32_t level = 0; level < fused_info->level_count; ++level) {
    auto f = client.ReadTile({.slide = slide_ + ":fused", .tile = 0, .level = level});
    ASSERT_TRUE(f.ok()) << "level " << level << ": " << f.status().ToString();
    EXPECT_EQ(f->missing_chunks, 0u) << "level " << level;
  }
  auto fused = client.ReadTile({.slide = slide_ + ":fused", .tile = 0});
  ASSERT_TRUE(fused.ok());
  auto mosaic = client.ReadRegion({.slide = slide_, .level = 0, .x = static_cast<int64_t>(origin[0]),
                                   .y = static_cast<int64_t>(origin[1]), .width = fused->shape[3],
                                   .height = fused->shape[2]});
  ASSERT_TRUE(mosaic.ok()) << mosaic.status().ToString();
  EXPECT_EQ(fused->data, mosaic->data);
  // A stitch with --no-store reports and leaves them.
  auto dry = RunTessera({"stitch", slide_, "--no-store", "--max-shift", "1", "--server", stack_->manager()});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(SeamErrors(client, slide_), 0);
}

TEST_F(StitchTest, AScanStitchesByItselfWhenItCloses) {
  const std::string slide = Scan({});
  auto waited = RunTessera({"stitch", slide, "--wait", "--json", "--server", stack_->manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  const auto qc = nlohmann::json::parse(waited.out);
  EXPECT_EQ(qc["summary"]["reliable"], 40);
  auto info = RunTessera({"info", slide, "--json", "--server", stack_->manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_TRUE(j.contains("stitched_unix_ms")) << info.out;
  EXPECT_EQ(j["stitch"]["state"], "done") << info.out;  // the slide says how its stitch went
  EXPECT_EQ(j["tiles"][7]["x"], qc["tiles"][7]["x"]);
  // A slide scanned with --no-stitch has not been stitched, and says so.
  auto none = RunTessera({"stitch", slide_, "--wait", "--server", stack_->manager()});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("has not been stitched"), std::string::npos) << none.err;
}

TEST_F(StitchTest, TilesAreRegisteredWhileTheScanLands) {
  // 25 frames at 10 a second: 2.5 s of scan, each pair registered as its second tile lands.
  const std::string slide = Scan({"--rate", "10"});
  auto waited = RunTessera({"stitch", slide, "--wait", "--json", "--server", stack_->manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  const auto qc = nlohmann::json::parse(waited.out);
  EXPECT_EQ(qc["summary"]["reliable"], 40);
  EXPECT_EQ(qc["summary"]["suspicious"], 0);
  // Pairs were registered before the scan closed (a stitch started at the close has none).
  EXPECT_GT(qc["run"]["registered_while_acquiring"].get<int>(), 0) << qc["run"].dump();
}

// Synthetic mosaics with a known stage error and noise, 2-D and z-stacks (registered on their
// maximum projection over z): every tile within half a pixel of the truth.
TEST_F(StitchTest, SyntheticMosaicsTwoDAndZStacksLandWithinHalfAPixel) {
  for (uint32_t z_planes : {1u, 5u}) {
    synth::SyntheticOptions o;
    o.cols = 3;
    o.rows = 3;
    o.width = o.height = 512;
    o.channels = 1;
    o.z_planes = z_planes;
    o.position_error_px = 6;
    auto scan = RunTessera({"scan", "--synthetic", "--no-stitch", "--cols", "3", "--rows", "3", "--width", "512",
                            "--height", "512", "--channels", "1", "--z", std::to_string(z_planes),
                            "--widefield", "--position-error", "6", "--server", stack_->manager()});
    ASSERT_EQ(scan.exit_code, 0) << scan.err;
    const auto qc = Stitch(*stack_, scan.LastLine());
    ASSERT_FALSE(qc.is_null());
    EXPECT_EQ(qc["summary"]["suspicious"], 0) << z_planes << " planes";
    const synth::SyntheticMosaic truth(o);
    // The solve keeps the stage's mean: compare after removing the mean offset.
    double mx = 0, my = 0;
    for (uint32_t t = 0; t < 9; ++t) {
      mx += qc["tiles"][t]["x"].get<double>() - truth.TruePosition(t)[0];
      my += qc["tiles"][t]["y"].get<double>() - truth.TruePosition(t)[1];
    }
    for (uint32_t t = 0; t < 9; ++t) {
      EXPECT_NEAR(qc["tiles"][t]["x"].get<double>() - mx / 9, truth.TruePosition(t)[0], 0.5) << z_planes << " planes, tile " << t;
      EXPECT_NEAR(qc["tiles"][t]["y"].get<double>() - my / 9, truth.TruePosition(t)[1], 0.5) << z_planes << " planes, tile " << t;
    }
  }
}

TEST_F(StitchTest, AWorkerFrozenThenKilledMidStitchChangesNothing) {
  const auto before = Stitch(*stack_, slide_);
  ASSERT_FALSE(before.is_null());
  Client client(stack_->manager());
  auto fused_before = client.ReadTile({.slide = slide_ + ":fused", .tile = 0});
  ASSERT_TRUE(fused_before.ok()) << fused_before.status().ToString();
  auto fused_info = client.Info(slide_ + ":fused");
  ASSERT_TRUE(fused_info.ok());
  const auto written_before = std::filesystem::last_write_time(fused_info->path);
  // w1 freezes: the broker still offers it tasks until it misses its heartbeats, then gives
  // the one it holds to w2.
  workers_[0]->Signal(SIGSTOP);
  const auto after = Stitch(*stack_, slide_);
  workers_[0]->Signal(SIGKILL);
  ASSERT_FALSE(after.is_null());
  ASSERT_EQ(before["tiles"].size(), after["tiles"].size());
  for (size_t i = 0; i < before["tiles"].size(); ++i) {
    EXPECT_EQ(before["tiles"][i]["x"], after["tiles"][i]["x"]) << i;
    EXPECT_EQ(before["tiles"][i]["y"], after["tiles"][i]["y"]) << i;
  }
  // The second stitch wrote a fused file of its own, renamed over the first: its pixels, read
  // from the file itself and from the dealer (whose cache of the old file was dropped), are
  // the first one's.
  auto info = client.Info(slide_ + ":fused");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto file = storage::SlideFile::OpenForRead(info->path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto on_disk = (*file)->ReadFrame({0, 0, 0});
  ASSERT_TRUE(on_disk.ok()) << on_disk.status().ToString();
  EXPECT_EQ(*on_disk, fused_before->data);
  EXPECT_GT(std::filesystem::last_write_time(info->path), written_before);
  auto fused_after = client.ReadTile({.slide = slide_ + ":fused", .tile = 0});
  ASSERT_TRUE(fused_after.ok()) << fused_after.status().ToString();
  EXPECT_EQ(fused_after->data, fused_before->data);
  // w1 is gone and a task was retried (the one it held); none failed.
  const Ps ps = ReadPs(*stack_);
  EXPECT_FALSE(ps.worker_done.contains("w1")) << ps.text;
  EXPECT_GE(ps.services.at("register").retried + ps.services.at("fuse").retried, 1u) << ps.text;
  EXPECT_EQ(ps.services.at("register").failed + ps.services.at("fuse").failed, 0u) << ps.text;
}

nlohmann::json InfoJson(const Stack& stack, const std::string& id) {
  auto r = RunTessera({"info", id, "--json", "--server", stack.manager()});
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{};
}

// Light-sheet stacks offset by a known stage error in x, y and z: registered in 3-D (z from the
// side views of each overlap), solved in x, y and z, every stack within half a voxel of the
// truth; the fused volume spans the stacks as placed in z.
TEST_F(StitchTest, LightSheetStacksAreStitchedInThreeDimensionsWithinHalfAVoxel) {
  synth::SyntheticOptions o;
  o.cols = 3;
  o.rows = 2;
  o.width = 160;
  o.height = 144;
  o.channels = 1;
  o.z_planes = 32;
  o.light_sheet = true;
  o.z_error_planes = 3;
  o.position_error_px = 5;
  auto scan = RunTessera({"scan", "--synthetic", "--cols", "3", "--rows", "2", "--width", "160", "--height", "144",
                          "--channels", "1", "--z", "32", "--z-error", "3", "--position-error", "5", "--server",
                          stack_->manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  const std::string slide = scan.LastLine();
  auto waited = RunTessera({"stitch", slide, "--wait", "--json", "--server", stack_->manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  const auto qc = nlohmann::json::parse(waited.out);
  EXPECT_EQ(qc["summary"]["volume"], true);
  EXPECT_EQ(qc["summary"]["suspicious"], 0) << waited.out;
  EXPECT_EQ(qc["summary"]["reliable"], qc["summary"]["links"]) << waited.out;
  const synth::SyntheticMosaic truth(o);
  const size_t n = 6;
  double mx = 0, my = 0, mz = 0;
  for (uint32_t t = 0; t < n; ++t) {
    mx += (qc["tiles"][t]["x"].get<double>() - truth.TruePosition(t)[0]) / n;
    my += (qc["tiles"][t]["y"].get<double>() - truth.TruePosition(t)[1]) / n;
    mz += (qc["tiles"][t]["z"].get<double>() - truth.TrueZ(t)) / n;
  }
  double zmin = 1e9, zmax = -1e9;
  for (uint32_t t = 0; t < n; ++t) {
    EXPECT_NEAR(qc["tiles"][t]["x"].get<double>() - mx, truth.TruePosition(t)[0], 0.5) << "tile " << t;
    EXPECT_NEAR(qc["tiles"][t]["y"].get<double>() - my, truth.TruePosition(t)[1], 0.5) << "tile " << t;
    EXPECT_NEAR(qc["tiles"][t]["z"].get<double>() - mz, truth.TrueZ(t), 0.5) << "tile " << t;
    zmin = std::min(zmin, std::floor(qc["tiles"][t]["z"].get<double>() + 0.5));
    zmax = std::max(zmax, std::floor(qc["tiles"][t]["z"].get<double>() + 0.5));
  }
  // The solved z is the slide's: info gives it per tile; the fused volume spans every stack.
  const auto info = InfoJson(*stack_, slide);
  EXPECT_EQ(info["tiles"][4]["z"], qc["tiles"][4]["z"]);
  Client client(stack_->manager());
  auto fused = client.Describe(slide + ":fused");
  ASSERT_TRUE(fused.ok()) << fused.status().ToString();
  EXPECT_EQ(fused->summary.plan.z_planes, static_cast<uint32_t>(32 + zmax - zmin));
  EXPECT_EQ(fused->positions[0][2], zmin);

  // Any 3-D box of the fused volume: `tessera get --box` writes the box, clipped to the volume
  // (and says so), as a TIFF stack with its voxel size; the client library reads the same.
  const int64_t fx = static_cast<int64_t>(fused->positions[0][0]) + 100, fy = static_cast<int64_t>(fused->positions[0][1]) + 60;
  const std::string tif = stack_->data_dir() + "/box.tif";
  auto got = RunTessera({"get", slide + ":fused", "--box", fmt::format("{},{},-3,64,48,12", fx, fy), "-o", tif,
                         "--server", stack_->manager()});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_NE(got.err.find("reaches outside the volume"), std::string::npos) << got.err;
  auto read = RunProgram({"/usr/bin/python3", "-c",
                          "import sys, tifffile; t = tifffile.TiffFile(sys.argv[1]); a = t.asarray(); "
                          "r = t.pages[0].tags['XResolution'].value; "
                          "print(a.shape, t.imagej_metadata['spacing'], round(r[0] / r[1], 4), int(a.sum()))",
                          tif});
  ASSERT_EQ(read.exit_code, 0) << read.err;
  auto box = client.ReadRegion({.slide = slide + ":fused", .level = 0, .x = fx, .y = fy, .width = 64, .height = 48,
                                .z_begin = 0, .z_end = 9});
  ASSERT_TRUE(box.ok()) << box.status().ToString();
  uint64_t sum = 0;
  for (uint16_t v : box->values<uint16_t>()) sum += v;
  // 0.65 um pixels (1.5385 per um), planes 2 um apart: the synthetic scan's voxel.
  EXPECT_EQ(read.out, fmt::format("(9, 48, 64) 2 1.5385 {}\n", sum)) << read.out;

  // The fused volume is stored in 3-D chunks and its levels halve z where the voxel is not
  // coarser in z (0.65 um pixels, 2 um planes: from level 3 on); h5py reads every level, and
  // the whole of level 3 read back through `tessera get --level 3` is that level.
  const LevelShape l3 = fused->summary.plan.Level(3);
  EXPECT_EQ(l3.z_shift, 1u);
  EXPECT_EQ(l3.depth, (fused->summary.plan.z_planes + 1) / 2);
  const std::string level3 = stack_->data_dir() + "/level3.tif";
  auto whole = RunTessera({"get", slide + ":fused", "--level", "3", "--box",
                           fmt::format("-100000,-100000,0,200000,200000,{}", l3.depth), "-o", level3, "--server",
                           stack_->manager()});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  auto volume = RunProgram({"/usr/bin/python3", "tests/verify_volume.py", InfoJson(*stack_, slide + ":fused")["path"],
                            level3, "3"});
  EXPECT_EQ(volume.exit_code, 0) << volume.out << volume.err;
  EXPECT_NE(volume.out.find("in chunks (8, 128, 128)"), std::string::npos) << volume.out;
  EXPECT_NE(volume.out.find("z halved at levels [3, 4]"), std::string::npos) << volume.out;

  // The raw stacks placed in z: a box inside one stack alone, at the planes where that stack
  // lies, is that stack's own planes.
  auto described = client.Describe(slide);
  ASSERT_TRUE(described.ok());
  int64_t lowest = INT64_MAX;
  for (const auto& p : described->positions) lowest = std::min(lowest, static_cast<int64_t>(std::floor(p[2] + 0.5)));
  const uint32_t t = 4;
  const auto& p = described->positions[t];
  const auto first = static_cast<uint32_t>(static_cast<int64_t>(std::floor(p[2] + 0.5)) - lowest);
  auto inside = client.ReadRegion({.slide = slide, .level = 0, .x = static_cast<int64_t>(std::floor(p[0] + 0.5)) + 40,
                                   .y = static_cast<int64_t>(std::floor(p[1] + 0.5)) + 40, .width = 32, .height = 32,
                                   .z_begin = first, .z_end = first + 32});
  auto own = client.ReadTile({.slide = slide, .tile = t, .x = 40, .y = 40, .width = 32, .height = 32});
  ASSERT_TRUE(inside.ok() && own.ok()) << inside.status().ToString() << own.status().ToString();
  EXPECT_EQ(inside->data, own->data);
  EXPECT_FALSE(inside->clipped);
}

// An oblique light-sheet scan gets its deskewed view from the workers while it lands: a stack's
// planes go out in blocks as they land, the view (a slide file of its own, served as
// "<id>:deskewed") is the numpy reference's deskew of the raw stacks read by h5py, and the
// stitch registers and fuses the deskewed stacks.
TEST_F(StitchTest, AnObliqueScanIsDeskewedByTheWorkersAsItLandsThenStitched) {
  // 45 degrees, a step of sqrt(2) camera pixels: one pixel of shear per plane, a copy.
  // 4 stacks of 24 planes at 40 frames a second: 2.4 s of scan.
  const pid_t scanner = StartTessera({"scan", "--synthetic", "--cols", "2", "--rows", "2", "--width", "128", "--height",
                                      "96", "--channels", "1", "--z", "24", "--oblique", "45", "--stage-step",
                                      "1.4142135623730951", "--pixel-size", "1", "--rate", "40", "--server",
                                      stack_->manager()},
                                     stack_->data_dir() + "/scan.log");
  ASSERT_GT(scanner, 0);
  Client client(stack_->manager());
  std::string slide;
  ASSERT_TRUE(WaitFor([&] {
    auto all = client.List();
    for (const auto& one : all.ok() ? *all : std::vector<SlideSummary>{}) {
      if (one.id != slide_) slide = one.id;
    }
    return !slide.empty();
  }));
  // Deskewed planes are served while the scan still lands.
  bool served_live = false;
  EXPECT_TRUE(WaitFor([&] {
    auto view = client.Info(slide + ":deskewed");
    auto raw = client.Info(slide);
    if (!view.ok() || !raw.ok() || raw->state != "acquiring") return !raw.ok() || raw->state != "acquiring";
    if (view->frames_written == 0) return false;
    auto plane = client.ReadTile({.slide = slide + ":deskewed", .tile = 0, .z_begin = 0, .z_end = 1});
    served_live = plane.ok() && plane->missing_chunks == 0 && view->state == "acquiring";
    return served_live;
  }));
  EXPECT_TRUE(served_live) << "no deskewed plane was served before the scan closed";
  int st = 0;
  ASSERT_EQ(::waitpid(scanner, &st, 0), scanner);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto waited = RunTessera({"stitch", slide, "--wait", "--json", "--server", stack_->manager()});
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  const auto qc = nlohmann::json::parse(waited.out);
  EXPECT_GT(qc["run"]["deskewed_while_acquiring"].get<int>(), 0) << qc["run"].dump();
  EXPECT_EQ(qc["summary"]["suspicious"], 0) << waited.out;
  // The deskewed stacks registered in 3-D: x, y and z within half a voxel of the truth.
  synth::SyntheticOptions o;
  o.cols = o.rows = 2;
  o.width = 128;
  o.height = 96;
  o.channels = 1;
  o.z_planes = 24;
  o.oblique = ObliqueScan{.angle_deg = 45, .stage_step_um = 1.4142135623730951};
  o.pixel_size_um = 1;
  const synth::SyntheticMosaic truth(o);
  double mx = 0, my = 0, mz = 0;
  for (uint32_t t = 0; t < 4; ++t) {
    mx += (qc["tiles"][t]["x"].get<double>() - truth.TruePosition(t)[0]) / 4;
    my += (qc["tiles"][t]["y"].get<double>() - truth.TruePosition(t)[1]) / 4;
    mz += (qc["tiles"][t]["z"].get<double>() - truth.TrueZ(t)) / 4;
  }
  for (uint32_t t = 0; t < 4; ++t) {
    EXPECT_NEAR(qc["tiles"][t]["x"].get<double>() - mx, truth.TruePosition(t)[0], 0.5) << "tile " << t;
    EXPECT_NEAR(qc["tiles"][t]["y"].get<double>() - my, truth.TruePosition(t)[1], 0.5) << "tile " << t;
    EXPECT_NEAR(qc["tiles"][t]["z"].get<double>() - mz, truth.TrueZ(t), 0.5) << "tile " << t;
  }

  const auto raw = InfoJson(*stack_, slide), view = InfoJson(*stack_, slide + ":deskewed");
  ASSERT_FALSE(view.is_null());
  // The slide names its views, each with its shape and voxel size.
  EXPECT_EQ(raw["views"]["deskewed"]["shape"]["width"], 128 + 23) << raw.dump();
  EXPECT_NEAR(raw["views"]["deskewed"]["pixel_size_um"][2].get<double>(), 1.0, 1e-9) << raw.dump();
  EXPECT_TRUE(raw["views"].contains("fused")) << raw.dump();
  EXPECT_EQ(view["state"], "acquired");
  EXPECT_EQ(view["frames_written"], 96);
  EXPECT_EQ(view["shape"]["width"], 128 + 23);  // X = U + ceil((K - 1) s)
  auto verify = RunProgram({"/usr/bin/python3", "tests/verify_deskewed.py", raw["path"], view["path"]});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("max difference 0"), std::string::npos) << verify.out;
  // The view is served like any slide, at every level; and its fused image has every plane.
  auto described = client.Describe(slide + ":deskewed");
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  for (uint32_t level = 0; level < described->level_count; ++level) {
    auto stack = client.ReadTile({.slide = slide + ":deskewed", .tile = 3, .level = level, .z_begin = 0, .z_end = 24});
    ASSERT_TRUE(stack.ok()) << "level " << level << ": " << stack.status().ToString();
    EXPECT_EQ(stack->missing_chunks, 0u) << "level " << level;
  }
  auto fused = client.Describe(slide + ":fused");
  ASSERT_TRUE(fused.ok()) << fused.status().ToString();
  EXPECT_GE(fused->summary.plan.z_planes, 24u);
  EXPECT_EQ(fused->depth, fused->summary.plan.z_planes);
  // The fused volume as any 3-D box: the whole of it through `tessera get --box` is what h5py
  // reads, stored in 3-D chunks with its levels.
  const std::string tif = stack_->data_dir() + "/oblique.tif";
  auto whole = RunTessera({"get", slide + ":fused", "--box",
                           fmt::format("-100000,-100000,0,200000,200000,{}", fused->depth), "-o", tif, "--server",
                           stack_->manager()});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  auto volume = RunProgram({"/usr/bin/python3", "tests/verify_volume.py", InfoJson(*stack_, slide + ":fused")["path"],
                            tif, "0"});
  EXPECT_EQ(volume.exit_code, 0) << volume.out << volume.err;
}

// Interpolated (30 degrees), scanned backwards, not stitched: deskewed all the same, within
// one grey level of the reference; and a slide that is not oblique has no deskewed view.
TEST_F(StitchTest, AnObliqueScanNotStitchedIsDeskewedWithinOneGreyLevel) {
  auto scan = RunTessera({"scan", "--synthetic", "--no-stitch", "--cols", "2", "--rows", "1", "--width", "96",
                          "--height", "64", "--channels", "2", "--z", "20", "--oblique", "30", "--stage-step", "1",
                          "--pixel-size", "0.5", "--scan-direction", "-1", "--server", stack_->manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  const std::string slide = scan.LastLine();
  nlohmann::json view;
  ASSERT_TRUE(WaitFor([&] {
    view = InfoJson(*stack_, slide + ":deskewed");
    return !view.is_null() && view["state"] == "acquired";
  })) << view.dump();
  EXPECT_EQ(view["frames_written"], 80);
  auto verify = RunProgram({"/usr/bin/python3", "tests/verify_deskewed.py", InfoJson(*stack_, slide)["path"], view["path"]});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto none = RunTessera({"info", slide_ + ":deskewed", "--server", stack_->manager()});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("not an oblique scan"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace tessera::testing

namespace tessera::testing {
namespace {

// A fused image's 32 x 32 block means, over the box [x0, x0 + w) x [y0, y0 + h) of the mosaic.
std::vector<double> BlockMeans(Client& client, const std::string& slide, int64_t x0, int64_t y0, int64_t w, int64_t h) {
  auto d = client.Describe(slide + ":fused");
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  if (!d.ok()) return {};
  auto f = client.ReadTile({.slide = slide + ":fused", .tile = 0});
  EXPECT_TRUE(f.ok());
  if (!f.ok()) return {};
  const auto ox = static_cast<int64_t>(d->positions[0][0]), oy = static_cast<int64_t>(d->positions[0][1]);
  const auto v = f->values<uint16_t>();
  std::vector<double> out;
  for (int64_t by = y0; by + 32 <= y0 + h; by += 32) {
    for (int64_t bx = x0; bx + 32 <= x0 + w; bx += 32) {
      double s = 0;
      for (int64_t y = by; y < by + 32; ++y) {
        for (int64_t x = bx; x < bx + 32; ++x) s += v[static_cast<size_t>((y - oy) * f->shape[3] + (x - ox))];
      }
      out.push_back(s / 1024);
    }
  }
  return out;
}

// RMS of a / b - 1 over the blocks, after one global scale (the median ratio).
double RelativeRms(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (size_t i = 0; i < a.size(); ++i) r.push_back(a[i] / b[i]);
  std::vector<double> sorted = r;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(sorted.size() / 2), sorted.end());
  const double scale = sorted[sorted.size() / 2];
  double sum = 0;
  for (double x : r) sum += (x / scale - 1) * (x / scale - 1);
  return std::sqrt(sum / static_cast<double>(r.size()));
}

// A vignetted, unevenly exposed synthetic scan (and, `striped`, with stripes, destriped too)
// stitched with its corrections, against the same scan evenly lit: the fused image within
// `max_fused` RMS of it (32-px block means, up to one scale), the gains within `max_gain`.
void CorrectionsScenario(Stack& stack, bool striped, double max_fused, double max_gain) {
  const std::vector<std::string> grid{"scan", "--synthetic", "--no-stitch", "--cols", "5", "--rows", "5", "--width", "256",
                                      "--height", "256", "--channels", "1", "--background", "0.3", "--seed", "3",
                                      "--server", stack.manager()};
  auto scan = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = grid;
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = RunTessera(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.LastLine();
  };
  const std::string clean = scan({"--no-vignetting"});
  const std::string uneven = scan(striped ? std::vector<std::string>{"--gain-spread", "0.15", "--stripes", "0.3"}
                                          : std::vector<std::string>{"--gain-spread", "0.15"});
  // Stripes a row or two high: three wavelet levels reach them and leave the fields' large-scale
  // shading alone (the notch at every level would flatten each field's profile down its rows too).
  const std::vector<std::string> destripe = striped ? std::vector<std::string>{"--destripe", "wavelet", "--sigma1", "24",
                                                                               "--sigma2", "24", "--wavelet-level", "3"}
                                                    : std::vector<std::string>{};
  Client client(stack.manager());
  auto raw_before = client.ReadTile({.slide = uneven, .tile = 7});
  ASSERT_TRUE(raw_before.ok());
  // The evenly lit scan without stripes, destriped as the uneven one will be: the reference (the
  // filter changes a little content too; what is compared is what the corrections do).
  std::vector<std::string> ref_args{"stitch", clean, "--server", stack.manager()};
  ref_args.insert(ref_args.end(), destripe.begin(), destripe.end());
  auto reference = RunTessera(ref_args);
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  ASSERT_FALSE(Stitch(stack, uneven).is_null());
  // The mosaic's inside, away from its outer edges (where one field alone covers it).
  const int64_t x0 = 64, y0 = 64, w = 4 * 230 - 64, h = 4 * 230 - 64;
  const auto truth = BlockMeans(client, clean, x0, y0, w, h);
  const double uncorrected = RelativeRms(BlockMeans(client, uneven, x0, y0, w, h), truth);
  // The synthetic camera's offset is 100, as a user reads it off the camera's data sheet.
  std::vector<std::string> args{"stitch", uneven, "--flat-field", "--normalize", "--dark", "100", "--json", "--server",
                                stack.manager()};
  args.insert(args.end(), destripe.begin(), destripe.end());
  auto corrected_run = RunTessera(args);
  ASSERT_EQ(corrected_run.exit_code, 0) << corrected_run.err;
  const double corrected = RelativeRms(BlockMeans(client, uneven, x0, y0, w, h), truth);
  EXPECT_GT(uncorrected, 0.05);
  EXPECT_LT(corrected, max_fused) << "uncorrected " << uncorrected;
  // The corrections are the slide's, listed by info; the raw fields are as the camera gave them.
  auto info = RunTessera({"info", uneven, "--json", "--server", stack.manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  ASSERT_EQ(j["corrections"].size(), 1u) << info.out;
  EXPECT_TRUE(j["corrections"][0].contains("flat_field"));
  EXPECT_EQ(j["corrections"][0]["tile_gains"]["count"], 25);
  const synth::SyntheticMosaic truth_mosaic({.cols = 5, .rows = 5, .width = 256, .height = 256, .channels = 1, .seed = 3,
                                             .background = 0.3, .gain_spread = 0.15, .stripes = striped ? 0.3 : 0});
  double log_mean = 0, solved_log_mean = 0;
  for (uint32_t t = 0; t < 25; ++t) {
    log_mean += std::log(truth_mosaic.TrueGain(t)) / 25;
    solved_log_mean += std::log(j["tiles"][t]["gains"]["0"].get<double>()) / 25;
  }
  for (uint32_t t = 0; t < 25; ++t) {
    const double solved = j["tiles"][t]["gains"]["0"].get<double>() / std::exp(solved_log_mean);
    // Within 3 % end to end, the flat field estimated from 25 fields (1 % with the true one:
    // common/correct/gains_test.cc).
    EXPECT_NEAR(solved, truth_mosaic.TrueGain(t) / std::exp(log_mean), max_gain) << "tile " << t;
  }
  // A reader (the same client as before the stitch) asks for corrected pixels of the raw view:
  // the centre field then matches the evenly lit scan's, where its raw pixels do not.
  auto means = [](const Array& a) {
    std::vector<double> out;
    const auto v = a.values<uint16_t>();
    for (int64_t by = 0; by + 32 <= a.shape[2]; by += 32) {
      for (int64_t bx = 0; bx + 32 <= a.shape[3]; bx += 32) {
        double sum = 0;
        for (int64_t y = by; y < by + 32; ++y) {
          for (int64_t x = bx; x < bx + 32; ++x) sum += v[static_cast<size_t>(y * a.shape[3] + x)];
        }
        out.push_back(sum / 1024);
      }
    }
    return out;
  };
  auto even = client.ReadTile({.slide = clean, .tile = 12});
  auto raw = client.ReadTile({.slide = uneven, .tile = 12});
  auto fixed = client.ReadTile({.slide = uneven, .tile = 12, .corrected = true});
  ASSERT_TRUE(even.ok() && raw.ok() && fixed.ok());
  EXPECT_GT(RelativeRms(means(*raw), means(*even)), 0.04);
  EXPECT_LT(RelativeRms(means(*fixed), means(*even)), 0.02);
  auto region = client.ReadRegion({.slide = uneven, .level = 1, .x = 0, .y = 0, .width = 300, .height = 300, .corrected = true});
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  auto raw_after = client.ReadTile({.slide = uneven, .tile = 7});
  ASSERT_TRUE(raw_after.ok());
  EXPECT_EQ(raw_after->data, raw_before->data);
}

TEST_F(StitchTest, AVignettedUnevenlyExposedScanFusesFlatWithCorrectionsAndItsRawStaysRaw) {
  CorrectionsScenario(*stack_, /*striped=*/false, 0.02, 0.03);
}

// The whole case: with stripes too, destriped (the flat field divided out of the raw
// planes first, three wavelet levels), fused with the flat field and the gains.
TEST_F(StitchTest, AVignettedStripedUnevenlyExposedScanFusesFlatWhenDestripedWithItsCorrections) {
  CorrectionsScenario(*stack_, /*striped=*/true, 0.02, 0.03);
}

TEST_F(StitchTest, ADestripedStitchMakesEveryPlanesDestripedViewAndFusesIt) {
  auto scan = [&](const char* stripes) {
    auto r = RunTessera({"scan", "--synthetic", "--no-stitch", "--cols", "2", "--rows", "2", "--width", "256", "--height",
                         "256", "--channels", "1", "--background", "0.3", "--seed", "5", "--no-vignetting", "--stripes",
                         stripes, "--server", stack_->manager()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.LastLine();
  };
  const std::string clean = scan("0"), striped = scan("0.5");
  // Options out of range are refused before anything starts, naming the option.
  auto bad = RunTessera({"stitch", striped, "--destripe", "wavelet", "--sigma1", "-3", "--server", stack_->manager()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("sigma_foreground"), std::string::npos) << bad.err;
  auto run = RunTessera({"stitch", striped, "--destripe", "wavelet", "--sigma1", "24", "--sigma2", "24", "--json",
                         "--server", stack_->manager()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  Client client(stack_->manager());
  const correct::DestripeOptions o{.sigma_foreground = 24, .sigma_background = 24};
  // Stripes: each row's mean log ratio to the stripe-free scan, less that of the rows 3 away.
  auto stripes = [](const Array& a, const Array& truth) {
    const auto v = a.values<uint16_t>(), t = truth.values<uint16_t>();
    std::vector<double> m(static_cast<size_t>(a.shape[2]), 0.0);
    for (int64_t y = 0; y < a.shape[2]; ++y) {
      for (int64_t x = 0; x < a.shape[3]; ++x) {
        const auto i = static_cast<size_t>(y * a.shape[3] + x);
        m[static_cast<size_t>(y)] += std::log1p(static_cast<double>(v[i])) - std::log1p(static_cast<double>(t[i]));
      }
    }
    double sum = 0;
    for (size_t y = 3; y + 3 < m.size(); ++y) sum += std::pow((m[y] - (m[y - 3] + m[y + 3]) / 2) / static_cast<double>(a.shape[3]), 2);
    return std::sqrt(sum / static_cast<double>(m.size() - 6));
  };
  for (uint32_t t = 0; t < 4; ++t) {
    auto raw = client.ReadTile({.slide = striped, .tile = t});
    auto view = client.ReadTile({.slide = striped + ":destriped", .tile = t});
    auto truth = client.ReadTile({.slide = clean, .tile = t});
    ASSERT_TRUE(raw.ok() && view.ok() && truth.ok()) << view.status().ToString();
    // The view is the library's destriping of the raw plane, to the bit; the raw plane is untouched.
    std::vector<uint16_t> want(static_cast<size_t>(256 * 256));
    const auto px = raw->values<uint16_t>();
    ASSERT_TRUE(correct::Destripe({px.data(), 256, 256, 0}, o, want).ok());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), view->values<uint16_t>().begin())) << "tile " << t;
    EXPECT_LT(stripes(*view, *truth), 0.4 * stripes(*raw, *truth)) << "tile " << t;  // 3.3-5.7x less
  }
  // Registered and fused from the destriped view.
  auto fused = client.Describe(striped + ":fused");
  ASSERT_TRUE(fused.ok()) << fused.status().ToString();
  auto info = RunTessera({"info", striped + ":destriped", "--json", "--server", stack_->manager()});
  ASSERT_EQ(info.exit_code, 0) << info.err;
}

}  // namespace
}  // namespace tessera::testing
