#include "server/gateway/zarr.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/gateway/url.h"

namespace tessera::gateway::zarr {
namespace {

using nlohmann::json;

ScanPlan Plan() {
  ScanPlan plan;
  plan.width = 1000;
  plan.height = 600;
  plan.chunk_y = plan.chunk_x = 256;
  plan.channels = {"DAPI", "GFP"};
  plan.z_planes = 3;
  plan.pixel_size_um = {0.5, 0.5, 2.0};
  plan.tiles.push_back({.name = "r0c0"});
  return plan;
}

std::vector<ChannelStyle> Styles() {
  return {{.name = "DAPI", .on = true, .min = 10, .max = 900, .r = 0, .g = 0, .b = 255},
          {.name = "GFP", .on = false, .min = 5, .max = 4000, .r = 0, .g = 255, .b = 0}};
}

TEST(ZarrTest, FieldArraysAreTheStoredLevelsAndChunks) {
  const ScanPlan plan = Plan();
  const Image image = FieldImage(plan, plan.level_count(), {900, 400, 0}, Styles());
  ASSERT_EQ(image.levels.size(), plan.level_count());
  const json a0 = json::parse(ArrayMetadata(image, Version::kV2, 0));
  EXPECT_EQ(a0["shape"], json({2, 3, 600, 1000}));
  EXPECT_EQ(a0["chunks"], json({1, 1, 256, 256}));
  EXPECT_EQ(a0["dtype"], "<u2");
  EXPECT_EQ(a0["dimension_separator"], "/");
  EXPECT_EQ(a0["compressor"]["id"], "blosc");
  EXPECT_EQ(a0["compressor"]["cname"], "lz4");
  EXPECT_EQ(a0["filters"], nullptr);
  const json a2 = json::parse(ArrayMetadata(image, Version::kV2, 2));
  EXPECT_EQ(a2["shape"], json({2, 3, 150, 250}));
  EXPECT_EQ(a2["chunks"], json({1, 1, 150, 250}));  // never larger than the level, as stored

  const json v3 = json::parse(ArrayMetadata(image, Version::kV3, 1));
  EXPECT_EQ(v3["node_type"], "array");
  EXPECT_EQ(v3["data_type"], "uint16");
  EXPECT_EQ(v3["chunk_grid"]["configuration"]["chunk_shape"], json({1, 1, 256, 256}));
  EXPECT_EQ(v3["chunk_key_encoding"]["configuration"]["separator"], "/");
  EXPECT_EQ(v3["codecs"][1]["name"], "blosc");
  EXPECT_EQ(v3["codecs"][1]["configuration"]["typesize"], 2);
  EXPECT_EQ(v3["dimension_names"], json({"c", "z", "y", "x"}));
}

TEST(ZarrTest, OmeAttributesPlaceTheFieldAndCarryItsChannels) {
  const ScanPlan plan = Plan();
  const Image image = FieldImage(plan, plan.level_count(), {900, 400, 0}, Styles());
  const json attrs = json::parse(GroupMetadata(image, Version::kV2, Key::kAttributes));
  const json& ms = attrs["multiscales"][0];
  EXPECT_EQ(ms["version"], "0.4");
  ASSERT_EQ(ms["axes"].size(), 4u);
  EXPECT_EQ(ms["axes"][0]["type"], "channel");
  EXPECT_EQ(ms["axes"][3]["unit"], "micrometer");
  ASSERT_EQ(ms["datasets"].size(), plan.level_count());
  const json& t0 = ms["datasets"][0]["coordinateTransformations"];
  EXPECT_EQ(t0[0]["scale"], json({1.0, 2.0, 0.5, 0.5}));
  EXPECT_EQ(t0[1]["translation"], json({0.0, 0.0, 200.0, 450.0}));
  // Level 1's voxel is the mean of 2 x 2: its centre half a level-0 pixel further in.
  const json& t1 = ms["datasets"][1]["coordinateTransformations"];
  EXPECT_EQ(t1[0]["scale"], json({1.0, 2.0, 1.0, 1.0}));
  EXPECT_EQ(t1[1]["translation"], json({0.0, 0.0, 200.25, 450.25}));
  EXPECT_EQ(ms["datasets"][1]["path"], "1");
  const json& ch = attrs["omero"]["channels"];
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[0]["label"], "DAPI");
  EXPECT_EQ(ch[0]["color"], "0000FF");
  EXPECT_EQ(ch[1]["active"], false);
  EXPECT_EQ(ch[1]["window"]["end"], 4000);
  EXPECT_EQ(ch[1]["window"]["max"], 65535);

