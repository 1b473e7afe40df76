#include "common/imageio/ome_tiff.h"

#include <fmt/format.h>
#include <libdeflate.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "common/imageio/libtiff.h"

namespace tessera::imageio {
namespace {

using internal::last_error;
using internal::TiffPtr;

// The widest image a layout may name: the largest mosaic the scan plan's positions allow.
constexpr uint64_t kMaxOmeEdge = uint64_t{kMaxFrameEdge} * 64;
constexpr int kDeflateLevel = 1;  // libdeflate's fastest: 4x level 6's speed for 1 % more bytes (docs/benchmarks.md)

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0 (tab, newline and return are).
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n' || c == '\r') out += c;
    }
  }
  return out;
}

// TIFF's horizontal predictor (Predictor 2): each sample less the one to its left, per row.
template <typename T>
void Difference(uint8_t* tile, uint32_t edge) {
  for (uint32_t y = 0; y < edge; ++y) {
    T* row = reinterpret_cast<T*>(tile) + size_t{y} * edge;
    for (uint32_t x = edge - 1; x > 0; --x) row[x] = static_cast<T>(row[x] - row[x - 1]);
  }
}

struct Deflater {
  libdeflate_compressor* c = libdeflate_alloc_compressor(kDeflateLevel);
  Deflater() = default;
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  ~Deflater() { libdeflate_free_compressor(c); }
};

}  // namespace

std::string OmeXml(const OmeTiffLayout& layout) {
  const auto& full = layout.sizes.at(0);
  std::string physical;
  static constexpr const char* kAxis[3] = {"X", "Y", "Z"};
  for (int i = 0; i < 3; ++i) {
    if (layout.voxel_um[i] > 0) {
      physical += fmt::format(" PhysicalSize{}=\"{}\" PhysicalSize{}Unit=\"\xC2\xB5m\"", kAxis[i], layout.voxel_um[i],
                              kAxis[i]);
    }
  }
  const uint32_t bits = static_cast<uint32_t>(DtypeSize(layout.dtype) * 8);
  std::string channels;
  for (size_t c = 0; c < layout.channels.size(); ++c) {
    const OmeChannel& ch = layout.channels[c];
    // OME's Color: RGBA packed in a signed 32-bit integer.
    const auto rgba = static_cast<int32_t>((uint32_t{ch.r} << 24) | (uint32_t{ch.g} << 16) | (uint32_t{ch.b} << 8) | 0xFF);
    channels += fmt::format("      <Channel ID=\"Channel:0:{}\" Name=\"{}\" SamplesPerPixel=\"1\" Color=\"{}\"/>\n", c,
                            XmlEscape(ch.name), rgba);
  }
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" "
      "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
      "xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 "
      "http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" Creator=\"Tessera\">\n"
      "  <Image ID=\"Image:0\" Name=\"{}\">\n"
      "    <Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"{}\" SignificantBits=\"{}\" BigEndian=\"false\" "
      "Interleaved=\"false\" SizeX=\"{}\" SizeY=\"{}\" SizeC=\"{}\" SizeZ=\"{}\" SizeT=\"1\"{}>\n"
      "{}"
      "      <TiffData IFD=\"0\" PlaneCount=\"{}\"/>\n"
      "    </Pixels>\n"
      "  </Image>\n"
      "</OME>\n",
      XmlEscape(layout.name), DtypeName(layout.dtype), bits, full[0], full[1], layout.channels.size(), layout.planes,
      physical, channels, layout.channels.size() * layout.planes);
}

struct OmeTiffWriter::Impl {
  std::string path;
  OmeTiffLayout layout;
  TiffPtr tiff;
  size_t elem = 2;
  uint32_t channels = 1;
  // The next box: plane (channel fastest), level, tile row, first tile column.
  uint32_t plane = 0, level = 0, tile_row = 0, tile_col = 0;
  bool finished = false;
  uint64_t written = 0, taken = 0, tiles_total = 0, tiles_done = 0;
  std::vector<std::vector<uint8_t>> raw, packed;  // per tile of a batch, reused
  std::vector<size_t> packed_size;
  std::vector<std::unique_ptr<Deflater>> deflaters;  // one per thread

