#include "common/imageio/tiff.h"

#include "common/imageio/libtiff.h"

#include <fmt/format.h>
#include <tiffio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <functional>
#include <memory>

namespace tessera::imageio {
namespace internal {

thread_local std::string last_error;

namespace {
void Capture(const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  last_error = module != nullptr ? std::string(module) + ": " + buf : buf;
}

void Ignore(const char*, const char*, va_list) {}
}  // namespace

void InstallHandlers() {
  static const bool installed = [] {
    TIFFSetErrorHandler(Capture);
    TIFFSetWarningHandler(Ignore);
    return true;
  }();
  (void)installed;
}

void SetGrayscale(TIFF* t, uint32_t width, uint32_t height, size_t bytes_per_sample) {
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, static_cast<int>(bytes_per_sample * 8));
  TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
}

void TiffCloser::operator()(TIFF* t) const { TIFFClose(t); }

Result<TiffPtr> OpenTiff(const std::string& path, const char* mode) {
  InstallHandlers();
  if (mode[0] == 'r' && ::access(path.c_str(), R_OK) != 0) {
    return Error(StatusCode::kNotFound, "{}: {}", path, std::strerror(errno));
  }
  last_error.clear();
  TIFF* t = TIFFOpen(path.c_str(), mode);
  if (t == nullptr) {
    return Error(mode[0] == 'r' ? StatusCode::kDataLoss : StatusCode::kInternal, "{}: {}", path,
                 last_error.empty() ? "not a TIFF file" : last_error);
  }
  return TiffPtr(t);
}

}  // namespace internal

namespace {

using internal::InstallHandlers;
using internal::last_error;
using internal::TiffPtr;
constexpr auto Open = internal::OpenTiff;

// A read-only TIFF in memory, for TIFFClientOpen (not mapped: libtiff reads copies).
struct MemoryFile {
  const char* data;
  uint64_t size;
  uint64_t pos = 0;
};

tmsize_t MemRead(thandle_t h, void* buf, tmsize_t n) {
  auto* m = static_cast<MemoryFile*>(h);
  const uint64_t left = m->pos < m->size ? m->size - m->pos : 0;
  const uint64_t k = std::min<uint64_t>(left, n < 0 ? 0 : static_cast<uint64_t>(n));
  if (k > 0) std::memcpy(buf, m->data + m->pos, static_cast<size_t>(k));
  m->pos += k;
  return static_cast<tmsize_t>(k);
}
tmsize_t MemWrite(thandle_t, void*, tmsize_t) { return 0; }
toff_t MemSeek(thandle_t h, toff_t off, int whence) {
  auto* m = static_cast<MemoryFile*>(h);
  const uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
  m->pos = base + off;  // toff_t is unsigned: a negative offset arrives wrapped, and wraps back
  return m->pos;
}
int MemClose(thandle_t) { return 0; }
toff_t MemSize(thandle_t h) { return static_cast<MemoryFile*>(h)->size; }
int MemMap(thandle_t, void**, toff_t*) { return 0; }
void MemUnmap(thandle_t, void*, toff_t) {}

// The current page's shape and type, checked.
Result<TiffInfo> PageInfo(TIFF* t, const std::string& path) {
  TiffInfo info;
  uint16_t spp = 1, bps = 0, format = SAMPLEFORMAT_UINT;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &info.width);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &info.height);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &format);
  if (spp != 1) {
    return Error(StatusCode::kInvalidArgument,
                 "{}: {} samples per pixel; Tessera ingests grayscale tiles, one channel per file",
                 path, spp);
  }
  if (format != SAMPLEFORMAT_UINT || (bps != 8 && bps != 16)) {
    return Error(StatusCode::kInvalidArgument,
                 "{}: {}-bit {} samples; Tessera ingests unsigned 8- or 16-bit tiles", path, bps,
                 format == SAMPLEFORMAT_IEEEFP ? "float" : format == SAMPLEFORMAT_INT ? "signed" : "other");
  }
  if (info.width == 0 || info.height == 0) {
    return Error(StatusCode::kDataLoss, "{}: the image is empty", path);
  }
  if (info.width > kMaxFrameEdge || info.height > kMaxFrameEdge) {
    return Error(StatusCode::kInvalidArgument, "{}: {}x{} pixels, over the limit of {} a side (kMaxFrameEdge)", path,
                 info.width, info.height, kMaxFrameEdge);
  }
  if (TIFFIsTiled(t) != 0) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    if (tw == 0 || th == 0 || tw > kMaxFrameEdge || th > kMaxFrameEdge) {
      return Error(StatusCode::kDataLoss, "{}: tiles of {}x{} pixels", path, tw, th);
    }
  }
  info.dtype = bps == 8 ? Dtype::kUint8 : Dtype::kUint16;
  info.planes = 1;
  return info;
}

