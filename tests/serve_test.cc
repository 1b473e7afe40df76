// The tile dealer and the client library, end to end: real `tessera up`, real slides.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "client/client.h"
#include "common/codec/codec.h"
#include "client/scanner.h"
#include "common/imageio/tiff.h"
#include "common/pyramid/pyramid.h"
#include "common/synth/synthetic_mosaic.h"
#include "common/wire/rpc.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {

const std::string kMist = "../shared/data/mist-5x5";

std::string ScanMist(const Stack& stack) {
  auto scan = RunTessera({"scan", "--tile-config", kMist + "/TileConfiguration.txt", "--server", stack.manager()});
  EXPECT_EQ(scan.exit_code, 0) << scan.err;
  return scan.LastLine();
}

// Scans every frame of `mosaic` in chunks of `chunk` pixels a side, and closes the slide: its id.
std::string ScanWhole(const Stack& stack, const synth::SyntheticMosaic& mosaic, uint32_t chunk) {
  ScanPlan plan = mosaic.plan();
  plan.chunk_x = plan.chunk_y = chunk;
  auto scanner = Scanner::Open(stack.manager(), plan);
  EXPECT_TRUE(scanner.ok()) << scanner.status().ToString();
  if (!scanner.ok()) return "";
  std::vector<uint8_t> pixels(plan.frame_bytes());
  for (uint64_t f = 0; f < plan.frame_count(); ++f) {
    mosaic.RenderFrame(plan.KeyOf(f), pixels);
    EXPECT_TRUE((*scanner)->Push(plan.KeyOf(f), pixels).ok());
  }
  EXPECT_TRUE((*scanner)->Close().ok());
  return (*scanner)->slide_id();
}

std::vector<uint8_t> TiffPixels(const std::string& path) {
  auto image = imageio::ReadTiff(path);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  return image.ok() ? image->pixels : std::vector<uint8_t>{};
}

