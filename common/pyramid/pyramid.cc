#include "common/pyramid/pyramid.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/codec/codec.h"

namespace tessera::pyramid {
namespace {

// One output row: the means of r0/r1's column pairs, the last column of an odd width with itself.
template <typename T>
void ScalarHalveRow(const T* r0, const T* r1, uint32_t w, T* out) {
  const uint32_t full = w / 2;
  for (uint32_t ox = 0; ox < full; ++ox) {
    const uint32_t s = uint32_t{r0[2 * ox]} + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1] + 2;
    out[ox] = static_cast<T>(s >> 2);
  }
  if (full < (w + 1) / 2) out[full] = static_cast<T>((2 * (uint32_t{r0[w - 1]} + r1[w - 1]) + 2) >> 2);
}

template <typename T>
void HalveRow(const T* r0, const T* r1, uint32_t w, T* out) {
  ScalarHalveRow(r0, r1, w, out);
}

#ifdef __SSE2__
// The same sums and rounding, 8 (uint16) or 16 (uint8) outputs at a time; the scalar row takes
// what is left. Equal to HalveRow bit for bit (PyramidTest.MeansOfEveryWidthEqualTheFormula).
template <>
void HalveRow<uint16_t>(const uint16_t* r0, const uint16_t* r1, uint32_t w, uint16_t* out) {
  const uint32_t full = w / 2, vec = full / 8 * 8;
  const __m128i low = _mm_set1_epi32(0xFFFF), two = _mm_set1_epi32(2), bias = _mm_set1_epi32(0x8000);
  const __m128i flip = _mm_set1_epi16(static_cast<int16_t>(0x8000));
  auto pairs = [&](const uint16_t* a, const uint16_t* b) {  // 4 sums of 2 x 2, as 32-bit lanes
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m128i s = _mm_add_epi32(_mm_add_epi32(_mm_and_si128(x, low), _mm_srli_epi32(x, 16)),
                                    _mm_add_epi32(_mm_and_si128(y, low), _mm_srli_epi32(y, 16)));
    // (s + 2) >> 2 is at most 65535: shifted by 0x8000 it packs into int16 without saturating.
    return _mm_sub_epi32(_mm_srli_epi32(_mm_add_epi32(s, two), 2), bias);
  };
  for (uint32_t ox = 0; ox < vec; ox += 8) {
    const __m128i lo = pairs(r0 + 2 * ox, r1 + 2 * ox), hi = pairs(r0 + 2 * ox + 8, r1 + 2 * ox + 8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + ox), _mm_xor_si128(_mm_packs_epi32(lo, hi), flip));
  }
  ScalarHalveRow(r0 + 2 * vec, r1 + 2 * vec, w - 2 * vec, out + vec);
}

template <>
void HalveRow<uint8_t>(const uint8_t* r0, const uint8_t* r1, uint32_t w, uint8_t* out) {
  const uint32_t full = w / 2, vec = full / 16 * 16;
  const __m128i low = _mm_set1_epi16(0xFF), two = _mm_set1_epi16(2);
  auto pairs = [&](const uint8_t* a, const uint8_t* b) {  // 8 rounded means, as 16-bit lanes
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m128i s = _mm_add_epi16(_mm_add_epi16(_mm_and_si128(x, low), _mm_srli_epi16(x, 8)),
                                    _mm_add_epi16(_mm_and_si128(y, low), _mm_srli_epi16(y, 8)));
    return _mm_srli_epi16(_mm_add_epi16(s, two), 2);
  };
  for (uint32_t ox = 0; ox < vec; ox += 16) {
    const __m128i lo = pairs(r0 + 2 * ox, r1 + 2 * ox), hi = pairs(r0 + 2 * ox + 16, r1 + 2 * ox + 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + ox), _mm_packus_epi16(lo, hi));
  }
  ScalarHalveRow(r0 + 2 * vec, r1 + 2 * vec, w - 2 * vec, out + vec);
}
#endif

// Halves w x h pixels (rows `src_stride` apart) into rows `dst_stride` apart; an odd height's
// last row pairs with itself.
template <typename T>
void Halve(const T* src, uint32_t w, uint32_t h, size_t src_stride, T* dst, size_t dst_stride) {
  for (uint32_t oy = 0; oy < (h + 1) / 2; ++oy) {
    const T* r0 = src + 2 * oy * src_stride;
    HalveRow(r0, 2 * oy + 1 < h ? r0 + src_stride : r0, w, dst + oy * dst_stride);
  }
}

