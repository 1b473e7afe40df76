// The writer's HDF5 file driver: POSIX I/O as HDF5's sec2 driver (which it wraps), and it
// tells where each raw-data write landed, so that the writer can record each chunk's place in
// the file for readers that read chunks without HDF5 (pread, in parallel, outside HDF5's one
// lock). A file open for writing sends its chunks (raw-data writes of 64 KB and more) through
// a DirectWriter: O_DIRECT, behind the caller, drained before every flush and metadata write.
// The file it writes is an ordinary HDF5 file: any reader opens it with sec2. Private to
// common/storage.
//
//   Handle fapl = FileAccess();
//   UseRecordingDriver(fapl.get());
//   ...
//   RawWrites writes;                  // this thread's raw-data writes, from here on
//   H5Dwrite_chunk(ds, ...);
//   if (writes.count() == 1) place = {writes.last().offset, writes.last().size};
#pragma once

#include <hdf5.h>

#include <cstdint>

#include "common/status/status.h"

namespace tessera::storage::internal {

/// Sets the recording driver on a file access property list. Thread-safe.
Status UseRecordingDriver(hid_t fapl);

/// The raw-data writes the recording driver made on this thread while this lives.
class RawWrites {
 public:
  struct Write {
    uint64_t offset = 0, size = 0;
  };
  RawWrites();
  ~RawWrites();
  RawWrites(const RawWrites&) = delete;
  RawWrites& operator=(const RawWrites&) = delete;

  int count() const { return count_; }
  Write last() const { return last_; }
  void Add(Write w) {
    ++count_;
    last_ = w;
  }

 private:
  RawWrites* outer_;
  int count_ = 0;
  Write last_;
};

}  // namespace tessera::storage::internal
