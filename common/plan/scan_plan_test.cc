#include "common/plan/scan_plan.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace tessera
