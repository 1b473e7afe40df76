#include "server/gateway/render.h"

#include <gtest/gtest.h>
#include <png.h>
#include <turbojpeg.h>

#include <cstring>
#include <numeric>

namespace tessera::gateway {
namespace {

IiifImageRequest Out(int64_t w, int64_t h) {
  IiifImageRequest r;
  r.out_w = w;
  r.out_h = h;
  return r;
}

Planes View(const std::vector<uint16_t>& v, int channels, int64_t w, int64_t h) {
  return {{reinterpret_cast<const uint8_t*>(v.data()), v.size() * 2}, 2, channels, w, h};
}

ChannelStyle Style(uint32_t min, uint32_t max, uint8_t r, uint8_t g, uint8_t b) {
  ChannelStyle s;
  s.min = min;
  s.max = max;
  s.r = r;
  s.g = g;
  s.b = b;
  return s;
}

TEST(Render, WindowMapsRawValuesLinearlyAndClamps) {
  const std::vector<uint16_t> v = {0, 100, 150, 200, 300, 65535};
  auto img = Render(View(v, 1, 6, 1), {0, 0, 6, 1}, {Style(100, 200, 255, 255, 255)}, Out(6, 1));
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ASSERT_EQ(img->channels, 1);  // white: one component
  EXPECT_EQ(img->pixels, (std::vector<uint8_t>{0, 0, 128, 255, 255, 255}));
  // 8-bit samples with a window reaching past 255: the ramp goes on, it is not cut at 255.
  const std::vector<uint8_t> bytes = {0, 100, 255};
  const Planes p8{{bytes.data(), bytes.size()}, 1, 1, 3, 1};
  auto wide = Render(p8, {0, 0, 3, 1}, {Style(100, 400, 255, 255, 255)}, Out(3, 1));
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ(wide->pixels, (std::vector<uint8_t>{0, 0, 132}));
}

TEST(Render, ColourlessCompositesAreOneComponentColouredOnesThree) {
  const std::vector<uint16_t> v = {0, 1000};
  auto grey = Render(View(v, 1, 2, 1), {0, 0, 2, 1}, {Style(0, 1000, 128, 128, 128)}, Out(2, 1));
  ASSERT_TRUE(grey.ok());
  EXPECT_EQ(grey->channels, 1);
  EXPECT_EQ(grey->pixels, (std::vector<uint8_t>{0, 128}));
  auto red = Render(View(v, 1, 2, 1), {0, 0, 2, 1}, {Style(0, 1000, 255, 0, 0)}, Out(2, 1));
  ASSERT_TRUE(red.ok());
  EXPECT_EQ(red->channels, 3);
  EXPECT_EQ(red->pixels, (std::vector<uint8_t>{0, 0, 0, 255, 0, 0}));
}

TEST(Render, OneToOneAndAreaAveragePathsAgreeWhereTheyMeet) {
  // A 1:1 box (table look-up per pixel) and the same box read 2:1 then compared with the
  // average of each 2 x 2 block computed here; and a box hanging off the source is black there.
  std::vector<uint16_t> v(16 * 8);
  std::iota(v.begin(), v.end(), uint16_t{0});
  const auto style = Style(0, 255, 255, 255, 255);
  auto one = Render(View(v, 1, 16, 8), {4, 2, 8, 4}, {style}, Out(8, 4));
  ASSERT_TRUE(one.ok());
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x) EXPECT_EQ(one->pixels[static_cast<size_t>(y * 8 + x)], v[static_cast<size_t>((y + 2) * 16 + x + 4)]);
  auto half = Render(View(v, 1, 16, 8), {0, 0, 16, 8}, {style}, Out(8, 4));
  ASSERT_TRUE(half.ok());
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 8; ++x) {
      const auto at = [&](int dx, int dy) { return v[static_cast<size_t>((2 * y + dy) * 16 + 2 * x + dx)]; };
      const int mean = (at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4;
      EXPECT_EQ(half->pixels[static_cast<size_t>(y * 8 + x)], mean) << x << "," << y;
    }
  }
  auto off = Render(View(v, 1, 16, 8), {12, 6, 8, 4}, {style}, Out(8, 4));
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->pixels[0], v[6 * 16 + 12]);
  EXPECT_EQ(off->pixels[4], 0);           // x = 16: outside
  EXPECT_EQ(off->pixels[2 * 8 + 0], 0);   // y = 8: outside
}