  uint32_t TilesAcross(uint32_t l) const { return (layout.sizes[l][0] + layout.tile - 1) / layout.tile; }
  uint32_t TilesDown(uint32_t l) const { return (layout.sizes[l][1] + layout.tile - 1) / layout.tile; }

  Status Fail(std::string_view what) const {
    return Error(StatusCode::kInternal, "{}: {} failed{}{}", path, what, last_error.empty() ? "" : ": ", last_error);
  }

  // The tags of the directory for (plane, level), before its tiles.
  void StartDirectory() {
    TIFF* t = tiff.get();
    const auto& size = layout.sizes[level];
    internal::SetGrayscale(t, size[0], size[1], elem);
    TIFFSetField(t, TIFFTAG_TILEWIDTH, layout.tile);
    TIFFSetField(t, TIFFTAG_TILELENGTH, layout.tile);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(t, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
    TIFFSetField(t, TIFFTAG_SOFTWARE, "Tessera");
    if (layout.voxel_um[0] > 0 && layout.voxel_um[1] > 0) {  // pixels per centimetre at this level
      const double sx = static_cast<double>(layout.sizes[0][0]) / size[0];
      const double sy = static_cast<double>(layout.sizes[0][1]) / size[1];
      TIFFSetField(t, TIFFTAG_XRESOLUTION, static_cast<float>(1e4 / (layout.voxel_um[0] * sx)));
      TIFFSetField(t, TIFFTAG_YRESOLUTION, static_cast<float>(1e4 / (layout.voxel_um[1] * sy)));
      TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    }
    if (level == 0) {
      TIFFSetField(t, TIFFTAG_SUBFILETYPE, 0);
      if (layout.sizes.size() > 1) {  // the next sizes - 1 directories written are this one's SubIFDs
        std::vector<toff_t> offsets(layout.sizes.size() - 1, 0);
        TIFFSetField(t, TIFFTAG_SUBIFD, static_cast<uint16_t>(offsets.size()), offsets.data());
      }
      if (plane == 0) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, OmeXml(layout).c_str());
    } else {
      TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    }
  }

  // Compresses tiles [0, n) of the batch (raw[i] filled) on every core.
  void Compress(size_t n) {
    const size_t threads = std::min(n, deflaters.size());
    const size_t tile_bytes = size_t{layout.tile} * layout.tile * elem;
    std::atomic<size_t> next{0};
    auto work = [&](Deflater& d) {
      for (size_t i = next++; i < n; i = next++) {
        if (elem == 1) Difference<uint8_t>(raw[i].data(), layout.tile);
        else Difference<uint16_t>(raw[i].data(), layout.tile);
        packed_size[i] = libdeflate_zlib_compress(d.c, raw[i].data(), tile_bytes, packed[i].data(), packed[i].size());
      }
    };
    std::vector<std::jthread> pool;
    for (size_t k = 1; k < threads; ++k) pool.emplace_back(work, std::ref(*deflaters[k]));
    work(*deflaters[0]);
  }

  void Advance(uint32_t tiles) {
    tile_col += tiles;
    if (tile_col < TilesAcross(level)) return;
    tile_col = 0;
    if (++tile_row < TilesDown(level)) return;
    tile_row = 0;
    if (++level < layout.sizes.size()) return;
    level = 0;
    if (++plane == channels * layout.planes) finished = true;
  }
};

