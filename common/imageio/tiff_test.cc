#include "common/imageio/tiff.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tessera::imageio {
namespace {

std::string Temp(const std::string& name) {
  return ::testing::TempDir() + "/tiff_test_" + std::to_string(::getpid()) + "_" + name;
}

Image Ramp(Dtype dtype, uint32_t planes) {
  Image img;
  img.width = 37;
  img.height = 23;
  img.planes = planes;
  img.dtype = dtype;
  img.pixels.resize(size_t{37} * 23 * planes * DtypeSize(dtype));
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 7 + 3);
  return img;
}

TEST(TiffTest, RoundTripsUint8Uint16MultiPageAndBigTiff) {
  for (Dtype dtype : {Dtype::kUint8, Dtype::kUint16}) {
    for (bool big : {false, true}) {
      const Image img = Ramp(dtype, 3);
      const std::string path = Temp("rt.tif");
      ASSERT_TRUE(WriteTiff(path, img, big).ok());
      auto info = ProbeTiff(path);
      ASSERT_TRUE(info.ok()) << info.status().ToString();
      EXPECT_EQ(info->planes, 3u);
      EXPECT_EQ(info->dtype, dtype);
      auto back = ReadTiff(path);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(back->width, 37u);
      EXPECT_EQ(back->pixels, img.pixels) << "dtype " << DtypeName(dtype) << " bigtiff " << big;
      std::filesystem::remove(path);
    }
  }
}

TEST(TiffTest, ReadsTheRealDataSets) {
  auto mist = ReadTiff("../shared/data/mist-5x5/ImageName_t01_p01.tif");
  ASSERT_TRUE(mist.ok()) << mist.status().ToString();
  EXPECT_EQ(mist->width, 245u);
  EXPECT_EQ(mist->height, 183u);
  EXPECT_EQ(mist->dtype, Dtype::kUint16);
  auto grid = ProbeTiff("../shared/data/ruled-grid-1x10/1.tif");
  ASSERT_TRUE(grid.ok()) << grid.status().ToString();
  EXPECT_EQ(grid->width, 594u);
  EXPECT_EQ(grid->height, 929u);
  EXPECT_EQ(grid->dtype, Dtype::kUint8);
}

TEST(TiffTest, MissingTruncatedAndGarbageFilesAreReported) {
  EXPECT_EQ(ReadTiff(Temp("absent.tif")).status().code(), StatusCode::kNotFound);
  const std::string good = Temp("good.tif"), cut = Temp("cut.tif");
  Image img = Ramp(Dtype::kUint16, 1);
  img.width = img.height = 300;
  img.pixels.assign(size_t{300} * 300 * 2, 9);
  ASSERT_TRUE(WriteTiff(good, img).ok());
  {
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, 100);
  }
  EXPECT_EQ(ReadTiff(cut).status().code(), StatusCode::kDataLoss);
  std::ofstream(Temp("junk.tif")) << "this is not a tiff";
  EXPECT_EQ(ReadTiff(Temp("junk.tif")).status().code(), StatusCode::kDataLoss);
  for (auto p : {good, cut, Temp("junk.tif")}) std::filesystem::remove(p);
}

TEST(TiffTest, DecodeTiffReadsWhatEncodeTiffWrote) {
  const Image img = Ramp(Dtype::kUint16, 2);
  auto bytes = EncodeTiff(img);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto back = DecodeTiff(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->planes, 2u);
  EXPECT_EQ(back->pixels, img.pixels);
}

TEST(TiffTest, DecodeTiffReportsTruncatedAndGarbageBytes) {
  Image img = Ramp(Dtype::kUint8, 1);
  img.width = img.height = 300;
  img.pixels.assign(size_t{300} * 300, 9);
  auto bytes = EncodeTiff(img);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(DecodeTiff(bytes->substr(0, 100)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTiff(bytes->substr(0, bytes->size() - 1000)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTiff("this is not a tiff").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTiff("").status().code(), StatusCode::kDataLoss);
}

// A little-endian classic TIFF of one page whose directory holds `entries` (tag, type, value:
// SHORT = 3, LONG = 4, each of count 1), followed by `data` at offset 8.
struct Entry {
  uint16_t tag, type;
  uint32_t value;
};
std::string HandMadeTiff(std::vector<Entry> entries, const std::string& data) {
  std::string out = "II*";
  out += '\0';
  auto u16 = [&](uint32_t v) { out += static_cast<char>(v & 0xFF), out += static_cast<char>(v >> 8 & 0xFF); };
  auto u32 = [&](uint32_t v) { u16(v & 0xFFFF), u16(v >> 16); };
  u32(static_cast<uint32_t>(8 + data.size()));
  out += data;
  u16(static_cast<uint32_t>(entries.size()));
  for (const Entry& e : entries) {
    u16(e.tag), u16(e.type), u32(1);
    if (e.type == 3) u16(e.value), u16(0);
    else u32(e.value);
  }
  u32(0);
  return out;
}

TEST(TiffTest, AHugeImageClaimedByAFewBytesIsRefused) {
  // 65536 x 65536 16-bit pixels (8 GiB) from 100 bytes: refused before any allocation.
  const std::string tiff = HandMadeTiff({{256, 4, 65536}, {257, 4, 65536}, {258, 3, 16}, {259, 3, 1}, {262, 3, 1},
                                         {273, 4, 8}, {278, 4, 65536}, {279, 4, 100}},
                                        std::string(100, '\0'));
  auto r = DecodeTiff(tiff);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("(kMaxTiffExpansion)"), std::string::npos) << r.status().message();
}

TEST(TiffTest, AnEdgeOverTheFrameLimitIsRefused) {
  const std::string tiff = HandMadeTiff({{256, 4, 70000}, {257, 4, 1}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1},
                                         {273, 4, 8}, {278, 4, 1}, {279, 4, 70000}},
                                        std::string(70000, '\0'));
  auto r = DecodeTiff(tiff);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "TIFF in memory: 70000x1 pixels, over the limit of 65536 a side (kMaxFrameEdge)");
}

TEST(TiffTest, AHandMadeTiffDecodes) {
  const std::string tiff = HandMadeTiff({{256, 4, 4}, {257, 4, 2}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1},
                                         {273, 4, 8}, {278, 4, 2}, {279, 4, 8}},
                                        "abcdefgh");
  auto r = DecodeTiff(tiff);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::string(r->pixels.begin(), r->pixels.end()), "abcdefgh");
}


}  // namespace
}  // namespace tessera::imageio