TEST(Render, ChannelsAreColouredAndAddedAndCanBeTurnedOff) {
  // Channel 0 (green) bright on the left pixel, channel 1 (magenta) on the right.
  const std::vector<uint16_t> v = {1000, 0, /* ch1 */ 0, 1000};
  std::vector<ChannelStyle> styles = {Style(0, 1000, 0, 255, 0), Style(0, 1000, 255, 0, 255)};
  auto img = Render(View(v, 2, 2, 1), {0, 0, 2, 1}, styles, Out(2, 1));
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(std::vector<uint8_t>(img->pixels.begin(), img->pixels.end()), (std::vector<uint8_t>{0, 255, 0, 255, 0, 255}));
  // Both at half: green + magenta = gray.
  const std::vector<uint16_t> half = {500, 500};
  auto sum = Render(View(half, 2, 1, 1), {0, 0, 1, 1}, styles, Out(1, 1));
  EXPECT_EQ(std::vector<uint8_t>(sum->pixels.begin(), sum->pixels.end()), (std::vector<uint8_t>{128, 128, 128}));
  styles[1].on = false;
  auto off = Render(View(v, 2, 2, 1), {0, 0, 2, 1}, styles, Out(2, 1));
  EXPECT_EQ(std::vector<uint8_t>(off->pixels.begin(), off->pixels.end()), (std::vector<uint8_t>{0, 255, 0, 0, 0, 0}));
}

TEST(Render, GrayIsTheSumOfWindowedIntensities) {
  const std::vector<uint16_t> v = {1000, 300};
  IiifImageRequest r = Out(1, 1);
  r.quality = IiifImageRequest::Quality::kGray;
  auto img = Render(View(v, 2, 1, 1), {0, 0, 1, 1}, {Style(0, 1000, 0, 0, 255), Style(0, 1000, 255, 0, 0)}, r);
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->channels, 1);
  EXPECT_EQ(img->pixels[0], 255);  // 255 + 77, clamped
}

TEST(Render, ShrinkingAveragesTheArea) {
  // 4 x 2 -> 2 x 1: each output pixel the mean of a 2 x 2 block.
  const std::vector<uint16_t> v = {0, 200, 100, 100, 100, 100, 100, 100};
  auto img = Render(View(v, 1, 4, 2), {0, 0, 4, 2}, {Style(0, 255, 255, 255, 255)}, Out(2, 1));
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->pixels, (std::vector<uint8_t>{100, 100}));
}

TEST(Render, FractionalBoxesAndTheOutsideIsBlack) {
  const std::vector<uint16_t> v = {10, 20, 30, 40};  // 4 x 1
  // Starting half a pixel in, at 1:1: nearest centres 20, 30, 40, then outside (black).
  auto img = Render(View(v, 1, 4, 1), {1, 0, 4, 1}, {Style(0, 255, 255, 255, 255)}, Out(4, 1));
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->pixels, (std::vector<uint8_t>{20, 30, 40, 0}));
  // Enlarging: nearest.
  auto up = Render(View(v, 1, 4, 1), {0, 0, 2, 1}, {Style(0, 255, 255, 255, 255)}, Out(4, 1));
  EXPECT_EQ(up->pixels, (std::vector<uint8_t>{10, 10, 20, 20}));
}