// Every page's header, from the current directory on; `file_bytes` bounds the pixels.
Result<TiffInfo> Probe(TIFF* t, const std::string& path, uint64_t file_bytes) {
  TESSERA_ASSIGN_OR_RETURN(TiffInfo first, PageInfo(t, path));
  first.planes = 0;
  do {
    if (first.planes == kMaxZPlanes) {
      return Error(StatusCode::kInvalidArgument, "{}: more than {} pages (kMaxZPlanes)", path, kMaxZPlanes);
    }
    TESSERA_ASSIGN_OR_RETURN(TiffInfo page, PageInfo(t, path));
    if (page.width != first.width || page.height != first.height || page.dtype != first.dtype) {
      return Error(StatusCode::kInvalidArgument, "{}: page {} differs in shape or type from page 0",
                   path, first.planes);
    }
    ++first.planes;
  } while (TIFFReadDirectory(t) != 0);
  // At most 2^16 x 2^16 x 2 x 10^5 < 2^64: no overflow.
  const uint64_t bytes = uint64_t{first.width} * first.height * DtypeSize(first.dtype) * first.planes;
  if (bytes / kMaxTiffExpansion > file_bytes) {
    return Error(StatusCode::kDataLoss,
                 "{}: {} pages of {}x{} pixels would be {} bytes, over {} times the file's {} bytes (kMaxTiffExpansion)",
                 path, first.planes, first.width, first.height, bytes, kMaxTiffExpansion, file_bytes);
  }
  return first;
}

// Page p's pixels, row by row: `room(end)` makes the page's first `end` bytes writable and
// returns where the page starts, so that a buffer may grow as rows decode (memory follows the
// data read, never the sizes a header claims).
using Room = std::function<uint8_t*(size_t end)>;
Status ReadPage(TIFF* t, const std::string& path, const TiffInfo& info, uint32_t p, uint64_t file_bytes,
                const Room& room) {
  const size_t elem = DtypeSize(info.dtype);
  const size_t row_bytes = size_t{info.width} * elem;
  if (TIFFCurrentDirectory(t) != p && TIFFSetDirectory(t, static_cast<tdir_t>(p)) == 0) {
    return Error(StatusCode::kDataLoss, "{}: cannot read page {}", path, p);
  }
  TESSERA_ASSIGN_OR_RETURN(TiffInfo page, PageInfo(t, path));
  if (page.width != info.width || page.height != info.height || page.dtype != info.dtype) {
    return Error(StatusCode::kDataLoss, "{}: page {} changed between reads", path, p);
  }
  last_error.clear();
  if (TIFFIsTiled(t) != 0) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    const uint64_t tile_bytes = uint64_t{tw} * th * elem;
    if (tile_bytes / kMaxTiffExpansion > file_bytes || TIFFTileSize64(t) < tile_bytes) {
      return Error(StatusCode::kDataLoss, "{}: tiles of {}x{} pixels in a file of {} bytes", path, tw, th, file_bytes);
    }
    std::vector<uint8_t> tile(static_cast<size_t>(TIFFTileSize64(t)));
    for (uint32_t y = 0; y < info.height; y += th) {
      const uint32_t rows = std::min(th, info.height - y);
      uint8_t* page = room((size_t{y} + rows) * row_bytes);
      for (uint32_t x = 0; x < info.width; x += tw) {
        const ttile_t index = TIFFComputeTile(t, x, y, 0, 0);
        if (TIFFReadEncodedTile(t, index, tile.data(), static_cast<tmsize_t>(tile.size())) < 0) {
          return Error(StatusCode::kDataLoss, "{}: damaged tile at ({}, {}): {}", path, x, y, last_error);
        }
        const uint32_t cols = std::min(tw, info.width - x);
        for (uint32_t r = 0; r < rows; ++r) {
          std::memcpy(page + (size_t{y + r} * info.width + x) * elem,
                      tile.data() + size_t{r} * tw * elem, size_t{cols} * elem);
        }
      }
    }
    return OkStatus();
  }
  if (static_cast<uint64_t>(TIFFScanlineSize64(t)) != row_bytes) {
    return Error(StatusCode::kDataLoss, "{}: rows of {} bytes, expected {}", path, TIFFScanlineSize64(t), row_bytes);
  }
  for (uint32_t y = 0; y < info.height; ++y) {
    uint8_t* page = room((size_t{y} + 1) * row_bytes);
    if (TIFFReadScanline(t, page + y * row_bytes, y, 0) < 0) {
      return Error(StatusCode::kDataLoss, "{}: damaged at row {} of page {}: {}", path, y, p,
                   last_error.empty() ? "truncated file" : last_error);
    }
  }
  return OkStatus();
}