  const json v3 = json::parse(GroupMetadata(image, Version::kV3));
  EXPECT_EQ(v3["attributes"]["ome"]["version"], "0.5");
  EXPECT_FALSE(v3["attributes"]["ome"]["multiscales"][0].contains("version"));
  EXPECT_EQ(v3["consolidated_metadata"]["metadata"].size(), plan.level_count());
}

TEST(ZarrTest, ConsolidatedMetadataHoldsEveryArray) {
  const ScanPlan plan = Plan();
  std::vector<std::array<uint64_t, 2>> extents = {{1900, 1000}};
  while (extents.size() < plan.level_count()) extents.push_back({(extents.back()[0] + 1) / 2, (extents.back()[1] + 1) / 2});
  const Image image = MosaicImage(plan, extents, 3, Styles());
  const json c = json::parse(ConsolidatedV2(image));
  EXPECT_EQ(c["zarr_consolidated_format"], 1);
  const json& m = c["metadata"];
  EXPECT_EQ(m[".zgroup"]["zarr_format"], 2);
  EXPECT_TRUE(m[".zattrs"].contains("multiscales"));
  for (uint32_t l = 0; l < plan.level_count(); ++l) {
    EXPECT_EQ(m[std::to_string(l) + "/.zarray"], json::parse(ArrayMetadata(image, Version::kV2, l)));
  }
  EXPECT_EQ(m["0/.zarray"]["shape"], json({2, 3, 1000, 1900}));
  EXPECT_EQ(m["1/.zarray"]["shape"], json({2, 3, 500, 950}));
  EXPECT_EQ(m["0/.zarray"]["chunks"], json({1, 1, 512, 512}));  // the plan's 256 raised to 512
}

TEST(ZarrTest, KeysNameGroupsArraysAndChunksWithinTheGrid) {
  const ScanPlan plan = Plan();
  const Image image = FieldImage(plan, plan.level_count(), {0, 0, 0}, Styles());
  EXPECT_EQ(ParseKey(image, Version::kV2, "")->kind, Key::kGroup);
  EXPECT_EQ(ParseKey(image, Version::kV2, ".zgroup")->kind, Key::kGroup);
  EXPECT_EQ(ParseKey(image, Version::kV2, ".zattrs")->kind, Key::kAttributes);
  EXPECT_EQ(ParseKey(image, Version::kV2, ".zmetadata")->kind, Key::kConsolidated);
  EXPECT_EQ(ParseKey(image, Version::kV3, "zarr.json")->kind, Key::kGroup);
  auto array = ParseKey(image, Version::kV2, "1/.zarray");
  ASSERT_TRUE(array.ok());
  EXPECT_EQ(array->kind, Key::kArray);
  EXPECT_EQ(array->level, 1u);
  EXPECT_EQ(ParseKey(image, Version::kV3, "1/zarr.json")->kind, Key::kArray);
  auto chunk = ParseKey(image, Version::kV2, "0/1/2/2/3");  // c 1, z 2, y 2, x 3
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->kind, Key::kChunk);
  EXPECT_EQ(chunk->chunk, (std::array<uint64_t, 4>{1, 2, 2, 3}));
  auto v3 = ParseKey(image, Version::kV3, "0/c/1/2/2/3");
  ASSERT_TRUE(v3.ok());
  EXPECT_EQ(v3->chunk, chunk->chunk);
  // Beyond the grid (4 x 3 chunks of 256 at level 0; 2 channels, 3 planes), or malformed: not found.
  for (const char* bad : {"0/2/0/0/0", "0/0/3/0/0", "0/0/0/3/0", "0/0/0/0/4", "9/.zarray", "0/0/0/0", "0/0/0/0/0/0",
                          "0/0/0/-1/0", "0/0/0/+1/0", "0/c/0/0/0/0", "x", "0/.zmetadata", "0/0/0/0/99999999999999999"}) {
    EXPECT_EQ(ParseKey(image, Version::kV2, bad).status().code(), StatusCode::kNotFound) << bad;
  }
  EXPECT_EQ(ParseKey(image, Version::kV3, "0/1/2/2/3").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ParseKey(image, Version::kV3, ".zattrs").status().code(), StatusCode::kNotFound);
}

TEST(ZarrTest, ByteRangesAndEntityTags) {
  using R = std::optional<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(*ParseByteRange("bytes=0-9", 100), R(std::make_pair(0, 10)));
  EXPECT_EQ(*ParseByteRange("bytes=90-", 100), R(std::make_pair(90, 10)));
  EXPECT_EQ(*ParseByteRange("bytes=90-200", 100), R(std::make_pair(90, 10)));  // clipped to the end
  EXPECT_EQ(*ParseByteRange("bytes=-16", 100), R(std::make_pair(84, 16)));     // a shard index's suffix
  EXPECT_EQ(*ParseByteRange("bytes=-500", 100), R(std::make_pair(0, 100)));
  EXPECT_EQ(ParseByteRange("bytes=100-", 100).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(ParseByteRange("bytes=-0", 100).status().code(), StatusCode::kOutOfRange);
  for (const char* ignored : {"", "items=0-1", "bytes=0-1,5-6", "bytes=5-2", "bytes=a-", "bytes=-", "bytes=1"}) {
    auto r = ParseByteRange(ignored, 100);
    ASSERT_TRUE(r.ok()) << ignored;
    EXPECT_FALSE(r->has_value()) << ignored;
  }
  EXPECT_TRUE(EtagListMatches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(EtagListMatches("\"x\", W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(EtagListMatches("*", "\"abc\""));
  EXPECT_FALSE(EtagListMatches("\"abd\"", "\"abc\""));
  EXPECT_FALSE(EtagListMatches("abc", "\"abc\""));
}

}  // namespace
}  // namespace tessera::gateway::zarr
