#include "common/imageio/ome_tiff.h"

#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/imageio/tiff.h"

namespace tessera::imageio {
namespace {

std::string Temp(const std::string& name) {
  return ::testing::TempDir() + "/ome_tiff_test_" + std::to_string(::getpid()) + "_" + name;
}

// A pixel's value from where it is: every plane, level and position distinct.
uint16_t Value(uint32_t c, uint32_t z, uint32_t level, uint32_t x, uint32_t y) {
  return static_cast<uint16_t>(x * 7 + y * 131 + c * 10007 + z * 3001 + level * 20011);
}

OmeTiffLayout Layout() {
  OmeTiffLayout l;
  l.sizes = {{1000, 700}, {500, 350}, {250, 175}};
  l.planes = 3;
  l.channels = {{"DAPI", 0, 0, 255}, {"GFP & <more>", 0, 255, 0}};
  l.voxel_um = {0.5, 0.5, 2.0};
  l.name = "s000001";
  l.tile = 256;
  l.batch_tiles = 3;  // a tile row in two batches, the second partial
  return l;
}

Status WriteAll(OmeTiffWriter& w) {
  while (auto want = w.Next()) {
    std::vector<uint16_t> px(size_t{want->width} * want->height);
    for (uint32_t y = 0; y < want->height; ++y) {
      for (uint32_t x = 0; x < want->width; ++x) {
        px[size_t{y} * want->width + x] = Value(want->channel, want->z, want->level, want->x + x, want->y + y);
      }
    }
    TESSERA_RETURN_IF_ERROR(w.Write({reinterpret_cast<const uint8_t*>(px.data()), px.size() * 2}));
  }
  return w.Close();
}

TEST(OmeTiffTest, EveryPlaneAndSubResolutionReadsBackAsWritten) {
  const OmeTiffLayout layout = Layout();
  const std::string path = Temp("pyramid.ome.tif");
  auto w = OmeTiffWriter::Create(path, layout);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->tiles_total(), 6u * (4 * 3 + 2 * 2 + 1));
  ASSERT_TRUE(WriteAll(*w).ok());
  EXPECT_EQ(w->tiles_done(), w->tiles_total());
  EXPECT_EQ(w->pixel_bytes(), 6u * 2 * (1000 * 700 + 500 * 350 + 250 * 175));

