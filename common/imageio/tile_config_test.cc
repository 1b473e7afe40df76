#include "common/imageio/tile_config.h"

#include <gtest/gtest.h>

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
      {"a.tif; ; (1, x)\n", "cfg:1: 'x' is not a number"},
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

}  // namespace
}  // namespace tessera::imageio
