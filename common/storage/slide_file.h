// SlideFile: one slide's HDF5 file, written chunk by chunk as frames arrive.
//
// Layout (docs/format.md): /raw/tiles (T, C, Z, Y, X) chunked (1, 1, 1, cy, cx), each chunk
// a Blosc buffer stored through HDF5 filter 32001 exactly as the scanner produced it
// (direct chunk write); the zoom levels /raw/levels/L/tiles (L >= 1) laid out alike. A
// volume view written by Tessera (plan.chunk_z > 1: a fused volume) has chunks of chunk_z
// planes and levels that halve z as well (LevelShape), each level its own depth;
// /raw/positions, /raw/grid, /raw/tile_names, the written-maps and chunk checksums
// beside them; the plan, header, pixel sizes and channel names as attributes.
// h5py + hdf5plugin read it with no Tessera code. Every dataset is created with the file
// (SWMR allows no new objects later), so its size is declared up front.
//
// Crash rule: the file is written in HDF5's single-writer/multiple-reader (SWMR) mode,
// which orders metadata writes so that the file on disk is always consistent. A frame
// counts as stored once Sync() has returned after MarkWritten(): /raw/written says so,
// and after kill -9 of the writer OpenForWrite() resumes with exactly those frames.
//
//   auto file = SlideFile::Create("s-1.h5", plan, "s-1");
//   file.value()->WriteChunk({key, /*level=*/0, cy, cx}, blosc_bytes, checksum);
//   file.value()->MarkWritten(plan.FrameIndex(key));
//   Status s = file.value()->Sync(/*fsync=*/true);   // now durable
//
// One writer, any number of readers: Create and OpenForWrite take the file's writer lock
// (FAILED_PRECONDITION while another process writes it); readers take no lock, so a reader
// never stops a writer restarted after a crash. HDF5's own flock() locking is off.
// Not thread-safe: a SlideFile object has one owner (the slide writer, or one reader).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera::storage {

inline constexpr int kFormatVersion = 2;

class SlideFile {
 public:
  /// Creates `path` for `plan` and opens it for writing. ALREADY_EXISTS if it exists.
  static Result<std::unique_ptr<SlideFile>> Create(const std::string& path, const ScanPlan& plan,
                                                   const std::string& slide_id);
  /// Opens an existing slide file for writing again, e.g. after the writer was killed:
  /// clears the stale "open for writing" mark and resumes from what was synced.
  /// FAILED_PRECONDITION when another process has it open for writing.
  static Result<std::unique_ptr<SlideFile>> OpenForWrite(const std::string& path);
  /// Opens read-only; works while a writer has the file open (SWMR read).
  static Result<std::unique_ptr<SlideFile>> OpenForRead(const std::string& path);

  ~SlideFile();
  SlideFile(const SlideFile&) = delete;
  SlideFile& operator=(const SlideFile&) = delete;

  const ScanPlan& plan() const;
  const std::string& slide_id() const;
  const std::string& path() const;

  /// Stores one Blosc chunk (of any level) as is. The caller has validated it.
  /// RESOURCE_EXHAUSTED when the disk is full, INTERNAL for other HDF5 failures.
  Status WriteChunk(const ChunkKey& key, std::span<const uint8_t> blosc, uint64_t checksum);
  /// Records that every level-0 chunk of the frame is written; on disk at the next Sync().
  void MarkWritten(uint64_t frame_index);
  bool IsWritten(uint64_t frame_index) const;
  /// Records that every chunk of every level >= 1 of the frame is written.
  void MarkLevelsWritten(uint64_t frame_index);
  bool LevelsWritten(uint64_t frame_index) const;
  /// Whether Sync() has anything to make durable.
  bool HasPending() const;
  uint64_t frames_written() const;
  uint64_t bytes_stored() const;

  /// Writes the written-maps and checksums of newly marked frames, flushes HDF5 and,
  /// when `fsync`, fdatasyncs the file. RESOURCE_EXHAUSTED on a full disk.
  Status Sync(bool fsync);

  /// A reader of a file that is being written (SWMR) sees what the writer has synced
  /// since it opened or last refreshed. No-op for a closed file.
  Status Refresh();
  /// Whether this reader opened the file while a writer had it (SWMR read).
  bool live() const;

  /// One stored chunk, as stored. NOT_FOUND if it was never written, OUT_OF_RANGE for a
  /// key outside the plan or its levels.
  Result<std::vector<uint8_t>> ReadChunk(const ChunkKey& key) const;
  /// The same into `out`, resized to the chunk's stored size: its capacity is reused, so a
  /// reader that keeps its buffers faults in and clears no fresh memory per chunk.
  Status ReadChunk(const ChunkKey& key, std::vector<uint8_t>& out) const;
  /// For the file's writer: a chunk it wrote, before the written-maps promise it to readers
  /// (e.g. to compute the next zoom level from it). DATA_LOSS if it was never written.
  Result<std::vector<uint8_t>> ReadOwnChunk(const ChunkKey& key) const;
  Status ReadOwnChunk(const ChunkKey& key, std::vector<uint8_t>& out) const;
  /// A whole frame at `level` (key.z among that level's planes), decompressed: height x
  /// width elements of that level, native byte order. NOT_FOUND if a chunk is missing, DATA_LOSS if one fails its
  /// checksum or Blosc check.
  Result<std::vector<uint8_t>> ReadFrame(const FrameKey& key, uint32_t level = 0) const;
  /// The checksum recorded for a chunk at Sync (0 when unknown).
  uint64_t StoredChecksum(const ChunkKey& key) const;

  /// Where a stored chunk's bytes lie in the file, as its writer recorded them (`chunk_at`),
  /// with its checksum. Size 0 when not known (a file from before `chunk_at`, a chunk whose
  /// place or checksum a live file has not synced yet): read it with ReadChunk. NOT_FOUND,
  /// OUT_OF_RANGE as ReadChunk. Cheap: no HDF5 call (but under Hdf5Mutex, as every call).
  struct ChunkPlace {
    uint64_t offset = 0, size = 0, checksum = 0;
  };
  Result<ChunkPlace> Place(const ChunkKey& key) const;
  /// A chunk's bytes at its place, in the file mapped read-only into memory, without HDF5 and
  /// without a copy: needs no Hdf5Mutex, so readers read and decode in parallel. Its checksum
  /// verified: DATA_LOSS when the bytes there are not the chunk's or lie past the file's end
  /// (read it with ReadChunk then). Valid until Close (the file must stay open meanwhile). The
  /// mapping's pages leave this process's memory every 32 MiB read (they stay in the page
  /// cache): a reader's resident memory does not grow with the file.
  Result<std::span<const uint8_t>> ReadPlace(const ChunkPlace& place) const;

  /// Syncs (with fsync) and closes; ends SWMR mode so any HDF5 reader opens the file.
  Status Close();

 private:
  struct Impl;
  explicit SlideFile(std::unique_ptr<Impl> impl);
  Status CheckStored(const ChunkKey& key) const;
  std::unique_ptr<Impl> impl_;
};

/// Debian's HDF5 is built without thread safety: a process that opens, reads or writes slide
/// files from several threads holds this around every call (the client library does).
std::mutex& Hdf5Mutex();

}  // namespace tessera::storage
