#include "common/imageio/tiff.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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

}  // namespace
}  // namespace tessera::imageio
