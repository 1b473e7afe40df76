#include "common/imageio/tiff.h"

#include <tiffio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstring>
#include <memory>

namespace tessera::imageio {
namespace {

thread_local std::string last_error;

void Capture(const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  last_error = module != nullptr ? std::string(module) + ": " + buf : buf;
}

void Ignore(const char*, const char*, va_list) {}

struct Closer {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, Closer>;

Result<TiffPtr> Open(const std::string& path, const char* mode) {
  static const bool installed = [] {
    TIFFSetErrorHandler(Capture);
    TIFFSetWarningHandler(Ignore);
    return true;
  }();
  (void)installed;
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
  info.dtype = bps == 8 ? Dtype::kUint8 : Dtype::kUint16;
  info.planes = 1;
  return info;
}

}  // namespace

Result<TiffInfo> ProbeTiff(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(TiffPtr t, Open(path, "r"));
  TESSERA_ASSIGN_OR_RETURN(TiffInfo first, PageInfo(t.get(), path));
  first.planes = 0;
  do {
    TESSERA_ASSIGN_OR_RETURN(TiffInfo page, PageInfo(t.get(), path));
    if (page.width != first.width || page.height != first.height || page.dtype != first.dtype) {
      return Error(StatusCode::kInvalidArgument, "{}: page {} differs in shape or type from page 0",
                   path, first.planes);
    }
    ++first.planes;
  } while (TIFFReadDirectory(t.get()) != 0);
  return first;
}

Result<Image> ReadTiff(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(TiffInfo info, ProbeTiff(path));
  TESSERA_ASSIGN_OR_RETURN(TiffPtr t, Open(path, "r"));
  Image img;
  img.width = info.width;
  img.height = info.height;
  img.planes = info.planes;
  img.dtype = info.dtype;
  const size_t elem = DtypeSize(info.dtype);
  const size_t row_bytes = size_t{info.width} * elem;
  const size_t plane_bytes = row_bytes * info.height;
  img.pixels.resize(plane_bytes * info.planes);
  for (uint32_t p = 0; p < info.planes; ++p) {
    if (TIFFSetDirectory(t.get(), static_cast<tdir_t>(p)) == 0) {
      return Error(StatusCode::kDataLoss, "{}: cannot read page {}", path, p);
    }
    uint8_t* plane = img.pixels.data() + p * plane_bytes;
    last_error.clear();
    if (TIFFIsTiled(t.get()) != 0) {
      uint32_t tw = 0, th = 0;
      TIFFGetField(t.get(), TIFFTAG_TILEWIDTH, &tw);
      TIFFGetField(t.get(), TIFFTAG_TILELENGTH, &th);
      std::vector<uint8_t> tile(static_cast<size_t>(TIFFTileSize(t.get())));
      for (uint32_t y = 0; y < info.height; y += th) {
        for (uint32_t x = 0; x < info.width; x += tw) {
          if (TIFFReadTile(t.get(), tile.data(), x, y, 0, 0) < 0) {
            return Error(StatusCode::kDataLoss, "{}: damaged tile at ({}, {}): {}", path, x, y, last_error);
          }
          const uint32_t rows = std::min(th, info.height - y), cols = std::min(tw, info.width - x);
          for (uint32_t r = 0; r < rows; ++r) {
            std::memcpy(plane + (size_t{y + r} * info.width + x) * elem, tile.data() + size_t{r} * tw * elem,
                        size_t{cols} * elem);
          }
        }
      }
    } else {
      for (uint32_t y = 0; y < info.height; ++y) {
        if (TIFFReadScanline(t.get(), plane + y * row_bytes, y, 0) < 0) {
          return Error(StatusCode::kDataLoss, "{}: damaged at row {} of page {}: {}", path, y, p,
                       last_error.empty() ? "truncated file" : last_error);
        }
      }
    }
  }
  return img;
}

namespace {

// Writes every plane of `image` as a page of the open file `t` (named `name` in errors).
Status WritePages(TIFF* t, const Image& image, const std::string& name) {
  const size_t elem = DtypeSize(image.dtype);
  const size_t row_bytes = size_t{image.width} * elem;
  for (uint32_t p = 0; p < image.planes; ++p) {
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, image.width);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, image.height);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, static_cast<int>(elem * 8));
    TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, image.height);
    if (image.planes > 1) {
      TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
      TIFFSetField(t, TIFFTAG_PAGENUMBER, p, image.planes);
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
