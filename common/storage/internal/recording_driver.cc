#include "common/storage/internal/recording_driver.h"

#include <cstdlib>
#include <mutex>

#include "common/storage/internal/hdf5_util.h"

namespace tessera::storage::internal {
namespace {

thread_local RawWrites* current = nullptr;

// Our H5FD_t (HDF5 fills the public part) and the sec2 file it forwards to.
struct File {
  H5FD_t pub;
  H5FD_t* inner;
};

H5FD_t* Inner(const H5FD_t* f) { return reinterpret_cast<const File*>(f)->inner; }

H5FD_t* Open(const char* name, unsigned flags, hid_t /*fapl*/, haddr_t maxaddr) {
  Handle sec2(H5Pcreate(H5P_FILE_ACCESS));
  if (!sec2.valid() || H5Pset_fapl_sec2(sec2.get()) < 0) return nullptr;
  H5FD_t* inner = H5FDopen(name, flags, sec2.get(), maxaddr);
  if (inner == nullptr) return nullptr;
  auto* f = static_cast<File*>(std::calloc(1, sizeof(File)));
  if (f == nullptr) {
    H5FDclose(inner);
    return nullptr;
  }
  f->inner = inner;
  return &f->pub;
}

herr_t Close(H5FD_t* f) {
  const herr_t r = H5FDclose(Inner(f));
  std::free(f);
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
haddr_t GetEof(const H5FD_t* f, H5FD_mem_t type) { return H5FDget_eof(Inner(f), type); }
herr_t GetHandle(H5FD_t* f, hid_t fapl, void** handle) { return H5FDget_vfd_handle(Inner(f), fapl, handle); }

herr_t Read(H5FD_t* f, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void* buf) {
  return H5FDread(Inner(f), type, dxpl, addr, size, buf);
}

herr_t Write(H5FD_t* f, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, const void* buf) {
  const herr_t r = H5FDwrite(Inner(f), type, dxpl, addr, size, buf);
  if (r >= 0 && type == H5FD_MEM_DRAW && current != nullptr) current->Add({addr, size});
  return r;
}

herr_t Flush(H5FD_t* f, hid_t dxpl, hbool_t closing) { return H5FDflush(Inner(f), dxpl, closing); }
herr_t Truncate(H5FD_t* f, hid_t dxpl, hbool_t closing) { return H5FDtruncate(Inner(f), dxpl, closing); }
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
