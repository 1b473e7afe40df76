#include "common/storage/internal/recording_driver.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include "common/storage/internal/direct_writer.h"
#include "common/storage/internal/hdf5_util.h"

namespace tessera::storage::internal {
namespace {

thread_local RawWrites* current = nullptr;

// Raw-data writes this large go through the DirectWriter (a chunk is hundreds of KB); smaller
// ones, and all metadata, through sec2.
constexpr size_t kMinDirect = size_t{64} << 10;

// Our H5FD_t (HDF5 fills the public part, which comes first), the sec2 file it forwards to, and,
// for a file open for writing on a file system that takes O_DIRECT, its direct writes.
struct File {
  H5FD_t pub{};
  H5FD_t* inner = nullptr;
  std::unique_ptr<DirectWriter> direct;
};

File* Of(H5FD_t* f) { return reinterpret_cast<File*>(f); }
H5FD_t* Inner(const H5FD_t* f) { return reinterpret_cast<const File*>(f)->inner; }

herr_t DirectFailed(const DirectWriter& d) {
  const int err = d.error();
  H5Epush2(H5E_DEFAULT, __FILE__, "tessera_recording", __LINE__, H5E_ERR_CLS, H5E_VFL, H5E_WRITEERROR,
           "direct write failed, errno = %d, error message = '%s'", err, std::strerror(err != 0 ? err : EIO));
  return -1;
}

// Everything the DirectWriter holds, in the file.
herr_t Drain(H5FD_t* f) {
  DirectWriter* d = Of(f)->direct.get();
  return d == nullptr || d->Drain() ? 0 : DirectFailed(*d);
}

H5FD_t* Open(const char* name, unsigned flags, hid_t /*fapl*/, haddr_t maxaddr) {
  Handle sec2(H5Pcreate(H5P_FILE_ACCESS));
  if (!sec2.valid() || H5Pset_fapl_sec2(sec2.get()) < 0) return nullptr;
  H5FD_t* inner = H5FDopen(name, flags, sec2.get(), maxaddr);
  if (inner == nullptr) return nullptr;
  auto* f = new File;
  f->inner = inner;
  if ((flags & H5F_ACC_RDWR) != 0) {
    f->direct = DirectWriter::Open(name, [inner](uint64_t at, std::span<const uint8_t> bytes) {
      return H5FDwrite(inner, H5FD_MEM_DRAW, H5P_DEFAULT, at, bytes.size(), bytes.data()) >= 0;
    });
  }
  return &f->pub;
}

herr_t Close(H5FD_t* f) {
  herr_t r = Drain(f);
  Of(f)->direct.reset();
  if (H5FDclose(Inner(f)) < 0) r = -1;
  delete Of(f);
  return r;
}

int Cmp(const H5FD_t* a, const H5FD_t* b) { return H5FDcmp(Inner(a), Inner(b)); }

herr_t Query(const H5FD_t* f, unsigned long* flags) {
  if (f == nullptr) {  // the class's features: sec2's
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA | H5FD_FEAT_POSIX_COMPAT_HANDLE | H5FD_FEAT_SUPPORTS_SWMR_IO |
             H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
    return 0;
  }
  return H5FDquery(Inner(f), flags);
}

haddr_t GetEoa(const H5FD_t* f, H5FD_mem_t type) { return H5FDget_eoa(Inner(f), type); }
herr_t SetEoa(H5FD_t* f, H5FD_mem_t type, haddr_t addr) { return H5FDset_eoa(Inner(f), type, addr); }
haddr_t GetEof(const H5FD_t* f, H5FD_mem_t type) {
  const haddr_t eof = H5FDget_eof(Inner(f), type);
  const DirectWriter* d = reinterpret_cast<const File*>(f)->direct.get();
  return d == nullptr || eof == HADDR_UNDEF ? eof : std::max<haddr_t>(eof, d->end());
}
herr_t GetHandle(H5FD_t* f, hid_t fapl, void** handle) { return H5FDget_vfd_handle(Inner(f), fapl, handle); }

herr_t Read(H5FD_t* f, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void* buf) {
  if (DirectWriter* d = Of(f)->direct.get(); d != nullptr && d->Holds(addr, size) && Drain(f) < 0) return -1;
  return H5FDread(Inner(f), type, dxpl, addr, size, buf);
}

herr_t Write(H5FD_t* f, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, const void* buf) {
  herr_t r = 0;
  DirectWriter* d = Of(f)->direct.get();
  if (d != nullptr && type == H5FD_MEM_DRAW && size >= kMinDirect) {
    if (!d->Append(addr, {static_cast<const uint8_t*>(buf), size})) return DirectFailed(*d);
  } else {
    // Metadata waits for the chunks before it: an index in the file points at bytes in the file.
    if (d != nullptr && (type != H5FD_MEM_DRAW || d->Holds(addr, size)) && Drain(f) < 0) return -1;
    r = H5FDwrite(Inner(f), type, dxpl, addr, size, buf);
  }
  if (r >= 0 && type == H5FD_MEM_DRAW && current != nullptr) current->Add({addr, size});
  return r;
}

herr_t Flush(H5FD_t* f, hid_t dxpl, hbool_t closing) {
  return Drain(f) < 0 ? -1 : H5FDflush(Inner(f), dxpl, closing);
}
herr_t Truncate(H5FD_t* f, hid_t dxpl, hbool_t closing) {
  return Drain(f) < 0 ? -1 : H5FDtruncate(Inner(f), dxpl, closing);
}
herr_t Lock(H5FD_t* f, hbool_t rw) { return H5FDlock(Inner(f), rw); }
herr_t Unlock(H5FD_t* f) { return H5FDunlock(Inner(f)); }

const H5FD_class_t kClass = {
    "tessera_recording",
    static_cast<haddr_t>(INT64_MAX),  // as sec2: offsets are off_t
    H5F_CLOSE_WEAK,
    nullptr,  // terminate
    nullptr, nullptr, nullptr,  // no superblock driver info: the file is sec2's to any reader
    0, nullptr, nullptr, nullptr,  // no driver properties
    0, nullptr, nullptr,
    Open, Close, Cmp, Query,
    nullptr,  // get_type_map
    nullptr, nullptr,  // alloc, free: HDF5's own, through the end of allocation
    GetEoa, SetEoa, GetEof, GetHandle, Read, Write, Flush, Truncate, Lock, Unlock,
    H5FD_FLMAP_DICHOTOMY,
};

}  // namespace

Status UseRecordingDriver(hid_t fapl) {
  static std::once_flag once;
  static hid_t id = H5I_INVALID_HID;
  std::call_once(once, [] { id = H5FDregister(&kClass); });
  if (id < 0 || H5Pset_driver(fapl, id, nullptr) < 0) {
    return LastError(StatusCode::kInternal, "cannot set the recording HDF5 file driver");
  }
  return OkStatus();
}

RawWrites::RawWrites() : outer_(current) { current = this; }
RawWrites::~RawWrites() { current = outer_; }

}  // namespace tessera::storage::internal
