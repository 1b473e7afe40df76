// Chunk codec: Blosc compression and xxHash64 checksums.
//
// A chunk travels as one Blosc buffer from the scanner to the file and on to the
// viewer, unchanged; its checksum is xxHash64 (seed 0) of those compressed bytes.
//
//   codec::BloscParams p;                       // lz4, byte shuffle, level 5
//   auto packed = codec::Compress(pixels, /*typesize=*/2, p);
//   uint64_t sum = codec::Checksum(*packed);
//   auto header = codec::Inspect(*packed);      // validates the Blosc header
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/status/status.h"

namespace tessera::codec {

enum class Compressor { kLz4, kZstd };

/// "lz4" / "zstd"; Result is an error for any other name.
Result<Compressor> ParseCompressor(std::string_view name);
std::string_view CompressorName(Compressor c);

struct BloscParams {
  Compressor compressor = Compressor::kLz4;
  int level = 5;         ///< 0..9
  bool shuffle = true;   ///< byte shuffle (Blosc SHUFFLE); off means no shuffle
  int threads = 1;       ///< Blosc's internal threads for this call
};

/// What a Blosc buffer says of itself, after validation.
struct BloscHeader {
  size_t nbytes = 0;     ///< uncompressed size
  size_t cbytes = 0;     ///< compressed size, header included
  size_t typesize = 0;
};

/// Compresses `raw` (elements of `typesize` bytes). Thread-safe.
Result<std::vector<uint8_t>> Compress(std::span<const uint8_t> raw, size_t typesize,
                                      const BloscParams& params);

/// Decompresses into `out`, whose size must equal the buffer's nbytes. Thread-safe.
/// DATA_LOSS when the buffer is not valid Blosc or its size does not match.
Status Decompress(std::span<const uint8_t> compressed, std::span<uint8_t> out, int threads = 1);

/// Validates a Blosc header against the buffer's length (no decompression).
/// DATA_LOSS when the bytes are not a well-formed Blosc buffer.
Result<BloscHeader> Inspect(std::span<const uint8_t> compressed);

/// xxHash64 with seed 0.
uint64_t Checksum(std::span<const uint8_t> bytes);

/// The HDF5 Blosc filter's (id 32001) client data values, as h5py/hdf5plugin write them:
/// {filter revision 2, blosc version 2, typesize, chunk bytes, level, shuffle, compressor}.
std::array<unsigned, 7> Hdf5FilterValues(size_t typesize, size_t chunk_bytes,
                                         const BloscParams& params);

inline constexpr unsigned kHdf5BloscFilterId = 32001;

}  // namespace tessera::codec