TEST(Render, MirrorThenRotate) {
  // 3 x 2 gray image, values 0..5 row-major (window 0..255 keeps them).
  const std::vector<uint16_t> v = {0, 1, 2, 3, 4, 5};
  const std::vector<ChannelStyle> s = {Style(0, 255, 255, 255, 255)};
  auto gray = [&](int rotation, bool mirror) {
    IiifImageRequest r = Out(3, 2);
    r.quality = IiifImageRequest::Quality::kGray;
    r.rotation = rotation;
    r.mirror = mirror;
    auto img = Render(View(v, 1, 3, 2), {0, 0, 3, 2}, s, r);
    EXPECT_TRUE(img.ok());
    return std::make_pair(std::make_pair(img->width, img->height), img->pixels);
  };
  EXPECT_EQ(gray(0, true).second, (std::vector<uint8_t>{2, 1, 0, 5, 4, 3}));
  auto r90 = gray(90, false);
  EXPECT_EQ(r90.first, std::make_pair(int64_t{2}, int64_t{3}));
  EXPECT_EQ(r90.second, (std::vector<uint8_t>{3, 0, 4, 1, 5, 2}));
  EXPECT_EQ(gray(180, false).second, (std::vector<uint8_t>{5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(gray(270, false).second, (std::vector<uint8_t>{2, 5, 1, 4, 0, 3}));
  EXPECT_EQ(gray(90, true).second, (std::vector<uint8_t>{5, 2, 4, 1, 3, 0}));
}

TEST(Render, EightBitSources) {
  const std::vector<uint8_t> v = {0, 64, 255};
  auto img = Render({{v.data(), v.size()}, 1, 1, 3, 1}, {0, 0, 3, 1}, {Style(0, 128, 255, 255, 255)}, Out(3, 1));
  ASSERT_TRUE(img.ok());
  EXPECT_EQ(img->pixels, (std::vector<uint8_t>{0, 128, 255}));
}

TEST(Render, RejectsInconsistentInput) {
  const std::vector<uint16_t> v = {1, 2};
  EXPECT_FALSE(Render(View(v, 1, 2, 1), {0, 0, 2, 1}, {}, Out(2, 1)).ok());  // no style for the plane
  EXPECT_FALSE(Render(View(v, 1, 4, 1), {0, 0, 4, 1}, {Style(0, 1, 1, 1, 1)}, Out(4, 1)).ok());  // too few bytes
}

TEST(DefaultStyle, WindowFromPercentilesIgnoringZeroAndColourFromName) {
  std::vector<uint16_t> v(100000, 0);  // zeros: no tile there
  for (size_t i = 0; i < 50000; ++i) v[i] = static_cast<uint16_t>(1000 + i % 1000);
  v[0] = 60000;  // one hot pixel does not stretch the window
  auto s = DefaultStyle(v, 0, 2, "DAPI");
  EXPECT_NEAR(s.min, 1000, 5);
  EXPECT_NEAR(s.max, 1999, 5);
  EXPECT_EQ(s.b, 255);
  EXPECT_EQ(s.g, 0);
  EXPECT_EQ(DefaultStyle(v, 1, 2, "GFP").g, 255);
  auto alone = DefaultStyle(v, 0, 1, "GFP");  // the only channel: white
  EXPECT_EQ(alone.r, 255);
  EXPECT_EQ(alone.b, 255);
  auto unnamed = DefaultStyle(v, 1, 2, "ch1");  // the palette: green, magenta, ...
  EXPECT_EQ(unnamed.r, 255);
  EXPECT_EQ(unnamed.g, 0);
  auto empty = DefaultStyle(std::vector<uint16_t>(10, 0), 0, 1, "x");
  EXPECT_LT(empty.min, empty.max);
}

TEST(StyleQuery, ChannelsWindowsColours) {
  std::vector<ChannelStyle> d = {Style(0, 100, 0, 255, 0), Style(0, 100, 255, 0, 255)};
  auto s = ApplyStyleQuery(d, {{"channels", "1"}, {"window1", "10,4000"}, {"color1", "00FFff"}, {"t", "cache-buster"}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE((*s)[0].on);
  EXPECT_TRUE((*s)[1].on);
  EXPECT_EQ((*s)[1].min, 10u);
  EXPECT_EQ((*s)[1].max, 4000u);
  EXPECT_EQ((*s)[1].r, 0);
  EXPECT_EQ((*s)[1].b, 255);
  auto none = ApplyStyleQuery(d, {{"channels", ""}});
  EXPECT_FALSE((*none)[0].on || (*none)[1].on);
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"channels", "2"}, {"channels", "0,x"}, {"window0", "5,5"}, {"window0", "5"}, {"window0", "1,70000"},
           {"window2", "1,2"}, {"windowx", "1,2"}, {"color0", "fff"}, {"color0", "gg0000"}, {"color9", "ffffff"}}) {
    EXPECT_EQ(ApplyStyleQuery(d, {{k, v}}).status().code(), StatusCode::kInvalidArgument) << k << "=" << v;
  }
}

TEST(Encode, JpegDecodesToTheImage) {
  Image8 img{64, 32, 3, std::vector<uint8_t>(64 * 32 * 3)};
  for (size_t i = 0; i < img.pixels.size(); i += 3) img.pixels[i + 1] = 200;  // green
  auto jpg = EncodeJpeg(img);
  ASSERT_TRUE(jpg.ok());
  tjhandle d = tjInitDecompress();
  int w = 0, h = 0, sub = 0, cs = 0;
  ASSERT_EQ(tjDecompressHeader3(d, reinterpret_cast<const unsigned char*>(jpg->data()), jpg->size(), &w, &h, &sub, &cs), 0);
  EXPECT_EQ(w, 64);
  EXPECT_EQ(h, 32);
  EXPECT_EQ(sub, TJSAMP_444);
  std::vector<uint8_t> back(64 * 32 * 3);
  ASSERT_EQ(tjDecompress2(d, reinterpret_cast<const unsigned char*>(jpg->data()), jpg->size(), back.data(), 64, 0, 32,
                          TJPF_RGB, 0),
            0);
  tjDestroy(d);
  EXPECT_NEAR(back[1], 200, 3);
  EXPECT_NEAR(back[0], 0, 3);
}

TEST(Encode, PngRoundTripsExactly) {
  Image8 img{5, 3, 1, {}};
  img.pixels.resize(15);
  std::iota(img.pixels.begin(), img.pixels.end(), uint8_t{100});
  auto png = EncodePng(img);
  ASSERT_TRUE(png.ok());
  png_image in{};
  in.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_memory(&in, png->data(), png->size()));
  EXPECT_EQ(in.width, 5u);
  EXPECT_EQ(in.height, 3u);
  in.format = PNG_FORMAT_GRAY;
  std::vector<uint8_t> back(15);
  ASSERT_TRUE(png_image_finish_read(&in, nullptr, back.data(), 0, nullptr));
  EXPECT_EQ(back, img.pixels);
}

}  // namespace
}  // namespace tessera::gateway
