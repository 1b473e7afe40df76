#include "common/storage/internal/hdf5_util.h"

#include <blosc.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <cstdlib>
#include <chrono>
#include <cstring>
#include <thread>
#include <mutex>

#include "common/codec/codec.h"

namespace tessera::storage::internal {
namespace {

// The Blosc filter for HDF5 (id 32001), so that this process reads and writes the
// format without a plugin. cd_values as codec::Hdf5FilterValues.
size_t BloscFilter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                   size_t* buf_size, void** buf) {
  if ((flags & H5Z_FLAG_REVERSE) != 0) {
    size_t out_bytes = 0;
    if (blosc_cbuffer_validate(*buf, nbytes, &out_bytes) != 0) return 0;
    void* out = std::malloc(out_bytes);
    if (out == nullptr) return 0;
    const int n = blosc_decompress_ctx(*buf, out, out_bytes, 1);
    if (n < 0 || static_cast<size_t>(n) != out_bytes) {
      std::free(out);
      return 0;
    }
    std::free(*buf);
    *buf = out;
    *buf_size = out_bytes;
    return out_bytes;
  }
  const size_t typesize = cd_nelmts > 2 && cd_values[2] > 0 ? cd_values[2] : 1;
  const int level = cd_nelmts > 4 ? static_cast<int>(cd_values[4]) : 5;
  const int shuffle = cd_nelmts > 5 ? static_cast<int>(cd_values[5]) : 1;
  const char* compressor = cd_nelmts > 6 && cd_values[6] == 5 ? "zstd" : "lz4";
  const size_t out_size = nbytes + BLOSC_MAX_OVERHEAD;
  void* out = std::malloc(out_size);
  if (out == nullptr) return 0;
  const int n = blosc_compress_ctx(level, shuffle, typesize, nbytes, *buf, out, out_size,
                                   compressor, 0, 1);
  if (n <= 0) {
    std::free(out);
    return 0;
  }
  std::free(*buf);
  *buf = out;
  *buf_size = out_size;
  return static_cast<size_t>(n);
}

const H5Z_class2_t kBloscClass = {
    H5Z_CLASS_T_VERS, static_cast<H5Z_filter_t>(codec::kHdf5BloscFilterId), 1, 1, "blosc",
    nullptr,          nullptr,                                              BloscFilter};

herr_t CollectError(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n < 3 && err->desc != nullptr) {
    if (!out->empty()) *out += "; ";
    *out += err->desc;
  }
  return 0;
}

}  // namespace

void Handle::Reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void InitHdf5() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5open();
    H5Zregister(&kBloscClass);
  });
  // Debian's HDF5 is its thread-safe build, whose error stacks (and their printing) are per
  // thread: each thread that calls HDF5 silences its own.
  thread_local bool quiet = false;
  if (!quiet) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    quiet = true;
  }
}

Status LastError(StatusCode code, const std::string& what) {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, CollectError, &detail);
  H5Eclear2(H5E_DEFAULT);
  const bool full = detail.find("No space left") != std::string::npos ||
                    detail.find("errno = 28") != std::string::npos ||
                    detail.find("File too large") != std::string::npos;
  if (full) {
    return Error(StatusCode::kResourceExhausted,
                 "{}: the disk is full (No space left on device); free space or move the data "
                 "folder, then restart the slide's writer",
                 what);
  }
  // HDF5's messages carry timestamps and addresses over several lines: keep the first line.
  if (const auto nl = detail.find('\n'); nl != std::string::npos) detail.resize(nl);
  return Error(code, "{}{}{}", what, detail.empty() ? "" : ": ", detail);
}

Handle StringType() {
  Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

Status WriteStringAttr(hid_t obj, const char* name, const std::string& value) {
  Handle type = StringType();
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  const char* ptr = value.c_str();
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), &ptr) < 0) {
    return LastError(StatusCode::kInternal, std::string("cannot write attribute ") + name);
  }
  return OkStatus();
}

Result<std::string> ReadStringAttr(hid_t obj, const char* name) {
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT));
  if (!attr.valid()) {
    return LastError(StatusCode::kDataLoss, std::string("missing attribute ") + name);
  }
  Handle type = StringType();
  char* ptr = nullptr;
  if (H5Aread(attr.get(), type.get(), &ptr) < 0 || ptr == nullptr) {
    return LastError(StatusCode::kDataLoss, std::string("cannot read attribute ") + name);
  }
  std::string out(ptr);
  H5free_memory(ptr);
  return out;
}

// A dataset written whole at creation (positions, grid, names).
Status WriteSmallDataset(hid_t group, const char* name, hid_t file_type, hid_t mem_type,
                         std::vector<hsize_t> dims, const void* data) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle ds(H5Dcreate2(group, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!ds.valid() || H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    return LastError(StatusCode::kInternal, std::string("cannot write dataset ") + name);
  }
  return OkStatus();
}

Handle FileAccess() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  H5Pset_file_locking(fapl.get(), /*use_file_locking=*/false, /*ignore_when_disabled=*/true);
  return fapl;
}

Result<WriterLock> WriterLock::Take(const std::string& path, int wait_ms) {
  WriterLock lock;
  lock.fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (lock.fd_ < 0) {
    return Error(StatusCode::kInternal, "cannot open {} to lock it: {}", path, std::strerror(errno));
  }
  struct flock l {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (::fcntl(lock.fd_, F_OFD_SETLK, &l) != 0 && (errno == EAGAIN || errno == EACCES) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the holder is closing the file
    l = {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
  }
  if (::fcntl(lock.fd_, F_OFD_SETLK, &l) != 0) {
    const int err = errno;
    if (err == EAGAIN || err == EACCES) {
      l = {};
      l.l_type = F_WRLCK;
      l.l_whence = SEEK_SET;
      ::fcntl(lock.fd_, F_OFD_GETLK, &l);
      return Error(StatusCode::kFailedPrecondition,
                   "{} is open for writing by another process{}: a slide file has one writer", path,
                   l.l_pid > 0 ? fmt::format(" (pid {})", l.l_pid) : std::string());
    }
    return Error(StatusCode::kInternal, "cannot lock {}: {}", path, std::strerror(err));
  }
  return lock;
}

WriterLock& WriterLock::operator=(WriterLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the description releases the lock
}

}  // namespace tessera::storage::internal
