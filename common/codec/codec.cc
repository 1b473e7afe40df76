#include "common/codec/codec.h"

#include <blosc.h>
#include <xxhash.h>

namespace tessera::codec {

Result<Compressor> ParseCompressor(std::string_view name) {
  if (name == "lz4") return Compressor::kLz4;
  if (name == "zstd") return Compressor::kZstd;
  return Error(StatusCode::kInvalidArgument, "unknown compressor '{}': use lz4 or zstd", name);
}

std::string_view CompressorName(Compressor c) {
  return c == Compressor::kZstd ? "zstd" : "lz4";
}

Result<std::vector<uint8_t>> Compress(std::span<const uint8_t> raw, size_t typesize,
                                      const BloscParams& params) {
  if (raw.size() > BLOSC_MAX_BUFFERSIZE) {
    return Error(StatusCode::kInvalidArgument, "chunk of {} bytes exceeds Blosc's limit",
                 raw.size());
  }
  // Compress into a reused scratch buffer, then copy out the exact size: cheaper than
  // zero-filling a fresh worst-case buffer for every chunk.
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < raw.size() + BLOSC_MAX_OVERHEAD) scratch.resize(raw.size() + BLOSC_MAX_OVERHEAD);
  const int n = blosc_compress_ctx(params.level, params.shuffle ? BLOSC_SHUFFLE : BLOSC_NOSHUFFLE,
                                   typesize, raw.size(), raw.data(), scratch.data(), scratch.size(),
                                   params.compressor == Compressor::kZstd ? "zstd" : "lz4",
                                   /*blocksize=*/0, params.threads);
  if (n <= 0) {
    return Error(StatusCode::kInternal, "blosc compression failed (code {}); is {} built in?", n,
                 CompressorName(params.compressor));
  }
  return std::vector<uint8_t>(scratch.begin(), scratch.begin() + n);
}

Result<BloscHeader> Inspect(std::span<const uint8_t> compressed) {
  if (compressed.size() < BLOSC_MIN_HEADER_LENGTH) {
    return Error(StatusCode::kDataLoss, "chunk of {} bytes is shorter than a Blosc header",
                 compressed.size());
  }
  size_t nbytes = 0;
  if (blosc_cbuffer_validate(compressed.data(), compressed.size(), &nbytes) != 0) {
    return Error(StatusCode::kDataLoss, "chunk of {} bytes is not a valid Blosc buffer",
                 compressed.size());
  }
  BloscHeader h;
  size_t blocksize = 0;
  blosc_cbuffer_sizes(compressed.data(), &h.nbytes, &h.cbytes, &blocksize);
  int flags = 0;
  blosc_cbuffer_metainfo(compressed.data(), &h.typesize, &flags);
  if (h.cbytes != compressed.size()) {
    return Error(StatusCode::kDataLoss, "Blosc header says {} compressed bytes, chunk has {}",
                 h.cbytes, compressed.size());
  }
  return h;
}

Status Decompress(std::span<const uint8_t> compressed, std::span<uint8_t> out, int threads) {
  TESSERA_ASSIGN_OR_RETURN(BloscHeader h, Inspect(compressed));
  if (h.nbytes != out.size()) {
    return Error(StatusCode::kDataLoss, "chunk decompresses to {} bytes, expected {}", h.nbytes,
                 out.size());
  }
  const int n = blosc_decompress_ctx(compressed.data(), out.data(), out.size(), threads);
  if (n < 0 || static_cast<size_t>(n) != out.size()) {
    return Error(StatusCode::kDataLoss, "Blosc decompression failed (code {})", n);
  }
  return OkStatus();
}

uint64_t Checksum(std::span<const uint8_t> bytes) {
  return XXH64(bytes.data(), bytes.size(), 0);
}

std::array<unsigned, 7> Hdf5FilterValues(size_t typesize, size_t chunk_bytes,
                                         const BloscParams& params) {
  return {2u,
          2u,
          static_cast<unsigned>(typesize),
          static_cast<unsigned>(chunk_bytes),
          static_cast<unsigned>(params.level),
          params.shuffle ? 1u : 0u,
          params.compressor == Compressor::kZstd ? 5u : 1u};
}

}  // namespace tessera::codec