Result<OmeTiffWriter> OmeTiffWriter::Create(const std::string& path, OmeTiffLayout layout) {
  if (layout.sizes.empty()) return Error(StatusCode::kInvalidArgument, "{}: an OME-TIFF needs a full resolution", path);
  if (layout.tile == 0 || layout.tile % 16 != 0 || layout.tile > 4096) {
    return Error(StatusCode::kInvalidArgument, "{}: tile {} is not a multiple of 16 up to 4096", path, layout.tile);
  }
  for (size_t l = 0; l < layout.sizes.size(); ++l) {
    const auto& s = layout.sizes[l];
    if (s[0] == 0 || s[1] == 0 || s[0] > kMaxOmeEdge || s[1] > kMaxOmeEdge ||
        (l > 0 && (s[0] > layout.sizes[l - 1][0] || s[1] > layout.sizes[l - 1][1]))) {
      return Error(StatusCode::kInvalidArgument,
                   "{}: level {} is {} x {}: each level 1 to {} pixels a side and no larger than the one before", path,
                   l, s[0], s[1], kMaxOmeEdge);
    }
  }
  if (layout.sizes.size() > 64) return Error(StatusCode::kInvalidArgument, "{}: more than 64 levels", path);
  if (layout.channels.empty() || layout.channels.size() > kMaxChannels || layout.planes == 0 ||
      layout.planes > kMaxZPlanes) {
    return Error(StatusCode::kInvalidArgument, "{}: {} channels x {} planes: 1 to {} channels and 1 to {} planes", path,
                 layout.channels.size(), layout.planes, kMaxChannels, kMaxZPlanes);
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->elem = DtypeSize(layout.dtype);
  impl->channels = static_cast<uint32_t>(layout.channels.size());
  layout.batch_tiles = std::clamp<uint32_t>(layout.batch_tiles, 1, 256);
  impl->layout = std::move(layout);
  const OmeTiffLayout& l = impl->layout;
  uint64_t pixel_bytes = 0;
  for (size_t k = 0; k < l.sizes.size(); ++k) {
    pixel_bytes += uint64_t{l.sizes[k][0]} * l.sizes[k][1] * impl->elem;
    impl->tiles_total += uint64_t{impl->TilesAcross(static_cast<uint32_t>(k))} * impl->TilesDown(static_cast<uint32_t>(k));
  }
  pixel_bytes *= uint64_t{impl->channels} * l.planes;
  impl->tiles_total *= uint64_t{impl->channels} * l.planes;
  // Classic TIFF's offsets end at 4 GiB; Deflate never grows a tile by much, so 2 GiB of
  // pixels is a safe line (and every reader of OME-TIFF reads BigTIFF).
  const bool big = pixel_bytes > (uint64_t{2} << 30);
  TESSERA_ASSIGN_OR_RETURN(impl->tiff, internal::OpenTiff(path, big ? "w8" : "w"));
  const size_t tile_bytes = size_t{l.tile} * l.tile * impl->elem;
  impl->raw.assign(l.batch_tiles, std::vector<uint8_t>(tile_bytes));
  impl->packed.assign(l.batch_tiles, std::vector<uint8_t>(libdeflate_zlib_compress_bound(nullptr, tile_bytes)));
  impl->packed_size.assign(l.batch_tiles, 0);
  const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
  for (size_t k = 0; k < threads; ++k) {
    impl->deflaters.push_back(std::make_unique<Deflater>());
    if (impl->deflaters.back()->c == nullptr) return Error(StatusCode::kResourceExhausted, "libdeflate: out of memory");
  }
  impl->StartDirectory();
  return OmeTiffWriter(std::move(impl));
}

OmeTiffWriter::OmeTiffWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OmeTiffWriter::OmeTiffWriter(OmeTiffWriter&&) noexcept = default;
OmeTiffWriter& OmeTiffWriter::operator=(OmeTiffWriter&&) noexcept = default;
OmeTiffWriter::~OmeTiffWriter() = default;

std::optional<OmeTiffWriter::Want> OmeTiffWriter::Next() const {
  const Impl& m = *impl_;
  if (m.finished) return std::nullopt;
  const uint32_t tile = m.layout.tile;
  const auto& size = m.layout.sizes[m.level];
  const uint32_t x = m.tile_col * tile, y = m.tile_row * tile;
  const uint32_t across = std::min(m.layout.batch_tiles, m.TilesAcross(m.level) - m.tile_col);
  return Want{.channel = m.plane % m.channels,
              .z = m.plane / m.channels,
              .level = m.level,
              .x = x,
              .y = y,
              .width = std::min(across * tile, size[0] - x),
              .height = std::min(tile, size[1] - y)};
}

Status OmeTiffWriter::Write(std::span<const uint8_t> pixels) {
  Impl& m = *impl_;
  const auto want = Next();
  if (!want) return Error(StatusCode::kFailedPrecondition, "{}: every pixel is written already", m.path);
  const size_t row_bytes = size_t{want->width} * m.elem;
  if (pixels.size() != row_bytes * want->height) {
    return Error(StatusCode::kInvalidArgument, "{}: {} bytes given for a box of {} x {} {}", m.path, pixels.size(),
                 want->width, want->height, DtypeName(m.layout.dtype));
  }
  const uint32_t tile = m.layout.tile;
  const size_t tile_row_bytes = size_t{tile} * m.elem;
  const uint32_t n = (want->width + tile - 1) / tile;
  for (uint32_t i = 0; i < n; ++i) {  // cut into tiles, the edges padded with zeros
    const uint32_t x0 = i * tile, w = std::min(tile, want->width - x0);
    uint8_t* dst = m.raw[i].data();
    for (uint32_t y = 0; y < tile; ++y) {
      uint8_t* row = dst + y * tile_row_bytes;
      if (y < want->height) {
        std::memcpy(row, pixels.data() + y * row_bytes + size_t{x0} * m.elem, size_t{w} * m.elem);
        std::memset(row + size_t{w} * m.elem, 0, tile_row_bytes - size_t{w} * m.elem);
      } else {
        std::memset(row, 0, tile_row_bytes);
      }
    }
  }
  m.Compress(n);
  TIFF* t = m.tiff.get();
  for (uint32_t i = 0; i < n; ++i) {
    if (m.packed_size[i] == 0) return Error(StatusCode::kInternal, "{}: Deflate failed", m.path);
    const ttile_t index = TIFFComputeTile(t, want->x + i * tile, want->y, 0, 0);
    if (TIFFWriteRawTile(t, index, m.packed[i].data(), static_cast<tmsize_t>(m.packed_size[i])) < 0) {
      return m.Fail("writing a tile");
    }
    m.written += m.packed_size[i];
  }
  m.taken += pixels.size();
  m.tiles_done += n;
  m.Advance(n);
  if (m.tile_col == 0 && m.tile_row == 0) {
    // The image's last tile: its directory closes, the next one's opens.
    if (TIFFWriteDirectory(t) == 0) return m.Fail("writing a directory");
    if (!m.finished) m.StartDirectory();
  }
  return OkStatus();
}

Status OmeTiffWriter::Close() {
  Impl& m = *impl_;
  if (!m.finished) {
    const auto w = Next();
    return Error(StatusCode::kFailedPrecondition, "{}: closed before channel {} plane {} level {} was written", m.path,
                 w->channel, w->z, w->level);
  }
  last_error.clear();
  m.tiff.reset();  // TIFFClose flushes
  if (!last_error.empty()) return m.Fail("closing");
  return OkStatus();
}

uint64_t OmeTiffWriter::bytes_written() const { return impl_->written; }
uint64_t OmeTiffWriter::pixel_bytes() const { return impl_->taken; }
uint64_t OmeTiffWriter::tiles_total() const { return impl_->tiles_total; }
uint64_t OmeTiffWriter::tiles_done() const { return impl_->tiles_done; }

}  // namespace tessera::imageio