template <typename T>
void Halve3(const T* a, const T* b, uint32_t w, uint32_t h, T* dst) {
  const uint32_t ow = (w + 1) / 2, oh = (h + 1) / 2;
  for (uint32_t oy = 0; oy < oh; ++oy) {
    const size_t y0 = size_t{2 * oy} * w, y1 = 2 * oy + 1 < h ? y0 + w : y0;
    T* out = dst + size_t{oy} * ow;
    for (uint32_t ox = 0; ox < ow; ++ox) {
      const size_t x0 = 2 * ox, x1 = 2 * ox + 1 < w ? x0 + 1 : x0;
      const uint32_t s = uint32_t{a[y0 + x0]} + a[y0 + x1] + a[y1 + x0] + a[y1 + x1] + b[y0 + x0] + b[y0 + x1] +
                         b[y1 + x0] + b[y1 + x1] + 4;
      out[ox] = static_cast<T>(s >> 3);
    }
  }
}

}  // namespace

void Downsample2x2x2(std::span<const uint8_t> a, std::span<const uint8_t> b, const LevelShape& s, Dtype dtype,
                     std::span<uint8_t> dst) {
  assert(a.size() >= LevelBytes(s, dtype) && b.size() >= LevelBytes(s, dtype));
  assert(dst.size() >= size_t{(s.width + 1) / 2} * ((s.height + 1) / 2) * DtypeSize(dtype));
  if (dtype == Dtype::kUint8) {
    Halve3(a.data(), b.data(), s.width, s.height, dst.data());
  } else {
    Halve3(reinterpret_cast<const uint16_t*>(a.data()), reinterpret_cast<const uint16_t*>(b.data()), s.width, s.height,
           reinterpret_cast<uint16_t*>(dst.data()));
  }
}

size_t LevelBytes(const LevelShape& shape, Dtype dtype) { return shape.pixels() * DtypeSize(dtype); }

void Downsample2x(std::span<const uint8_t> src, const LevelShape& s, Dtype dtype,
                  std::span<uint8_t> dst) {
  assert(src.size() >= LevelBytes(s, dtype));
  const size_t ow = (s.width + 1) / 2;
  assert(dst.size() >= ow * ((s.height + 1) / 2) * DtypeSize(dtype));
  if (dtype == Dtype::kUint8) {
    Halve(src.data(), s.width, s.height, s.width, dst.data(), ow);
  } else {
    Halve(reinterpret_cast<const uint16_t*>(src.data()), s.width, s.height, s.width,
          reinterpret_cast<uint16_t*>(dst.data()), ow);
  }
}

bool HalvesByChunk(const LevelShape& s) {
  return (s.chunk_y % 2 == 0 || s.chunks_y() == 1) && (s.chunk_x % 2 == 0 || s.chunks_x() == 1);
}

void DownsampleChunk(std::span<const uint8_t> chunk, const LevelShape& s, Dtype dtype, uint32_t cy, uint32_t cx,
                     std::span<uint8_t> half) {
  assert(HalvesByChunk(s) && chunk.size() >= s.chunk_pixels() * DtypeSize(dtype));
  const uint32_t y0 = cy * s.chunk_y, x0 = cx * s.chunk_x;
  const uint32_t rows = std::min(s.chunk_y, s.height - y0), cols = std::min(s.chunk_x, s.width - x0);
  const size_t ow = (s.width + 1) / 2, at = y0 / 2 * ow + x0 / 2;
  assert(half.size() >= ow * ((s.height + 1) / 2) * DtypeSize(dtype));
  if (dtype == Dtype::kUint8) {
    Halve(chunk.data(), cols, rows, s.chunk_x, half.data() + at, ow);
  } else {
    Halve(reinterpret_cast<const uint16_t*>(chunk.data()), cols, rows, s.chunk_x,
          reinterpret_cast<uint16_t*>(half.data()) + at, ow);
  }
}