// Every page's pixels.
Result<Image> ReadAll(TIFF* t, const std::string& path, uint64_t file_bytes) {
  TESSERA_ASSIGN_OR_RETURN(TiffInfo info, Probe(t, path, file_bytes));
  Image img;
  img.width = info.width;
  img.height = info.height;
  img.planes = info.planes;
  img.dtype = info.dtype;
  const size_t plane_bytes = size_t{info.width} * info.height * DtypeSize(info.dtype);
  for (uint32_t p = 0; p < info.planes; ++p) {
    const size_t at = p * plane_bytes;
    TESSERA_RETURN_IF_ERROR(ReadPage(t, path, info, p, file_bytes, [&](size_t end) {
      if (img.pixels.size() < at + end) img.pixels.resize(at + end);
      return img.pixels.data() + at;
    }));
  }
  return img;
}

uint64_t FileBytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

Result<TiffInfo> ProbeTiff(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(TiffPtr t, Open(path, "r"));
  return Probe(t.get(), path, FileBytes(path));
}

Result<Image> ReadTiff(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(TiffPtr t, Open(path, "r"));
  return ReadAll(t.get(), path, FileBytes(path));
}

struct TiffStack::Impl {
  TiffPtr tiff;
  std::string path;
  uint64_t file_bytes = 0;
  TiffInfo info;
};

TiffStack::TiffStack(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TiffStack::TiffStack(TiffStack&&) noexcept = default;
TiffStack& TiffStack::operator=(TiffStack&&) noexcept = default;
TiffStack::~TiffStack() = default;
const TiffInfo& TiffStack::info() const { return impl_->info; }

Result<TiffStack> TiffStack::Open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  TESSERA_ASSIGN_OR_RETURN(impl->tiff, imageio::Open(path, "r"));
  impl->path = path;
  impl->file_bytes = FileBytes(path);
  TESSERA_ASSIGN_OR_RETURN(impl->info, Probe(impl->tiff.get(), path, impl->file_bytes));
  return TiffStack(std::move(impl));
}

Status TiffStack::ReadPlane(uint32_t z, std::span<uint8_t> out) {
  Impl& m = *impl_;
  const size_t plane_bytes = size_t{m.info.width} * m.info.height * DtypeSize(m.info.dtype);
  if (z >= m.info.planes || out.size() != plane_bytes) {
    return Error(StatusCode::kInvalidArgument, "{}: page {} of {} into {} bytes (pages are {} bytes)", m.path, z,
                 m.info.planes, out.size(), plane_bytes);
  }
  // The next page follows the current one: read on instead of from the first directory.
  if (z == TIFFCurrentDirectory(m.tiff.get()) + 1u && TIFFReadDirectory(m.tiff.get()) == 0) {
    return Error(StatusCode::kDataLoss, "{}: cannot read page {}", m.path, z);
  }
  // Straight into the caller's plane, whose size was checked above.
  return ReadPage(m.tiff.get(), m.path, m.info, z, m.file_bytes, [&](size_t) { return out.data(); });
}

