// DCIMG files written here from the layout the open readers document (LIGHTSHEET.md), one
// per version, rows padded, with the four garbage pixels and their true values where each
// version keeps them; and multi-page TIFF stacks, both read a plane at a time.
#include "common/imageio/dcimg.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/imageio/stack.h"
#include "tests/dcimg_files.h"

namespace tessera::imageio {
namespace {

using testing::Build;
using testing::CornerRow;
using testing::Put16;
using testing::Put32;
using testing::Spec;
using testing::Truth;

ReadAt Memory(const std::string& bytes) {
  return [&bytes](uint64_t offset, std::span<uint8_t> out) -> Status {
    if (offset > bytes.size() || out.size() > bytes.size() - offset) return Error(StatusCode::kDataLoss, "short");
    std::memcpy(out.data(), bytes.data() + offset, out.size());
    return OkStatus();
  };
}

void ExpectFrames(const Spec& s, StackReader& stack) {
  ASSERT_EQ(stack.info().width, s.width);
  ASSERT_EQ(stack.info().height, s.height);
  ASSERT_EQ(stack.info().planes, s.frames);
  std::vector<uint16_t> plane(size_t{s.width} * s.height);
  for (uint32_t k = 0; k < s.frames; ++k) {
    ASSERT_TRUE(stack.ReadPlane(k, {reinterpret_cast<uint8_t*>(plane.data()), plane.size() * 2}).ok());
    for (uint32_t y = 0; y < s.height; ++y) {
      for (uint32_t x = 0; x < s.width; ++x) {
        ASSERT_EQ(plane[y * s.width + x], Truth(k, y, x)) << "frame " << k << " (" << x << ", " << y << ")";
      }
    }
  }
}

class DcimgVersionTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(DcimgVersionTest, FramesReadWithPaddedRowsAndTheirCornerPixelsRestored) {
  Spec s;
  s.version = GetParam();
  const std::string bytes = Build(s);
  auto layout = ParseDcimg(bytes.size(), Memory(bytes));
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->corner_row, static_cast<int64_t>(CornerRow(s)));
  const std::string path = ::testing::TempDir() + fmt::format("/stack_{:x}.dcimg", s.version);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  auto stack = StackReader::Open(path);
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  ExpectFrames(s, **stack);
  EXPECT_EQ((*stack)->format(), fmt::format("DCIMG 0x{:x}", s.version));
}

INSTANTIATE_TEST_SUITE_P(Versions, DcimgVersionTest, ::testing::Values(0x7u, 0x1000000u, 0x2000000u),
                         [](const auto& info) { return fmt::format("v{:x}", info.param); });

TEST(DcimgTest, ACropWithoutTheSensorsCornerRowNeedsNoFix) {
  Spec s;
  s.version = 0x1000000;
  s.y0 = 1100;  // rows 1100.. of the sensor: row 1023 is not in the frame
  const std::string bytes = Build(s);
  auto layout = ParseDcimg(bytes.size(), Memory(bytes));
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  EXPECT_EQ(layout->corner_row, -1);
}

TEST(DcimgTest, WhatIsNotUnderstoodOrTruncatedIsNamed) {
  Spec s;
  std::string bytes = Build(s);
  std::string other = bytes;
  Put32(other, 0x08, 0x3000000);
  auto version = ParseDcimg(other.size(), Memory(other));
  EXPECT_EQ(version.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(version.status().message().find("0x3000000"), std::string::npos) << version.status().ToString();
  other = bytes;
  Put32(other, 0xA0 + 0x24, 4);  // four bytes per pixel
  EXPECT_NE(ParseDcimg(other.size(), Memory(other)).status().message().find("bytes per pixel"), std::string::npos);
  other = bytes;
  Put32(other, 0xA0 + 0x20, 4000000000u);  // frames beyond any stack
  EXPECT_EQ(ParseDcimg(other.size(), Memory(other)).status().code(), StatusCode::kInvalidArgument);
  other = bytes;
  Put32(other, 0xA0 + 0x38, 7);  // bytes per image that are not rows x bytes per row
  EXPECT_NE(ParseDcimg(other.size(), Memory(other)).status().message().find("bytes per image"), std::string::npos);
  const std::string cut = bytes.substr(0, 0xA0 + 0x100 + 40);  // frames cut off
  EXPECT_EQ(ParseDcimg(cut.size(), Memory(cut)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ParseDcimg(8, Memory(bytes)).status().code(), StatusCode::kDataLoss);
  const std::string path = ::testing::TempDir() + "/not_a_stack.bin";
  std::ofstream(path) << "hello, world";
  auto neither = StackReader::Open(path);
  EXPECT_EQ(neither.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(neither.status().message().find("neither a TIFF nor a DCIMG"), std::string::npos);
}

TEST(StackReaderTest, ATiffStackIsReadAPageAtATimeInAnyOrder) {
  Image img{.width = 7, .height = 4, .planes = 6, .dtype = Dtype::kUint16};
  img.pixels.resize(size_t{7} * 4 * 6 * 2);
  for (size_t i = 0; i < img.pixels.size() / 2; ++i) {
    const uint16_t v = static_cast<uint16_t>(i * 3);
    std::memcpy(img.pixels.data() + 2 * i, &v, 2);
  }
  for (bool big : {false, true}) {
    const std::string path = ::testing::TempDir() + (big ? "/stack_big.tif" : "/stack.tif");
    ASSERT_TRUE(WriteTiff(path, img, big).ok());
    auto stack = StackReader::Open(path);
    ASSERT_TRUE(stack.ok()) << stack.status().ToString();
    EXPECT_EQ((*stack)->info().planes, 6u);
    std::vector<uint8_t> plane((*stack)->plane_bytes());
    for (uint32_t z : {0u, 1u, 2u, 5u, 3u, 4u, 0u}) {
      ASSERT_TRUE((*stack)->ReadPlane(z, plane).ok()) << z;
      EXPECT_EQ(0, std::memcmp(plane.data(), img.pixels.data() + z * plane.size(), plane.size())) << "page " << z;
    }
    EXPECT_EQ((*stack)->ReadPlane(6, plane).code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace tessera::imageio
