// HDF5 plumbing shared by the storage code: handle ownership, error capture, the
// Blosc filter registration. Private to common/storage.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

#include "common/status/status.h"

namespace tessera::storage::internal {

/// Owns an hid_t and closes it with the right H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      Reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~Handle() { Reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void Reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// Registers the Blosc filter (32001) in this process and silences HDF5's automatic error
/// printing on the calling thread. Idempotent, thread-safe, cheap: called at every entry to
/// HDF5 from storage/.
void InitHdf5();

/// A Status for the HDF5 call that just failed: `what` plus the innermost messages
/// of HDF5's error stack. RESOURCE_EXHAUSTED when the cause is a full disk.
Status LastError(StatusCode code, const std::string& what);

/// The file access properties every Tessera file is opened with: the latest format, strong
/// close, and HDF5's own file locks off. HDF5 1.10 locks with flock(), and a SWMR reader's
/// lock stops a writer restarted after a crash from opening the file again; storage/ owns
/// the exclusion instead (WriterLock): one writer per file, any number of readers.
Handle FileAccess();

/// An exclusive lock on a file for its one writer: an open-file-description lock (fcntl
/// F_OFD_SETLK) on the file itself, which HDF5 readers' flock() never meets and the kernel
/// drops when the writer dies. FAILED_PRECONDITION when another process holds it for longer
/// than `wait_ms` (a writer taking over from one still closing the file waits for it).
class WriterLock {
 public:
  static Result<WriterLock> Take(const std::string& path, int wait_ms = 0);
  WriterLock() = default;
  WriterLock(WriterLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  WriterLock& operator=(WriterLock&& o) noexcept;
  ~WriterLock();

 private:
  int fd_ = -1;
};

/// A variable-length UTF-8 string type.
Handle StringType();
Status WriteStringAttr(hid_t obj, const char* name, const std::string& value);
/// DATA_LOSS when missing or unreadable.
Result<std::string> ReadStringAttr(hid_t obj, const char* name);
/// A dataset written whole at creation.
Status WriteSmallDataset(hid_t group, const char* name, hid_t file_type, hid_t mem_type, std::vector<hsize_t> dims,
                         const void* data);

}  // namespace tessera::storage::internal
