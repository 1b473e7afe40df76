#include "common/plan/scan_plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

namespace tessera {
namespace {

ScanPlan TwoByThree() {
  ScanPlan p;
  p.name = "demo";
  p.width = 1000;
  p.height = 600;
  p.channels = {"DAPI", "GFP", "Cy5"};
  p.z_planes = 4;
  for (int i = 0; i < 6; ++i) p.tiles.push_back({.name = "t" + std::to_string(i), .x = i * 900.0});
  p.header_json = R"({"objective": "20x"})";
  return p;
}

TEST(ScanPlanTest, FrameIndexRoundTripsInScanOrder) {
  ScanPlan p = TwoByThree();
  EXPECT_EQ(p.frame_count(), 6u * 3 * 4);
  uint64_t expected = 0;
  for (uint32_t t = 0; t < 6; ++t)
    for (uint32_t c = 0; c < 3; ++c)
      for (uint32_t z = 0; z < 4; ++z) {
        FrameKey k{t, c, z};
        EXPECT_EQ(p.FrameIndex(k), expected);
        EXPECT_EQ(p.KeyOf(expected), k);
        ++expected;
      }
}

TEST(ScanPlanTest, ChunkGridCoversTheFrameWithPaddedEdges) {
  ScanPlan p = TwoByThree();
  EXPECT_EQ(p.chunks_x(), 2u);
  EXPECT_EQ(p.chunks_y(), 2u);
  EXPECT_EQ(p.chunk_bytes(), 512u * 512 * 2);
}

TEST(ScanPlanTest, ValidateNamesTheProblem) {
  ScanPlan p = TwoByThree();
  EXPECT_TRUE(p.Validate().ok());
  p.header_json = "{not json";
  EXPECT_EQ(p.Validate().message(), "header is not valid JSON");
  p = TwoByThree();
  p.tiles[3].name = "t0";
  EXPECT_EQ(p.Validate().message(), "tile name 't0' appears twice in the scan plan");
  p = TwoByThree();
  p.tiles.clear();
  EXPECT_EQ(p.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(ScanPlanTest, CheckKeyRejectsFramesOutsideThePlan) {
  ScanPlan p = TwoByThree();
  EXPECT_TRUE(p.CheckKey({5, 2, 3}).ok());
  EXPECT_EQ(p.CheckKey({6, 0, 0}).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(p.CheckKey({0, 3, 0}).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(p.CheckKey({0, 0, 4}).code(), StatusCode::kOutOfRange);
}

TEST(ScanPlanTest, JsonRoundTripKeepsEverything) {
  ScanPlan p = TwoByThree();
  p.dtype = Dtype::kUint8;
  p.codec.compressor = codec::Compressor::kZstd;
  p.pixel_size_um = {0.65, 0.65, 2.0};
  auto back = PlanFromJson(PlanToJson(p));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->channels, p.channels);
  EXPECT_EQ(back->dtype, Dtype::kUint8);
  EXPECT_EQ(back->codec.compressor, codec::Compressor::kZstd);
  EXPECT_EQ(back->pixel_size_um, p.pixel_size_um);
  EXPECT_EQ(back->tiles.size(), 6u);
  EXPECT_EQ(back->tiles[2].x, 1800.0);
  EXPECT_EQ(back->header_json, R"({"objective":"20x"})");
  EXPECT_FALSE(PlanFromJson("[1,2]").ok());
}

TEST(ScanPlanTest, AnObliqueScanRoundTripsAndIsChecked) {
  ScanPlan p = TwoByThree();
  p.z_planes = 50;
  p.pixel_size_um = {0.5, 0.5, 1.0};
  p.oblique = ObliqueScan{.angle_deg = 45, .stage_step_um = 0.7071, .scan_direction = -1, .rotate_90 = 3,
                          .flip_ud = true};
  ASSERT_TRUE(p.Validate().ok()) << p.Validate().ToString();
  auto back = PlanFromJson(PlanToJson(p));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_TRUE(back->oblique.has_value());
  EXPECT_EQ(*back->oblique, *p.oblique);
  const deskew::Params d = DeskewParamsOf(*back);
  EXPECT_EQ(d.pixel_size_um, 0.5);
  EXPECT_EQ(d.scan_direction, -1);
  EXPECT_FALSE(PlanFromJson(PlanToJson(TwoByThree()))->oblique.has_value());

  p.oblique->angle_deg = 95;
  EXPECT_NE(p.Validate().message().find("oblique scan: oblique angle"), std::string::npos) << p.Validate().ToString();
  auto bad = PlanFromJson(R"({"width": 8, "height": 8, "channels": ["a"], "tiles": [{"name": "t"}],
                             "oblique": {"angle_deg": "steep", "stage_step_um": 1}})");
  EXPECT_NE(bad.status().message().find("oblique.angle_deg"), std::string::npos) << bad.status().ToString();
  auto missing = PlanFromJson(R"({"width": 8, "height": 8, "channels": ["a"], "tiles": [{"name": "t"}],
                                 "oblique": {"angle_deg": 30}})");
  EXPECT_NE(missing.status().message().find("stage_step_um is missing"), std::string::npos);
}

TEST(ScanPlanTest, LevelsHalveWithCeilingUntilTheCoarsestEdge) {
  ScanPlan p = TwoByThree();  // 1000 x 600, chunks 512 x 512
  // 1000 -> 500 -> 250 -> 125 -> 63 -> 32: six levels.
  ASSERT_EQ(p.level_count(), 6u);
  EXPECT_EQ(p.Level(0).width, 1000u);
  EXPECT_EQ(p.Level(0).chunks_x(), 2u);
  const LevelShape l3 = p.Level(3);
  EXPECT_EQ(l3.width, 125u);
  EXPECT_EQ(l3.height, 75u);
  EXPECT_EQ(l3.chunk_x, 125u);  // never larger than the level itself
  EXPECT_EQ(l3.chunks_per_frame(), 1u);
  EXPECT_EQ(p.Level(5).width, 32u);
  EXPECT_EQ(p.Level(5).height, 19u);
  p.width = p.height = 32;
  EXPECT_EQ(p.level_count(), 1u);
}

// ---------------------------------------------------------------- bounds (plans come from any client)

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The plan's error message, or "" when it is valid.
std::string Refusal(const ScanPlan& p) {
  const Status s = p.Validate();
  EXPECT_TRUE(s.ok() || s.code() == StatusCode::kInvalidArgument) << s.ToString();
  return s.message();
}

std::string JsonRefusal(const std::string& json) {
  auto r = PlanFromJson(json);
  EXPECT_TRUE(r.ok() || r.status().code() == StatusCode::kInvalidArgument) << r.status().ToString();
  return r.ok() ? "" : r.status().message();
}

TEST(ScanPlanTest, AVolumeViewsLevelsHalveZWhereTheVoxelIsNotCoarserInZ) {
  ScanPlan p;
  p.tiles.push_back({.name = "fused"});
  p.width = 1000;
  p.height = 600;
  p.z_planes = 100;
  p.pixel_size_um = {0.5, 0.5, 2.0};
  p.chunk_y = p.chunk_x = 128;
  p.chunk_z = 8;
  ASSERT_TRUE(p.Validate().ok());
  // Voxel (x, z) by level: (0.5, 2) (1, 2) (2, 2) -> halve -> (4, 4) -> halve -> (8, 8) ...
  const std::vector<uint32_t> depth = {100, 100, 100, 50, 25, 13};
  for (uint32_t l = 0; l < depth.size(); ++l) {
    const LevelShape s = p.Level(l);
    EXPECT_EQ(s.depth, depth[l]) << "level " << l;
    EXPECT_EQ(s.chunk_z, 8u) << "level " << l;
    EXPECT_EQ(s.chunks_z(), (depth[l] + 7) / 8) << "level " << l;
    EXPECT_EQ(s.DepthOf(100), depth[l]) << "level " << l;
  }
  EXPECT_EQ(p.Level(3).z_shift, 1u);
  // A plane's chunks are 2-D and so are its levels, whatever its voxel.
  ScanPlan flat = p;
  flat.chunk_z = 1;
  EXPECT_EQ(flat.Level(5).depth, 100u);
  EXPECT_EQ(flat.Level(5).z_shift, 0u);
  // chunk_z survives JSON, and is bounded.
  auto back = PlanFromJson(PlanToJson(p));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->chunk_z, 8u);
  EXPECT_EQ(PlanFromJson(PlanToJson(flat))->chunk_z, 1u);
  for (uint32_t bad : {0u, 101u, kMaxChunkPlanes + 1}) {
    ScanPlan q = p;
    q.chunk_z = bad;
    EXPECT_EQ(q.Validate().code(), StatusCode::kInvalidArgument) << bad;
  }
  ScanPlan huge = p;
  huge.z_planes = 256;
  huge.chunk_z = 256;
  huge.width = huge.height = huge.chunk_x = huge.chunk_y = 1024;  // 512 MiB a chunk
  EXPECT_EQ(huge.Validate().code(), StatusCode::kInvalidArgument);
}

TEST(ScanPlanBoundsTest, NanPositionIsRefused) {
  ScanPlan p = TwoByThree();
  p.tiles[2].x = kNaN;
  EXPECT_EQ(Refusal(p), "tile 2: x = nan is not a finite number");
  p = TwoByThree();
  p.tiles[1].z = kNaN;
  EXPECT_EQ(Refusal(p), "tile 1: z = nan is not a finite number");
}

TEST(ScanPlanBoundsTest, InfinitePositionIsRefused) {
  ScanPlan p = TwoByThree();
  p.tiles[0].y = -kInf;
  EXPECT_EQ(Refusal(p), "tile 0: y = -inf is not a finite number");
}

TEST(ScanPlanBoundsTest, HugePositionIsRefused) {
  ScanPlan p = TwoByThree();
  p.tiles[4].y = 1e300;
  EXPECT_EQ(Refusal(p), "tile 4: y = 1e+300 is beyond the limit of +-1073741824 pixels (kMaxTilePosition)");
  p.tiles[4].y = -kMaxTilePosition;  // the bound itself is allowed
  EXPECT_EQ(Refusal(p), "");
}

TEST(ScanPlanBoundsTest, HugePositionInJsonIsRefused) {
  ScanPlan p = TwoByThree();
  std::string json = PlanToJson(p);
  const std::string from = "\"x\":1800.0";
  ASSERT_NE(json.find(from), std::string::npos) << json;
  EXPECT_EQ(JsonRefusal(std::string(json).replace(json.find(from), from.size(), "\"x\":1e300")),
            "tile 2: x = 1e+300 is beyond the limit of +-1073741824 pixels (kMaxTilePosition)");
  // Past the range of a double, nlohmann refuses the number as a parse error.
  EXPECT_EQ(JsonRefusal(std::string(json).replace(json.find(from), from.size(), "\"x\":1e400")),
            "scan plan is not a JSON object");
}

TEST(ScanPlanBoundsTest, NonFinitePixelSizeIsRefused) {
  ScanPlan p = TwoByThree();
  p.pixel_size_um[0] = kInf;
  EXPECT_EQ(Refusal(p), "pixel sizes must be positive finite numbers (got inf)");
  p.pixel_size_um[0] = kNaN;
  EXPECT_EQ(Refusal(p), "pixel sizes must be positive finite numbers (got nan)");
  p.pixel_size_um[0] = 1e300;
  EXPECT_EQ(Refusal(p), "pixel size 1e+300 um is outside 1e-06..1000000 um (kMinPixelSizeUm, kMaxPixelSizeUm)");
}

TEST(ScanPlanBoundsTest, FrameEdgeOverTheLimitIsRefused) {
  ScanPlan p = TwoByThree();
  p.width = kMaxFrameEdge + 1;
  EXPECT_EQ(Refusal(p), "tile shape 65537x600 is over the limit of 65536 pixels a side (kMaxFrameEdge)");
  p.width = kMaxFrameEdge;
  EXPECT_EQ(Refusal(p), "");
}

TEST(ScanPlanBoundsTest, ChunkEdgeOverTheLimitIsRefused) {
  ScanPlan p = TwoByThree();
  p.chunk_x = kMaxChunkEdge + 1;
  EXPECT_EQ(Refusal(p), "chunk shape 512x8193 is over the limit of 8192 pixels a side (kMaxChunkEdge)");
}

TEST(ScanPlanBoundsTest, TooManyChunksPerFrameAreRefused) {
  ScanPlan p = TwoByThree();
  p.width = p.height = kMaxFrameEdge;
  p.chunk_y = p.chunk_x = 1;  // 2^32 chunks: the uint32 count would wrap to 0
  EXPECT_EQ(Refusal(p),
            "65536x65536 frames in 1x1 chunks make 4294967296 chunks a frame, over the limit of 65536 "
            "(kMaxChunksPerFrame): use larger chunks");
}

TEST(ScanPlanBoundsTest, TooManyTilesAreRefused) {
  ScanPlan p = TwoByThree();
  p.tiles.resize(kMaxTiles + 1);
  EXPECT_EQ(Refusal(p), "scan plan has 1000001 tiles, over the limit of 1000000 (kMaxTiles)");
}

TEST(ScanPlanBoundsTest, TooManyChannelsAreRefused) {
  ScanPlan p = TwoByThree();
  p.channels.resize(kMaxChannels + 1);
  EXPECT_EQ(Refusal(p), "scan plan has 65 channels, over the limit of 64 (kMaxChannels)");
}

TEST(ScanPlanBoundsTest, TooManyZPlanesAreRefused) {
  ScanPlan p = TwoByThree();
  p.z_planes = kMaxZPlanes + 1;
  EXPECT_EQ(Refusal(p), "z_planes = 100001 is over the limit of 100000 (kMaxZPlanes)");
}

TEST(ScanPlanBoundsTest, FrameCountOverflowingSixtyFourBitsIsRefused) {
  ScanPlan p = TwoByThree();
  p.tiles.resize(65536);      // 2^16 x (2^16 + 1) x (2^32 - 1) > 2^64
  p.channels.resize(65537);
  p.z_planes = std::numeric_limits<uint32_t>::max();
  EXPECT_EQ(Refusal(p), "frame count 65536 tiles x 65537 channels x 4294967295 z planes overflows 64 bits");
}

TEST(ScanPlanBoundsTest, SlideBytesOverflowingSixtyFourBitsAreRefused) {
  ScanPlan p = TwoByThree();
  p.tiles.resize(1);
  p.channels = {"a"};
  p.width = p.height = std::numeric_limits<uint32_t>::max();
  EXPECT_EQ(Refusal(p), "slide size 4 frames of 4294967295x4294967295 uint16 overflows 64 bits");
}

TEST(ScanPlanBoundsTest, FrameCountOverTheLimitIsRefused) {
  ScanPlan p = TwoByThree();
  p.tiles.resize(20'000);  // names all empty: allowed to repeat
  p.channels.resize(64);
  p.z_planes = 100'000;
  EXPECT_EQ(Refusal(p),
            "scan plan has 128000000000 frames (tiles x channels x z planes), over the limit of 100000000 (kMaxFrames)");
}

TEST(ScanPlanBoundsTest, SlideBytesOverTheLimitAreRefused) {
  ScanPlan p = TwoByThree();
  p.width = p.height = 65536;       // 8 GiB a frame
  p.chunk_y = p.chunk_x = 8192;
  p.z_planes = 100'000;             // 6 x 3 x 100,000 frames: 1.8 M frames, 14 PiB
  EXPECT_EQ(Refusal(p), "scan plan holds 15461882265600000 bytes of pixels, over the limit of 1125899906842624 "
                        "(kMaxSlideBytes)");
}

TEST(ScanPlanBoundsTest, ALightSheetStackAndALargeSlideAreValid) {
  ScanPlan stack = TwoByThree();  // 6 tiles x 3 channels x 5,000 planes of 2048 x 2048: 1.7 TB
  stack.width = stack.height = 2048;
  stack.z_planes = 5'000;
  EXPECT_EQ(Refusal(stack), "");
  ScanPlan slide = TwoByThree();  // 10,000 tiles of 2048 x 2048
  slide.width = slide.height = 2048;
  slide.tiles.clear();
  for (int i = 0; i < 10'000; ++i) slide.tiles.push_back({.name = std::to_string(i), .x = (i % 100) * 1800.0, .y = (i / 100) * 1800.0});
  EXPECT_EQ(Refusal(slide), "");
}

TEST(ScanPlanBoundsTest, OverLongNamesAreRefused) {
  ScanPlan p = TwoByThree();
  p.name = std::string(kMaxNameBytes + 1, 'n');
  EXPECT_EQ(Refusal(p), "the scan plan's name is 257 bytes long, over the limit of 256 (kMaxNameBytes)");
  p = TwoByThree();
  p.channels[1] = std::string(1000, 'c');
  EXPECT_EQ(Refusal(p), "channel 1's name is 1000 bytes long, over the limit of 256 (kMaxNameBytes)");
  p = TwoByThree();
  p.tiles[5].name = std::string(300, 't');
  EXPECT_EQ(Refusal(p), "tile 5's name is 300 bytes long, over the limit of 256 (kMaxNameBytes)");
}

TEST(ScanPlanBoundsTest, NamesMustBeUtf8WithoutControlCharacters) {
  ScanPlan p = TwoByThree();
  p.tiles[0].name = "caf\xe9";  // Latin-1: PlanToJson would throw on it
  EXPECT_EQ(Refusal(p), "tile 0's name is not valid UTF-8");
  p.tiles[0].name = "\xed\xa0\x80";  // a UTF-16 surrogate
  EXPECT_EQ(Refusal(p), "tile 0's name is not valid UTF-8");
  p.tiles[0].name = "a\nb";
  EXPECT_EQ(Refusal(p), "tile 0's name holds a control character");
  p.tiles[0].name = "caf\xc3\xa9 \xf0\x9f\x94\xac";
  EXPECT_EQ(Refusal(p), "");
}

TEST(ScanPlanBoundsTest, OverLongHeaderIsRefused) {
  ScanPlan p = TwoByThree();
  p.header_json = "\"" + std::string(kMaxHeaderJsonBytes, 'h') + "\"";
  EXPECT_EQ(Refusal(p), "header of 1048578 bytes is over the limit of 1048576 (kMaxHeaderJsonBytes)");
}

TEST(ScanPlanBoundsTest, DeeplyNestedJsonIsRefused) {
  ScanPlan p = TwoByThree();
  p.header_json = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(Refusal(p), "header nests 65 deep, over the limit of 64 (kMaxJsonDepth)");
  EXPECT_EQ(JsonRefusal(std::string(100'000, '[')), "scan plan JSON nests 100000 deep, over the limit of 64 (kMaxJsonDepth)");
  // Brackets inside strings are not nesting.
  p.header_json = "{\"note\": \"" + std::string(100, '[') + "\\\"\"}";
  EXPECT_EQ(Refusal(p), "");
}

TEST(ScanPlanBoundsTest, OverLongDocumentIsRefused) {
  EXPECT_EQ(JsonRefusal(std::string(kMaxPlanJsonBytes + 1, ' ')),
            "scan plan JSON of 134217729 bytes is over the limit of 134217728 (kMaxPlanJsonBytes)");
}

TEST(ScanPlanBoundsTest, NegativeOrFractionalCountsInJsonAreRefused) {
  // get<uint32_t>() would turn -4294965248 into 2048 and cast 1e300 with undefined behaviour.
  const std::string base = R"({"width": W, "height": 100, "channels": ["a"], "tiles": [{"x": 0}]})";
  auto with = [&](const std::string& w) { return std::string(base).replace(base.find('W'), 1, w); };
  EXPECT_EQ(JsonRefusal(with("2048")), "");
  EXPECT_EQ(JsonRefusal(with("-4294965248")), "scan plan: width must be a whole number from 0 to 4294967295 (got -4294965248)");
  EXPECT_EQ(JsonRefusal(with("1e300")), "scan plan: width must be a whole number from 0 to 4294967295 (got 1e+300)");
  EXPECT_EQ(JsonRefusal(with("2048.5")), "scan plan: width must be a whole number from 0 to 4294967295 (got 2048.5)");
  EXPECT_EQ(JsonRefusal(with("4294967296")), "scan plan: width must be a whole number from 0 to 4294967295 (got 4294967296)");
  EXPECT_EQ(JsonRefusal(with("\"2048\"")), "scan plan: width must be a whole number from 0 to 4294967295 (got string)");
}

TEST(ScanPlanBoundsTest, GridIndexOutOfIntRangeInJsonIsRefused) {
  EXPECT_EQ(JsonRefusal(R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{"row": 1e300}]})"),
            "scan plan: a tile's row must be a whole number from -2147483648 to 2147483647 (got 1e+300)");
  EXPECT_EQ(JsonRefusal(R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{"col": -2}]})"),
            "tile 0: grid index -2 is outside -1..999999 (kMaxTiles)");
}

TEST(ScanPlanBoundsTest, WrongTypesInJsonAreRefused) {
  for (const char* json : {
           R"({"width": 10, "height": 10, "channels": "a", "tiles": [{}]})",
           R"({"width": 10, "height": 10, "channels": [1], "tiles": [{}]})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": {}})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [1]})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{"x": "0"}]})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "chunk": [1]})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "chunk": {"a": 1}})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "pixel_size_um": [1, 1]})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "codec": {"level": 1e10}})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "codec": 5})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "stitch": 1})",
           R"({"width": 10, "height": 10, "channels": ["a"], "tiles": [{}], "name": null})",
           R"({"height": 10, "channels": ["a"], "tiles": [{}]})",
       }) {
    EXPECT_NE(JsonRefusal(json), "") << json;
  }
}

TEST(ScanPlanBoundsTest, PlanFromJsonValidates) {
  EXPECT_EQ(JsonRefusal(R"({"width": 0, "height": 10, "channels": ["a"], "tiles": [{}]})"), "tile shape 0x10 is empty");
  EXPECT_EQ(JsonRefusal(R"({"width": 10, "height": 10, "channels": ["a"], "tiles": []})"), "scan plan has no tiles");
}

TEST(ScanPlanBoundsTest, ReadPlanFileRefusesAnOverLongFile) {
  const std::string path = ::testing::TempDir() + "/scan_plan_test_long.json";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fseek(f, static_cast<long>(kMaxPlanJsonBytes) + 10, SEEK_SET);  // sparse
    std::fputc(' ', f);
    std::fclose(f);
  }
  auto r = ReadPlanFile(path);
  EXPECT_EQ(r.status().message(), "scan plan JSON of 134217729 bytes is over the limit of 134217728 (kMaxPlanJsonBytes)");
  std::remove(path.c_str());
}


}  // namespace
}  // namespace tessera