  // The main chain: one page per plane, channel fastest, at the full resolution.
  auto image = ReadTiff(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_EQ(image->planes, 6u);
  ASSERT_EQ(image->width, 1000u);
  const auto* px = reinterpret_cast<const uint16_t*>(image->pixels.data());
  for (uint32_t p = 0; p < 6; ++p) {
    for (uint32_t y : {0u, 255u, 256u, 699u}) {
      for (uint32_t x : {0u, 511u, 512u, 999u}) {
        ASSERT_EQ(px[(size_t{p} * 700 + y) * 1000 + x], Value(p % 2, p / 2, 0, x, y)) << p << " " << x << "," << y;
      }
    }
  }
  // Each plane's SubIFDs: the reduced resolutions, marked as such.
  TIFF* t = TIFFOpen(path.c_str(), "r");
  ASSERT_NE(t, nullptr);
  for (uint32_t p = 0; p < 6; ++p) {
    ASSERT_TRUE(TIFFSetDirectory(t, static_cast<tdir_t>(p)));
    uint16_t count = 0;
    toff_t* offsets = nullptr;
    ASSERT_TRUE(TIFFGetField(t, TIFFTAG_SUBIFD, &count, &offsets));
    ASSERT_EQ(count, 2);
    const std::vector<toff_t> subs(offsets, offsets + count);
    for (uint32_t level = 1; level <= 2; ++level) {
      ASSERT_TRUE(TIFFSetSubDirectory(t, subs[level - 1]));
      uint32_t width = 0, height = 0, subfile = 0;
      TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &width);
      TIFFGetField(t, TIFFTAG_IMAGELENGTH, &height);
      TIFFGetField(t, TIFFTAG_SUBFILETYPE, &subfile);
      EXPECT_EQ(width, layout.sizes[level][0]);
      EXPECT_EQ(height, layout.sizes[level][1]);
      EXPECT_EQ(subfile, static_cast<uint32_t>(FILETYPE_REDUCEDIMAGE));
      std::vector<uint16_t> tile(256 * 256);
      const uint32_t tx = width > 256 ? 256 : 0;  // the right edge tile where there is one
      ASSERT_GT(TIFFReadTile(t, tile.data(), tx, 0, 0, 0), 0);
      for (uint32_t y = 0; y < std::min<uint32_t>(256, height); y += 37) {
        for (uint32_t x = 0; x < std::min<uint32_t>(256, width - tx); x += 29) {
          ASSERT_EQ(tile[y * 256 + x], Value(p % 2, p / 2, level, tx + x, y)) << level << " " << x << "," << y;
        }
      }
    }
  }
  TIFFClose(t);
}

TEST(OmeTiffTest, OmeXmlNamesSizesPhysicalSizesAndChannels) {
  const std::string xml = OmeXml(Layout());
  for (const char* want : {"DimensionOrder=\"XYCZT\"", "Type=\"uint16\"", "SizeX=\"1000\"", "SizeY=\"700\"",
                           "SizeC=\"2\"", "SizeZ=\"3\"", "SizeT=\"1\"", "PhysicalSizeX=\"0.5\"",
                           "PhysicalSizeZ=\"2\"", "PhysicalSizeXUnit=\"\xC2\xB5m\"", "Name=\"DAPI\"",
                           "Name=\"GFP &amp; &lt;more&gt;\"", "<TiffData IFD=\"0\" PlaneCount=\"6\"/>",
                           "Name=\"s000001\"", "Color=\"65535\"", "Color=\"16711935\""}) {
    EXPECT_NE(xml.find(want), std::string::npos) << want << " not in\n" << xml;
  }
  OmeTiffLayout unknown = Layout();
  unknown.voxel_um = {};
  EXPECT_EQ(OmeXml(unknown).find("PhysicalSize"), std::string::npos);
}

TEST(OmeTiffTest, BadLayoutsAndWritesAreRefusedByName) {
  OmeTiffLayout l = Layout();
  l.sizes = {{100, 100}, {200, 50}};
  auto bigger = OmeTiffWriter::Create(Temp("bad.tif"), l);
  EXPECT_EQ(bigger.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bigger.status().message().find("level 1 is 200 x 50"), std::string::npos) << bigger.status().ToString();
  l = Layout();
  l.tile = 100;
  EXPECT_EQ(OmeTiffWriter::Create(Temp("bad.tif"), l).status().code(), StatusCode::kInvalidArgument);
  l = Layout();
  l.channels.clear();
  EXPECT_EQ(OmeTiffWriter::Create(Temp("bad.tif"), l).status().code(), StatusCode::kInvalidArgument);
  l = Layout();
  l.sizes = {};
  EXPECT_EQ(OmeTiffWriter::Create(Temp("bad.tif"), l).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OmeTiffWriter::Create("/nonexistent/dir/x.tif", Layout()).status().code(), StatusCode::kInternal);

  auto w = OmeTiffWriter::Create(Temp("partial.tif"), Layout());
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> wrong(10);
  EXPECT_EQ(w->Write(wrong).code(), StatusCode::kInvalidArgument);
  const Status early = w->Close();
  EXPECT_EQ(early.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(early.message().find("channel 0 plane 0 level 0"), std::string::npos) << early.ToString();
}

TEST(OmeTiffTest, OneLevelUint8WithoutSubIfds) {
  OmeTiffLayout l;
  l.sizes = {{300, 20}};
  l.dtype = Dtype::kUint8;
  l.tile = 64;
  const std::string path = Temp("u8.ome.tif");
  auto w = OmeTiffWriter::Create(path, l);
  ASSERT_TRUE(w.ok());
  while (auto want = w->Next()) {
    std::vector<uint8_t> px(size_t{want->width} * want->height);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((want->x + i % want->width) ^ (i / want->width));
    ASSERT_TRUE(w->Write(px).ok());
  }
  ASSERT_TRUE(w->Close().ok());
  auto image = ReadTiff(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ASSERT_EQ(image->dtype, Dtype::kUint8);
  for (uint32_t y = 0; y < 20; ++y) {
    for (uint32_t x = 0; x < 300; ++x) ASSERT_EQ(image->pixels[y * 300 + x], static_cast<uint8_t>(x ^ y)) << x << "," << y;
  }
}

}  // namespace
}  // namespace tessera::imageio
