#include "common/pyramid/pyramid.h"

#include <algorithm>
#include <cstring>

#include "common/codec/codec.h"

namespace tessera::pyramid {
namespace {

template <typename T>
void Halve(const T* src, uint32_t w, uint32_t h, T* dst) {
  const uint32_t ow = (w + 1) / 2, oh = (h + 1) / 2;
  for (uint32_t oy = 0; oy < oh; ++oy) {
    const T* r0 = src + size_t{2 * oy} * w;
    const T* r1 = 2 * oy + 1 < h ? r0 + w : r0;  // odd height: the last row pairs with itself
    T* out = dst + size_t{oy} * ow;
    const uint32_t full = w / 2;
    for (uint32_t ox = 0; ox < full; ++ox) {
      const uint32_t s = uint32_t{r0[2 * ox]} + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1] + 2;
      out[ox] = static_cast<T>(s >> 2);
    }
    if (full < ow) {  // odd width: the last column pairs with itself
      const uint32_t s = 2 * (uint32_t{r0[w - 1]} + r1[w - 1]) + 2;
      out[full] = static_cast<T>(s >> 2);
    }
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
  assert(dst.size() >= size_t{(s.width + 1) / 2} * ((s.height + 1) / 2) * DtypeSize(dtype));
  if (dtype == Dtype::kUint8) {
    Halve(src.data(), s.width, s.height, dst.data());
  } else {
    Halve(reinterpret_cast<const uint16_t*>(src.data()), s.width, s.height,
          reinterpret_cast<uint16_t*>(dst.data()));
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

Result<std::vector<EncodedChunk>> EncodeLevels(const FrameKey& key, std::span<const uint8_t> level0,
                                               const ScanPlan& plan) {
  if (plan.chunk_z != 1) {
    return Error(StatusCode::kInvalidArgument, "the levels of a volume view (chunks of {} planes) are made of blocks, not frames",
                 plan.chunk_z);
  }
  if (level0.size() != plan.frame_bytes()) {
    return Error(StatusCode::kInvalidArgument, "a frame of {} bytes; the plan's frames are {}",
                 level0.size(), plan.frame_bytes());
  }
  const size_t elem = DtypeSize(plan.dtype);
  codec::BloscParams params = plan.codec;
  params.threads = 1;
  std::vector<EncodedChunk> out;
  // A frame's levels are made on a few threads, frame after frame: their images stay in memory
  // (a quarter of a frame, and a chunk) instead of fresh pages for every frame.
  thread_local std::vector<uint8_t> halves[2], chunk;
  std::span<const uint8_t> below = level0;
  for (uint32_t level = 1; level < plan.level_count(); ++level) {
    const LevelShape src = plan.Level(level - 1), dst = plan.Level(level);
    std::vector<uint8_t>& above = halves[level % 2];
    above.resize(LevelBytes(dst, plan.dtype));
    Downsample2x(below, src, plan.dtype, above);
    chunk.resize(dst.chunk_pixels() * elem);
    for (uint32_t cy = 0; cy < dst.chunks_y(); ++cy) {
      for (uint32_t cx = 0; cx < dst.chunks_x(); ++cx) {
        ExtractChunk(above, dst, elem, cy, cx, chunk);
        TESSERA_ASSIGN_OR_RETURN(auto packed, codec::Compress(chunk, elem, params));
        const uint64_t sum = codec::Checksum(packed);
        out.push_back({ChunkKey{key, level, cy, cx}, std::move(packed), sum});
      }
    }
    below = above;
  }
  return out;
}

}  // namespace tessera::pyramid
