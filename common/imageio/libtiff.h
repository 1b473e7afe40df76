// libtiff as the readers and writers of this folder open it: errors captured per thread (the
// last one named in our statuses), warnings dropped, handles closed by unique_ptr. Internal to
// common/imageio (includes <tiffio.h>).
#pragma once

#include <tiffio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status/status.h"

namespace tessera::imageio::internal {

/// libtiff's last error on this thread (cleared by OpenTiff).
extern thread_local std::string last_error;

/// Routes libtiff's errors to last_error and drops its warnings (once per process).
void InstallHandlers();

struct TiffCloser {
  void operator()(TIFF* t) const;
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

/// The tags of a grayscale page of unsigned `bytes_per_sample`-byte samples, width x height.
void SetGrayscale(TIFF* t, uint32_t width, uint32_t height, size_t bytes_per_sample);

/// TIFFOpen: NOT_FOUND for a missing file to read, DATA_LOSS for one that is not a TIFF,
/// INTERNAL for one that cannot be created.
Result<TiffPtr> OpenTiff(const std::string& path, const char* mode);

}  // namespace tessera::imageio::internal
