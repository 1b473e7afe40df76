#include "common/imageio/tile_config.h"

#include <gtest/gtest.h>

#include <string>

#include "common/plan/scan_plan.h"

namespace tessera::imageio {
namespace {

TEST(TileConfigTest, ReadsTheRealMistConfiguration) {
  auto c = ReadTileConfig("../shared/data/mist-5x5/TileConfiguration.txt");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->dim, 2);
  ASSERT_EQ(c->entries.size(), 25u);
  EXPECT_EQ(c->entries[0].file, "ImageName_t01_p01.tif");
  EXPECT_EQ(c->entries[0].x, 0.0);
  EXPECT_EQ(c->entries[1].y, 172.0);
  EXPECT_EQ(c->entries[5].x, 232.0);
  EXPECT_EQ(c->entries[1].path, "../shared/data/mist-5x5/ImageName_t01_p02.tif");
}

TEST(TileConfigTest, AcceptsDim3CommentsBlankLinesAndCrlf) {
  auto c = ParseTileConfig("# header\r\n\r\ndim = 3\r\na.tif;;(1, -2.5, 3e1) # note\r\nb.tif; 0 ; ( 4 ,5,6 )\r\n",
                           "/data", "cfg");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->entries.size(), 2u);
  EXPECT_EQ(c->entries[0].y, -2.5);
  EXPECT_EQ(c->entries[0].z, 30.0);
  EXPECT_EQ(c->entries[1].x, 4.0);
  EXPECT_EQ(c->entries[1].path, "/data/b.tif");
}

TEST(TileConfigTest, ErrorsNameTheLineAndTheProblem) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"dim = 2\na.tif; ; 1, 2\n", "cfg:2: expected '(x, y)' after the second ';'"},
      {"dim = 2\na.tif; ; (1, 2, 3)\n", "cfg:2: 3 coordinates for dim = 2"},
      {"dim = 4\n", "cfg:1: expected 'dim = 2' or 'dim = 3'"},
      {"a.tif; ; (1, x)\n", "cfg:1: 'x' is not a finite number"},
      {"a.tif; ; (1, 2)\na.tif; ; (3, 4)\n", "cfg:2: 'a.tif' is listed twice"},
      {"a.tif (1, 2)\n", "cfg:1: expected 'file; ; (x, y)'"},
      {"# nothing\n", "cfg: no tiles listed"},
  };
  for (const auto& c : cases) {
    auto r = ParseTileConfig(c.text, ".", "cfg");
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(r.status().message(), c.message) << c.text;
  }
  EXPECT_EQ(ReadTileConfig("/nonexistent/TileConfiguration.txt").status().code(), StatusCode::kNotFound);
}

// The message of parsing `text`, which must be refused as INVALID_ARGUMENT.
std::string Refusal(const std::string& text) {
  auto r = ParseTileConfig(text, ".", "cfg");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text.substr(0, 80);
  return r.status().message();
}

TEST(TileConfigBoundsTest, NanAndInfinityAreRefused) {
  EXPECT_EQ(Refusal("a.tif; ; (nan, 0)\n"), "cfg:1: 'nan' is not a finite number");
  EXPECT_EQ(Refusal("a.tif; ; (0, -inf)\n"), "cfg:1: '-inf' is not a finite number");
  EXPECT_EQ(Refusal("a.tif; ; (0, infinity)\n"), "cfg:1: 'infinity' is not a finite number");
}

TEST(TileConfigBoundsTest, NumbersPastADoubleAreRefused) {
  EXPECT_EQ(Refusal("a.tif; ; (1e400, 0)\n"), "cfg:1: '1e400' is not a finite number");
}

TEST(TileConfigBoundsTest, HugePositionIsRefused) {
  EXPECT_EQ(Refusal("a.tif; ; (1e300, 0)\n"), "cfg:1: 1e+300 is beyond the limit of +-1073741824 pixels (kMaxTilePosition)");
}

TEST(TileConfigBoundsTest, MoreThanThreeCoordinatesAreRefused) {
  EXPECT_EQ(Refusal("dim = 3\na.tif; ; (1, 2, 3, 4)\n"), "cfg:2: more than 3 coordinates for dim = 3");
  EXPECT_EQ(Refusal("a.tif; ; (" + std::string(100000, ',') + ")\n"), "cfg:1: '' is not a finite number");
}

TEST(TileConfigBoundsTest, OverLongFileNameIsRefused) {
  EXPECT_EQ(Refusal(std::string(300, 'f') + "; ; (0, 0)\n"),
            "cfg:1: the file name is 300 bytes long, over the limit of 256 (kMaxNameBytes)");
}

TEST(TileConfigBoundsTest, ControlCharactersAndBrokenUtf8InFileNamesAreRefused) {
  EXPECT_EQ(Refusal(std::string("a\0b.tif; ; (0, 0)\n", 18)), "cfg:1: the file name holds a control character");
  EXPECT_EQ(Refusal("caf\xe9.tif; ; (0, 0)\n"), "cfg:1: the file name is not valid UTF-8");
}

TEST(TileConfigBoundsTest, LongGarbageIsShownShortAndPrintable) {
  EXPECT_EQ(Refusal("a.tif; ; (\x01" + std::string(1000, 'x') + ", 0)\n"),
            "cfg:1: '?xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not a finite number");
}

TEST(TileConfigBoundsTest, OverLongTextIsRefused) {
  EXPECT_EQ(Refusal(std::string(kMaxTileConfigBytes + 1, '#')),
            "cfg: 67108865 bytes, over the limit of 67108864 (kMaxTileConfigBytes)");
}

TEST(TileConfigBoundsTest, TooManyTilesAreRefused) {
  std::string text;
  for (size_t i = 0; i <= kMaxTiles; ++i) text += std::to_string(i) + ";;(0,0)\n";
  EXPECT_EQ(Refusal(text), "cfg:1000001: more than 1000000 tiles (kMaxTiles)");
}

TEST(TileConfigBoundsTest, AFileNamedLikeDimIsATile) {
  auto c = ParseTileConfig("dimension.tif; ; (1, 2)\n", "/d", "cfg");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->entries[0].file, "dimension.tif");
  EXPECT_EQ(Refusal("dim 2\n"), "cfg:1: expected 'dim = 2' or 'dim = 3'");
}


}  // namespace
}  // namespace tessera::imageio