Result<Image> DecodeTiff(std::string_view bytes) {
  InstallHandlers();
  const std::string name = "TIFF in memory";
  MemoryFile file{bytes.data(), bytes.size()};
  last_error.clear();
  TIFF* raw = TIFFClientOpen(name.c_str(), "rm", &file, MemRead, MemWrite, MemSeek, MemClose, MemSize, MemMap,
                             MemUnmap);
  if (raw == nullptr) {
    return Error(StatusCode::kDataLoss, "{}: {}", name, last_error.empty() ? "not a TIFF file" : last_error);
  }
  TiffPtr t(raw);
  return ReadAll(t.get(), name, bytes.size());
}

namespace {

// Writes every plane of `image` as a page of the open file `t` (named `name` in errors).
Status WritePages(TIFF* t, const Image& image, const std::string& name) {
  const size_t elem = DtypeSize(image.dtype);
  const size_t row_bytes = size_t{image.width} * elem;
  const bool voxel = image.voxel_um[0] > 0 && image.voxel_um[1] > 0;
  const uint32_t channels = std::max<uint32_t>(1, image.channels);
  if (image.planes % channels != 0) {
    return Error(StatusCode::kInvalidArgument, "{}: {} planes are not {} channels of a stack", name, image.planes, channels);
  }
  const uint32_t slices = image.planes / channels;
  const std::string description =
      voxel ? fmt::format("ImageJ=1.11a\nimages={}\nchannels={}\nslices={}\n{}unit=micron\nspacing={}\nloop=false\n",
                          image.planes, channels, slices, channels > 1 ? "hyperstack=true\nmode=grayscale\n" : "",
                          image.voxel_um[2] > 0 ? image.voxel_um[2] : 1.0)
            : std::string();
  for (uint32_t page = 0; page < image.planes; ++page) {
    // ImageJ's order (channel fastest) for a hyperstack; the planes' own order otherwise.
    const uint32_t p = voxel && channels > 1 ? (page % channels) * slices + page / channels : page;
    internal::SetGrayscale(t, image.width, image.height, elem);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, image.height);
    if (image.planes > 1) {
      TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
      TIFFSetField(t, TIFFTAG_PAGENUMBER, page, image.planes);
    }
    if (voxel) {
      TIFFSetField(t, TIFFTAG_XRESOLUTION, static_cast<float>(1.0 / image.voxel_um[0]));
      TIFFSetField(t, TIFFTAG_YRESOLUTION, static_cast<float>(1.0 / image.voxel_um[1]));
      TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE);
      if (page == 0) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
    }
    const uint8_t* plane = image.pixels.data() + p * row_bytes * image.height;
    for (uint32_t y = 0; y < image.height; ++y) {
      if (TIFFWriteScanline(t, const_cast<uint8_t*>(plane + y * row_bytes), y, 0) < 0) {
        return Error(StatusCode::kInternal, "{}: write failed: {}", name, last_error);
      }
    }
    if (TIFFWriteDirectory(t) == 0) return Error(StatusCode::kInternal, "{}: write failed", name);
  }
  return OkStatus();
}

}  // namespace

Status WriteTiff(const std::string& path, const Image& image, bool bigtiff) {
  TESSERA_ASSIGN_OR_RETURN(TiffPtr t, Open(path, bigtiff ? "w8" : "w"));
  return WritePages(t.get(), image, path);
}

Result<std::string> EncodeTiff(const Image& image) {
  // Written to an anonymous in-memory file, read back, and gone with the descriptor.
  const bool bigtiff = image.pixels.size() > (uint64_t{4} << 30) - (1 << 20);
  struct Fd {
    int fd;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  } file{::memfd_create("tessera-tiff", MFD_CLOEXEC)};
  if (file.fd < 0) return Error(StatusCode::kInternal, "memfd_create: {}", std::strerror(errno));
  {
    TESSERA_ASSIGN_OR_RETURN(TiffPtr t, Open("/proc/self/fd/" + std::to_string(file.fd), bigtiff ? "w8" : "w"));
    TESSERA_RETURN_IF_ERROR(WritePages(t.get(), image, "TIFF in memory"));
  }
  std::string out(static_cast<size_t>(::lseek(file.fd, 0, SEEK_END)), '\0');
  const ssize_t got = ::pread(file.fd, out.data(), out.size(), 0);
  if (got != static_cast<ssize_t>(out.size())) return Error(StatusCode::kInternal, "reading the TIFF back failed");
  return out;
}

}  // namespace tessera::imageio
