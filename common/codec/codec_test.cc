#include "common/codec/codec.h"

#include <gtest/gtest.h>

#include <numeric>

namespace tessera::codec {
namespace {

std::vector<uint8_t> Ramp(size_t n) {
  std::vector<uint16_t> v(n);
  std::iota(v.begin(), v.end(), uint16_t{100});
  std::vector<uint8_t> bytes(n * 2);
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

TEST(CodecTest, RoundTripsLz4AndZstd) {
  const auto raw = Ramp(512 * 512);
  for (Compressor c : {Compressor::kLz4, Compressor::kZstd}) {
    BloscParams p;
    p.compressor = c;
    auto packed = Compress(raw, 2, p);
    ASSERT_TRUE(packed.ok()) << packed.status().ToString();
    EXPECT_LT(packed->size(), raw.size() / 4) << CompressorName(c);
    auto header = Inspect(*packed);
    ASSERT_TRUE(header.ok());
    EXPECT_EQ(header->nbytes, raw.size());
    EXPECT_EQ(header->typesize, 2u);
    std::vector<uint8_t> out(raw.size());
    ASSERT_TRUE(Decompress(*packed, out).ok());
    EXPECT_EQ(out, raw);
  }
}

TEST(CodecTest, InspectRejectsTruncatedAndGarbageBuffers) {
  auto packed = *Compress(Ramp(4096), 2, BloscParams{});
  auto truncated = std::span<const uint8_t>(packed).first(packed.size() - 1);
  EXPECT_EQ(Inspect(truncated).status().code(), StatusCode::kDataLoss);
  std::vector<uint8_t> garbage(64, 0xAB);
  EXPECT_EQ(Inspect(garbage).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(Inspect(std::span<const uint8_t>(packed).first(3)).status().code(),
            StatusCode::kDataLoss);
}

TEST(CodecTest, DecompressRejectsWrongOutputSize) {
  auto packed = *Compress(Ramp(4096), 2, BloscParams{});
  std::vector<uint8_t> out(4096);  // half the real size
  EXPECT_EQ(Decompress(packed, out).code(), StatusCode::kDataLoss);
}

TEST(CodecTest, ChecksumIsXxh64SeedZero) {
  // Reference value of XXH64("", 0) from the xxHash specification.
  EXPECT_EQ(Checksum({}), 0xEF46DB3751D8E999ull);
  auto a = Ramp(16);
  auto b = a;
  b[3] ^= 1;
  EXPECT_NE(Checksum(a), Checksum(b));
}

TEST(CodecTest, ParsesCompressorNames) {
  EXPECT_EQ(*ParseCompressor("zstd"), Compressor::kZstd);
  EXPECT_EQ(ParseCompressor("gzip").status().code(), StatusCode::kInvalidArgument);
}

TEST(CodecTest, Hdf5FilterValuesMatchHdf5plugin) {
  BloscParams p;
  auto v = Hdf5FilterValues(2, 512 * 512 * 2, p);
  EXPECT_EQ(v, (std::array<unsigned, 7>{2, 2, 2, 524288, 5, 1, 1}));
}

}  // namespace
}  // namespace tessera::codec