TEST(ServeTest, MistTileTwelveIsItsTiffAtLevelZeroAndItsMeanAtLevelOne) {
  Stack stack;
  const std::string id = ScanMist(stack);
  const std::string dir = FreshDir("get");
  auto l0 = RunTessera({"get", id, "--tile", "12", "--level", "0", "-o", dir + "/l0.tif", "--server", stack.manager()});
  ASSERT_EQ(l0.exit_code, 0) << l0.err;
  const auto original = TiffPixels(kMist + "/ImageName_t01_p13.tif");
  EXPECT_EQ(TiffPixels(dir + "/l0.tif"), original);
  // The same pixels as the one stored chunk, exactly as stored.
  Client client(stack.manager());
  auto chunk = client.ReadChunk(id, {{12, 0, 0}, 0, 0, 0});
  ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
  EXPECT_EQ(chunk->xxh64, codec::Checksum(chunk->bytes));
  std::vector<uint8_t> decoded(original.size());
  ASSERT_TRUE(codec::Decompress(chunk->bytes, decoded).ok());
  EXPECT_EQ(decoded, original);
  EXPECT_EQ(client.ReadChunk(id, {{12, 0, 0}, 0, 1, 0}).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(client.ReadChunk(id, {{25, 0, 0}, 0, 0, 0}).status().code(), StatusCode::kOutOfRange);

  auto l1 = RunTessera({"get", id, "--tile", "12", "--level", "1", "-o", dir + "/l1.tif", "--server", stack.manager()});
  ASSERT_EQ(l1.exit_code, 0) << l1.err;
  const LevelShape s{.width = 245, .height = 183, .chunk_y = 183, .chunk_x = 245};
  std::vector<uint8_t> mean(size_t{123} * 92 * 2);
  pyramid::Downsample2x(original, s, Dtype::kUint16, mean);
  EXPECT_EQ(TiffPixels(dir + "/l1.tif"), mean);
}

TEST(ServeTest, ARegionInsideTileTwelveIsThatTilesPixelsAtItsPosition) {
  Stack stack;
  const std::string id = ScanMist(stack);
  Client client(stack.manager());
  auto info = client.Info(id);
  ASSERT_TRUE(info.ok());
  const auto& t12 = info->plan.tiles[12];
  // Inside tile 12 and clear of its higher-index neighbours (17 to the right, 13 below).
  auto region = client.ReadRegion({.slide = id, .level = 0, .x = static_cast<int64_t>(t12.x) + 6,
                                   .y = static_cast<int64_t>(t12.y) + 4, .width = 120, .height = 90});
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  EXPECT_FALSE(region->clipped);
  ASSERT_EQ(region->shape, (std::array<int64_t, 4>{1, 1, 90, 120}));
  const auto original = TiffPixels(kMist + "/ImageName_t01_p13.tif");
  const auto px = region->values<uint16_t>();
  for (int64_t y = 0; y < 90; ++y)
    for (int64_t x = 0; x < 120; ++x) {
      uint16_t want;
      std::memcpy(&want, original.data() + ((y + 4) * 245 + (x + 6)) * 2, 2);
      ASSERT_EQ(px[region->index(0, 0, y, x)], want) << "at " << x << "," << y;
    }
}

TEST(ServeTest, BadRequestsGetSpecificErrorsAndTheDealerKeepsServing) {
  Stack stack;
  const std::string id = ScanMist(stack);
  Client client(stack.manager(), ClientOptions{.max_region_bytes = 64 << 20});
  EXPECT_EQ(client.ReadTile({.slide = "s999999", .tile = 0}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client.ReadTile({.slide = id, .tile = 25}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client.ReadTile({.slide = id, .tile = 0, .level = 9}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(client.ReadTile({.slide = id, .tile = 0, .channels = {3}}).status().code(), StatusCode::kNotFound);
  auto outside = client.ReadRegion({.slide = id, .x = 5000, .y = 5000, .width = 10, .height = 10});
  EXPECT_EQ(outside.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(outside.status().message().find("wholly outside"), std::string::npos);
  auto empty = client.ReadRegion({.slide = id, .x = 0, .y = 0, .width = 0, .height = 10});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);

  // Partly outside: clipped to the mosaic, and said so.
  auto partly = client.ReadRegion({.slide = id, .level = 1, .x = -50, .y = -50, .width = 100, .height = 100});
  ASSERT_TRUE(partly.ok()) << partly.status().ToString();
  EXPECT_TRUE(partly->clipped);
  EXPECT_EQ(partly->x, 0);
  EXPECT_EQ(partly->shape[2], 50);

  // Absurd: a billion pixels square is clipped to the slide; at a client limit it is refused.
  auto huge = client.ReadRegion({.slide = id, .level = 2, .x = 0, .y = 0, .width = 1'000'000'000, .height = 1'000'000'000});
  ASSERT_TRUE(huge.ok()) << huge.status().ToString();
  EXPECT_LT(huge->shape[3], 400);
  Client small(stack.manager(), ClientOptions{.max_region_bytes = 1000});
  EXPECT_EQ(small.ReadRegion({.slide = id, .x = 0, .y = 0, .width = 500, .height = 500}).status().code(),
            StatusCode::kResourceExhausted);

  // Malformed bytes, a wrong version and an empty request, straight to the dealer's socket.
  auto eps = client.Endpoints();
  ASSERT_TRUE(eps.ok());
  const std::string dealer = (*eps)["dealer"];
  proto::DealerRequest wrong;
  wrong.set_version(99);
  wrong.mutable_list_slides();
  for (auto [request, code] : {std::pair{&wrong, proto::VERSION_MISMATCH}}) {
    auto r = wire::Call(dealer, *request, 5000);
    ASSERT_TRUE(r.ok());
    proto::DealerReply reply;
    ASSERT_TRUE(reply.ParseFromArray(r->header.data(), static_cast<int>(r->header.size())));
    EXPECT_EQ(reply.status().code(), code);
  }
  {
    zmq::socket_t s = wire::MakeSocket(zmq::socket_type::dealer);
    EXPECT_TRUE(wire::Connect(s, dealer).ok());
    s.send(zmq::str_buffer("\xff\xfe garbage"), zmq::send_flags::none);
    auto r = wire::Receive(s, 5000);
    ASSERT_TRUE(r);
    proto::DealerReply reply;
    ASSERT_TRUE(reply.ParseFromArray(r->header.data(), static_cast<int>(r->header.size())));
    EXPECT_EQ(reply.status().code(), proto::INVALID_ARGUMENT);
  }
  proto::DealerRequest none;
  none.set_version(wire::kProtocolVersion);
  auto r = wire::Call(dealer, none, 5000);
  ASSERT_TRUE(r.ok());
  proto::DealerReply reply;
  ASSERT_TRUE(reply.ParseFromArray(r->header.data(), static_cast<int>(r->header.size())));
  EXPECT_EQ(reply.status().code(), proto::INVALID_ARGUMENT);

  EXPECT_TRUE(client.ReadTile({.slide = id, .tile = 3}).ok());  // still serving
}

TEST(ServeTest, ACorruptChunkOnDiskIsNamedAndTheRestStillServes) {
  Stack stack;
  const std::string id = ScanMist(stack);
  Client client(stack.manager());
  auto info = client.Info(id);
  ASSERT_TRUE(info.ok());
  auto damage = RunProgram({"/usr/bin/python3", "tests/corrupt_chunk.py", info->path, "7", "0", "0"});
  ASSERT_EQ(damage.exit_code, 0) << damage.err;
  auto bad = client.ReadTile({.slide = id, .tile = 7});
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("t=7"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("checksum"), std::string::npos) << bad.status().message();
  EXPECT_TRUE(client.ReadTile({.slide = id, .tile = 8}).ok());
  EXPECT_TRUE(client.ReadTile({.slide = id, .tile = 7, .level = 1}).ok());  // its levels are intact
}

TEST(ServeTest, ClientsThatVanishMidRequestDoNotHurtTheDealer) {
  Stack stack;
  const std::string id = ScanMist(stack);
  Client client(stack.manager());
  auto eps = client.Endpoints();
  ASSERT_TRUE(eps.ok());
  proto::DealerRequest req;
  req.set_version(wire::kProtocolVersion);
  auto* rc = req.mutable_read_chunks();
  rc->set_slide_id(id);
  for (uint32_t t = 0; t < 25; ++t) rc->add_chunks()->set_t(t);
  // A thousand clients connect, ask for every tile and leave without reading the answer.
  for (int i = 0; i < 1000; ++i) {
    zmq::socket_t s = wire::MakeSocket(zmq::socket_type::dealer);
    EXPECT_TRUE(wire::Connect(s, (*eps)["dealer"]).ok());
    ASSERT_TRUE(wire::Send(s, nullptr, req));
  }
  auto all = client.ReadRegion({.slide = id, .x = 0, .y = 0, .width = 1173, .height = 871});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->missing_chunks, 0u);
}

TEST(ServeTest, TheDealerRefusesRequestsOutOfBoundsBeforeReadingAnything) {
  Stack stack;
  const std::string id = ScanMist(stack);
  auto eps = Client(stack.manager()).Endpoints();
  ASSERT_TRUE(eps.ok());
  const std::string dealer = (*eps)["dealer"];
  auto code = [&](const proto::DealerRequest& req) {
    return wire::Ask<proto::DealerReply>(dealer, req, 5000).status().code();
  };
  proto::DealerRequest many;
  many.mutable_read_chunks()->set_slide_id(id);
  for (int i = 0; i < 65; ++i) many.mutable_read_chunks()->add_chunks();
  EXPECT_EQ(code(many), StatusCode::kInvalidArgument);
  proto::DealerRequest far;
  far.mutable_plan_region()->set_slide_id(id);
  auto* box = far.mutable_plan_region()->mutable_box();
  box->set_x(int64_t{1} << 62), box->set_y(0), box->set_w(int64_t{1} << 62), box->set_h(10);
  EXPECT_EQ(code(far), StatusCode::kOutOfRange);
  box->set_x(0), box->set_w(0);
  EXPECT_EQ(code(far), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(proto::DealerRequest()), StatusCode::kInvalidArgument);
  proto::DealerRequest list;
  list.mutable_list_slides();
  EXPECT_TRUE(wire::Ask<proto::DealerReply>(dealer, list, 5000).ok());
}

TEST(ServeTest, AReaderKilledMidRegionDoesNotHurtTheDealer) {
  Stack stack;
  auto scan = RunTessera({"scan", "--synthetic", "--cols", "6", "--rows", "4", "--width", "1024", "--height", "1024",
                          "--channels", "2", "--server", stack.manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  const std::string id = scan.LastLine();
  const pid_t dealer = stack.RolePids("dealer").at(0);
  // The whole mosaic at level 0 (85 MB): the reader is killed once answers flow into it (its
  // memory grows as the chunks are decoded into the region).
  const pid_t reader = StartTessera({"get", id, "--region", "0,0,6144,4096", "-o", stack.data_dir() + "/all.tif"},
                                    stack.data_dir() + "/get.log");
  ASSERT_GT(reader, 0);
  EXPECT_TRUE(WaitFor([&] { return ResidentBytes(reader) > (48 << 20) || ResidentBytes(reader) == 0; }));
  ASSERT_EQ(::kill(reader, SIGKILL), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(reader, &st, 0), reader);
  EXPECT_TRUE(WIFSIGNALED(st)) << "the read ended before it could be abandoned: make the region larger";
  // The dealer lives on, and serves the next reader the whole region.
  EXPECT_EQ(stack.RolePids("dealer").at(0), dealer);
  Client client(stack.manager());
  auto all = client.ReadRegion({.slide = id, .level = 1, .x = 0, .y = 0, .width = 3072, .height = 2048});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->missing_chunks, 0u);
  auto again = RunTessera({"get", id, "--region", "0,0,6144,4096", "-o", stack.data_dir() + "/all.tif"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

// A client on the dealer's host reads the slide's file itself (ClientOptions::local_files, the
// default): the very pixels the dealer serves, for tiles and regions at every level, and for a
// live slide the frames that land after it opened the file.
TEST(ServeTest, AClientOnTheDealersHostReadsTheFileItselfAndGetsWhatTheDealerServes) {
  Stack stack;
  const std::string id = ScanMist(stack);
  Client local(stack.manager());
  Client remote(stack.manager(), ClientOptions{.local_files = false});
  for (uint32_t level : {0u, 1u, 2u}) {
    SCOPED_TRACE(level);
    const RegionRequest box{.slide = id, .level = level, .x = 100 >> level, .y = 80 >> level,
                            .width = 700 >> level, .height = 500 >> level};
    auto mine = local.ReadRegion(box), theirs = remote.ReadRegion(box);
    ASSERT_TRUE(mine.ok()) << mine.status().ToString();
    ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
    EXPECT_TRUE(mine->local);
    EXPECT_FALSE(theirs->local);
    EXPECT_EQ(mine->shape, theirs->shape);
    EXPECT_EQ(mine->chunks_read, theirs->chunks_read);
    EXPECT_TRUE(mine->data == theirs->data) << "the region differs from the dealer's";
    auto tile = local.ReadTile({.slide = id, .tile = 7, .level = level});
    auto served = remote.ReadTile({.slide = id, .tile = 7, .level = level});
    ASSERT_TRUE(tile.ok() && served.ok());
    EXPECT_TRUE(tile->local);
    EXPECT_TRUE(tile->data == served->data);
  }
  // A window of exactly one chunk (a viewer's tile), which is decoded straight into the output.
  const LevelShape s = Client(stack.manager()).Info(id)->plan.Level(0);
  const TileRequest window{.slide = id, .tile = 7, .x = 0, .y = 0, .width = s.chunk_x, .height = s.chunk_y};
  auto mine = local.ReadTile(window), theirs = remote.ReadTile(window);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  EXPECT_EQ(mine->chunks_read, 1u);
  EXPECT_TRUE(mine->data == theirs->data);

  // Reads into an Array that held other pixels reuse its buffer and give what a fresh read
  // gives: the pixels no tile covers are cleared, a tile's every pixel is written.
  for (Client* client : {&local, &remote}) {
    const RegionRequest whole{.slide = id, .level = 2, .x = 0, .y = 0, .width = 100000, .height = 100000};
    auto fresh = client->ReadRegion(whole);
    ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
    ASSERT_GT(std::count(fresh->data.begin(), fresh->data.end(), uint8_t{0}), 0) << "no pixel left uncovered";
    Array reused;
    reused.data.assign(fresh->data.size() + 4096, 0xab);
    reused.clipped = false, reused.missing_chunks = 7;
    ASSERT_TRUE(client->ReadRegion(whole, reused).ok());
    EXPECT_EQ(reused.shape, fresh->shape);
    EXPECT_TRUE(reused.data == fresh->data) << "a reused region buffer kept old bytes";
    EXPECT_TRUE(reused.clipped);
    EXPECT_EQ(reused.missing_chunks, 0u);
    auto tile = client->ReadTile({.slide = id, .tile = 3, .level = 1});
    std::fill(reused.data.begin(), reused.data.end(), uint8_t{0xcd});
    ASSERT_TRUE(client->ReadTile({.slide = id, .tile = 3, .level = 1}, reused).ok());
    ASSERT_TRUE(tile.ok());
    EXPECT_TRUE(reused.data == tile->data) << "a reused tile buffer kept old bytes";
    EXPECT_EQ(reused.local, client == &local);
  }

  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 1, o.width = 256, o.height = 256, o.channels = 1;
  synth::SyntheticMosaic mosaic(o);
  auto scanner = Scanner::Open(stack.manager(), mosaic.plan());
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  const std::string live = (*scanner)->slide_id();
  const ScanPlan& plan = (*scanner)->plan();
  std::vector<uint8_t> pixels(plan.frame_bytes());
  // Tile 0 read while the scan runs; tile 1 lands just before the close and is read after it
  // by the same client, which opened the file while it was written.
  for (uint32_t t = 0; t < 2; ++t) {
    mosaic.RenderFrame({t, 0, 0}, pixels);
    ASSERT_TRUE((*scanner)->Push({t, 0, 0}, pixels).ok());
    ASSERT_TRUE((*scanner)->Flush().ok());
    if (t == 1) {
      ASSERT_TRUE((*scanner)->Close().ok());
    }
    Result<Array> got = Status(StatusCode::kNotFound, "not read");
    EXPECT_TRUE(WaitFor([&] {
      got = local.ReadTile({.slide = live, .tile = t});
      return got.ok();
    }, 10000)) << "tile " << t << " of the live slide: " << got.status().ToString();
    ASSERT_TRUE(got.ok());
    EXPECT_TRUE(got->local);
    EXPECT_TRUE(got->data == pixels) << "tile " << t;
    if (t == 0) {
      // A box inside tile 1, which has not landed, read into a buffer full of other bytes: the
      // box is covered by the plan's copies (so it is not cleared first), and the missing
      // chunks' pixels are 0 all the same.
      auto where = local.Describe(live);
      ASSERT_TRUE(where.ok());
      const auto& p1 = where->positions[1];
      const RegionRequest inside{.slide = live, .x = static_cast<int64_t>(p1[0]) + 100,
                                 .y = static_cast<int64_t>(p1[1]) + 10, .width = 50, .height = 50};
      for (Client* client : {&local, &remote}) {
        Array reused;
        reused.data.assign(50 * 50 * 2, 0xab);
        ASSERT_TRUE(client->ReadRegion(inside, reused).ok());
        EXPECT_GT(reused.missing_chunks, 0u);
        EXPECT_EQ(std::count(reused.data.begin(), reused.data.end(), uint8_t{0}), 50 * 50 * 2)
            << "a missing chunk's pixels kept old bytes";
      }
    }
    // Another client of the same process shares the file's one handle, and sees the same.
    Client other(stack.manager());
    auto again = other.ReadTile({.slide = live, .tile = t});
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(again->data == pixels) << "tile " << t << " through a second client";
  }
}

TEST(ServeTest, ADecodedChunkCacheGivesTheSamePixelsForEveryChannelLocalOrNot) {
  Stack stack;
  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 2, o.width = 512, o.height = 384, o.channels = 2;
  synth::SyntheticMosaic mosaic(o);
  const std::string id = ScanWhole(stack, mosaic, 128);  // tiles cut many chunks, shared by neighbouring boxes
  ASSERT_FALSE(id.empty());
  Client plain(stack.manager(), ClientOptions{.local_files = false});
  // Local and through the dealer; a cache small enough to evict as it goes, and a large one.
  for (bool local : {true, false}) {
    for (uint64_t bytes : {uint64_t{200} << 10, uint64_t{64} << 20}) {
      SCOPED_TRACE(::testing::Message() << "local " << local << ", cache " << bytes);
      Client cached(stack.manager(), ClientOptions{.local_files = local, .decoded_cache_bytes = bytes});
      for (int round = 0; round < 2; ++round) {  // the second from the cache
        for (uint32_t level : {0u, 1u}) {
          for (int64_t x : {0, 100, 300}) {
            const RegionRequest box{.slide = id, .level = level, .x = x >> level, .y = 50 >> level,
                                    .width = 400 >> level, .height = 300 >> level};
            auto want = plain.ReadRegion(box);
            auto got = cached.ReadRegion(box);
            ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
            EXPECT_EQ(got->local, local);
            EXPECT_EQ(got->shape[0], 2);
            EXPECT_TRUE(got->data == want->data) << "round " << round << " level " << level << " x " << x;
          }
        }
        auto tile = cached.ReadTile({.slide = id, .tile = 3, .channels = {1}});
        auto served = plain.ReadTile({.slide = id, .tile = 3, .channels = {1}});
        ASSERT_TRUE(tile.ok() && served.ok());
        EXPECT_TRUE(tile->data == served->data) << "round " << round;
      }
    }
  }
}

TEST(ServeTest, TilesOfAnAcquiringSlideAreServedAsTheyLandAtEveryLevel) {
  Stack stack;
  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 2, o.width = 300, o.height = 200, o.channels = 2;
  synth::SyntheticMosaic mosaic(o);
  auto scanner = Scanner::Open(stack.manager(), mosaic.plan());
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  const std::string id = (*scanner)->slide_id();
  const ScanPlan& plan = (*scanner)->plan();

  Client client(stack.manager());
  std::mutex mu;
  std::condition_variable cv;
  std::set<uint64_t> with_levels;
  auto sub = client.Subscribe(id, [&](const LandedEvent& e) {
    std::lock_guard lock(mu);
    with_levels.insert(e.levels.begin(), e.levels.end());
    cv.notify_all();
  });
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  // A subscription takes hold a moment after Subscribe returns (PUB/SUB); events before
  // that are not seen. Frames pushed one by one, each waited for, reach it soon.
  std::vector<uint8_t> pixels(plan.frame_bytes());
  const uint64_t frames = plan.frame_count();
  for (uint64_t f = 0; f < frames; ++f) {
    mosaic.RenderFrame(plan.KeyOf(f), pixels);
    ASSERT_TRUE((*scanner)->Push(plan.KeyOf(f), pixels).ok());
    ASSERT_TRUE((*scanner)->Flush().ok());
    std::unique_lock lock(mu);
    const auto wait = f + 1 == frames ? std::chrono::seconds(20) : std::chrono::seconds(1);
    const bool seen = cv.wait_for(lock, wait, [&] { return with_levels.contains(f); });
    if (f + 1 == frames) {
      ASSERT_TRUE(seen) << "no event for the last frame";
    }
  }
  auto info = client.Describe(id);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->live);
  // The slide is still acquiring: tile 3 at level 0 equals what was pushed, and level 1 is its mean.
  auto tile = client.ReadTile({.slide = id, .tile = 3, .channels = {1}});
  ASSERT_TRUE(tile.ok()) << tile.status().ToString();
  mosaic.RenderFrame({3, 1, 0}, pixels);
  EXPECT_EQ(tile->data, pixels);
  auto half = client.ReadTile({.slide = id, .tile = 3, .level = 1, .channels = {1}});
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  std::vector<uint8_t> mean(pyramid::LevelBytes(plan.Level(1), plan.dtype));
  pyramid::Downsample2x(pixels, plan.Level(0), plan.dtype, mean);
  EXPECT_EQ(half->data, mean);
  ASSERT_TRUE((*scanner)->Close().ok());
}

// The dealer reads a live slide in SWMR mode; once its writer closes the file it reopens it.
// The frames that landed between its last look and the close must be served too.
TEST(ServeTest, FramesThatLandJustBeforeTheCloseAreServedAfterIt) {
  Stack stack;
  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 2, o.width = 300, o.height = 200, o.channels = 2;
  synth::SyntheticMosaic mosaic(o);
  auto scanner = Scanner::Open(stack.manager(), mosaic.plan());
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  const std::string id = (*scanner)->slide_id();
  const ScanPlan& plan = (*scanner)->plan();
  Client client(stack.manager());
  std::vector<uint8_t> pixels(plan.frame_bytes());
  const uint64_t frames = plan.frame_count();
  for (uint64_t f = 0; f + 1 < frames; ++f) {
    mosaic.RenderFrame(plan.KeyOf(f), pixels);
    ASSERT_TRUE((*scanner)->Push(plan.KeyOf(f), pixels).ok());
  }
  ASSERT_TRUE((*scanner)->Flush().ok());
  ASSERT_TRUE(client.ReadTile({.slide = id, .tile = 0}).ok());  // the dealer opens the live file
  mosaic.RenderFrame(plan.KeyOf(frames - 1), pixels);
  ASSERT_TRUE((*scanner)->Push(plan.KeyOf(frames - 1), pixels).ok());
  ASSERT_TRUE((*scanner)->Close().ok());
  // Closed: the next requests see the closed file. Every chunk of every level is there.
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto view = client.Describe(id);
    ASSERT_TRUE(view.ok());
    if (!view->live) break;
    std::this_thread::yield();
  }
  for (uint32_t t = 0; t < plan.tiles.size(); ++t) {
    for (uint32_t level = 0; level < plan.level_count(); ++level) {
      auto tile = client.ReadTile({.slide = id, .tile = t, .level = level});
      EXPECT_TRUE(tile.ok()) << "tile " << t << " level " << level << ": " << tile.status().ToString();
    }
  }
}

TEST(ServeTest, ATileWindowReadsOnlyTheChunksUnderIt) {
  Stack stack;
  synth::SyntheticOptions o;
  o.cols = 2, o.rows = 1, o.width = 300, o.height = 200, o.channels = 1;
  synth::SyntheticMosaic mosaic(o);
  const std::string id = ScanWhole(stack, mosaic, 64);  // 5 x 4 chunks, the last ones partial
  ASSERT_FALSE(id.empty());
  std::vector<uint8_t> pixels(mosaic.plan().frame_bytes());
  mosaic.RenderFrame({1, 0, 0}, pixels);
  Client client(stack.manager());

  struct Window {
    int64_t x, y, w, h;
    uint64_t chunks;
  };
  for (const Window& win : {Window{64, 128, 64, 64, 1}, Window{0, 0, 300, 200, 20}, Window{256, 192, 44, 8, 1}, Window{250, 190, 50, 10, 4},
                            Window{63, 10, 2, 120, 6}}) {
    auto a = client.ReadTile({.slide = id, .tile = 1, .x = win.x, .y = win.y, .width = win.w, .height = win.h});
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_EQ(a->shape, (std::array<int64_t, 4>{1, 1, win.h, win.w}));
    EXPECT_EQ(a->x, win.x);
    EXPECT_EQ(a->chunks_read, win.chunks) << win.x << "," << win.y;
    const auto px = a->values<uint16_t>();
    for (int64_t y = 0; y < win.h; ++y)
      for (int64_t x = 0; x < win.w; ++x) {
        uint16_t want;
        std::memcpy(&want, pixels.data() + ((win.y + y) * 300 + win.x + x) * 2, 2);
        ASSERT_EQ(px[a->index(0, 0, y, x)], want) << "at " << x << "," << y;
      }
  }
  for (const Window& bad : {Window{290, 0, 20, 10, 0}, Window{-1, 0, 10, 10, 0}, Window{0, 0, 0, 10, 0}}) {
    auto a = client.ReadTile({.slide = id, .tile = 1, .x = bad.x, .y = bad.y, .width = bad.w, .height = bad.h});
    EXPECT_EQ(a.status().code(), StatusCode::kOutOfRange) << bad.x << "," << bad.w;
  }
}

}  // namespace
}  // namespace tessera::testing

namespace tessera::testing {
namespace {

TEST(ServeTest, ExampleProgramReadsTheWholeMosaic) {
  Stack stack;
  const std::string id = ScanMist(stack);
  const auto example = std::filesystem::path(TesseraBin()).parent_path().parent_path() / "client" / "examples" / "read_region";
  auto run = RunProgram({example.string(), stack.manager(), id, "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("level 1: 587 x 436 px"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("brightest"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace tessera::testing