void ExtractChunk(std::span<const uint8_t> image, const LevelShape& s, size_t elem, uint32_t cy,
                  uint32_t cx, std::span<uint8_t> chunk) {
  const uint32_t y0 = cy * s.chunk_y, x0 = cx * s.chunk_x;
  const uint32_t rows = std::min(s.chunk_y, s.height - y0);
  const uint32_t cols = std::min(s.chunk_x, s.width - x0);
  if (rows < s.chunk_y || cols < s.chunk_x) std::fill(chunk.begin(), chunk.end(), 0);
  for (uint32_t r = 0; r < rows; ++r) {
    std::memcpy(chunk.data() + size_t{r} * s.chunk_x * elem,
                image.data() + (size_t{y0 + r} * s.width + x0) * elem, size_t{cols} * elem);
  }
}

void InsertChunk(std::span<const uint8_t> chunk, const LevelShape& s, size_t elem, uint32_t cy,
                 uint32_t cx, std::span<uint8_t> image) {
  const uint32_t y0 = cy * s.chunk_y, x0 = cx * s.chunk_x;
  const uint32_t rows = std::min(s.chunk_y, s.height - y0);
  const uint32_t cols = std::min(s.chunk_x, s.width - x0);
  for (uint32_t r = 0; r < rows; ++r) {
    std::memcpy(image.data() + (size_t{y0 + r} * s.width + x0) * elem,
                chunk.data() + size_t{r} * s.chunk_x * elem, size_t{cols} * elem);
  }
}

Result<std::vector<EncodedChunk>> EncodeLevelsFrom(const FrameKey& key, uint32_t first,
                                                   std::span<const uint8_t> image, const ScanPlan& plan) {
  if (plan.chunk_z != 1) {
    return Error(StatusCode::kInvalidArgument, "the levels of a volume view (chunks of {} planes) are made of blocks, not frames",
                 plan.chunk_z);
  }
  if (first == 0 || first >= plan.level_count()) {
    return Error(StatusCode::kInvalidArgument, "level {} of a plan of {} levels", first, plan.level_count());
  }
  if (image.size() != LevelBytes(plan.Level(first), plan.dtype)) {
    return Error(StatusCode::kInvalidArgument, "an image of {} bytes for level {}; the plan's is {}", image.size(),
                 first, LevelBytes(plan.Level(first), plan.dtype));
  }
  const size_t elem = DtypeSize(plan.dtype);
  codec::BloscParams params = plan.codec;
  params.threads = 1;
  std::vector<EncodedChunk> out;
  // A frame's levels are made on a few threads, frame after frame: their images stay in memory
  // (a sixteenth of a frame and less, and a chunk) instead of fresh pages for every frame.
  thread_local std::vector<uint8_t> halves[2], chunk;
  std::span<const uint8_t> current = image;
  for (uint32_t level = first; level < plan.level_count(); ++level) {
    const LevelShape shape = plan.Level(level);
    if (level > first) {
      std::vector<uint8_t>& next = halves[level % 2];
      next.resize(LevelBytes(shape, plan.dtype));
      Downsample2x(current, plan.Level(level - 1), plan.dtype, next);
      current = next;
    }
    chunk.resize(shape.chunk_pixels() * elem);
    for (uint32_t cy = 0; cy < shape.chunks_y(); ++cy) {
      for (uint32_t cx = 0; cx < shape.chunks_x(); ++cx) {
        ExtractChunk(current, shape, elem, cy, cx, chunk);
        TESSERA_ASSIGN_OR_RETURN(auto packed, codec::Compress(chunk, elem, params));
        const uint64_t sum = codec::Checksum(packed);
        out.push_back({ChunkKey{key, level, cy, cx}, std::move(packed), sum});
      }
    }
  }
  return out;
}

Result<std::vector<EncodedChunk>> EncodeLevels(const FrameKey& key, std::span<const uint8_t> level0,
                                               const ScanPlan& plan) {
  if (level0.size() != plan.frame_bytes()) {
    return Error(StatusCode::kInvalidArgument, "a frame of {} bytes; the plan's frames are {}",
                 level0.size(), plan.frame_bytes());
  }
  if (plan.level_count() < 2) return std::vector<EncodedChunk>{};
  thread_local std::vector<uint8_t> half;
  half.resize(LevelBytes(plan.Level(1), plan.dtype));
  Downsample2x(level0, plan.Level(0), plan.dtype, half);
  return EncodeLevelsFrom(key, 1, half, plan);
}

}  // namespace tessera::pyramid
