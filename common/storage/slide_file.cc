#include "common/storage/slide_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "common/codec/codec.h"
#include "common/pyramid/pyramid.h"
#include "common/durable/durable.h"
#include "common/storage/internal/hdf5_util.h"
#include "common/storage/internal/recording_driver.h"

namespace tessera::storage {

using internal::Handle;
using internal::LastError;
using internal::ReadStringAttr;
using internal::StringType;
using internal::WriteSmallDataset;
using internal::WriteStringAttr;

namespace {

// How long a writer opening a slide waits for the writer before it to close the file.
constexpr int kTakeOverWaitMs = 10000;
// Attempts at a metadata read that fails its checksum, for a reader of a live file.
constexpr unsigned kSwmrReadAttempts = 28;

Status WriteStringArrayAttr(hid_t obj, const char* name, const std::vector<std::string>& values) {
  Handle type = StringType();
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), ptrs.data()) < 0) {
    return LastError(StatusCode::kInternal, std::string("cannot write attribute ") + name);
  }
  return OkStatus();
}

Status WriteDoublesAttr(hid_t obj, const char* name, const std::vector<double>& values) {
  const hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  Handle attr(H5Acreate2(obj, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
    return LastError(StatusCode::kInternal, std::string("cannot write attribute ") + name);
  }
  return OkStatus();
}

// A contiguous dataset allocated up front, so that later writes overwrite in place.
Result<Handle> CreateInPlaceDataset(hid_t group, const char* name, hid_t type,
                                    std::vector<hsize_t> dims) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS);
  H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_ALLOC);
  Handle ds(H5Dcreate2(group, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!ds.valid()) return LastError(StatusCode::kInternal, std::string("cannot create dataset ") + name);
  return ds;
}

}  // namespace

// One resolution level's datasets and, in memory, its chunk checksums (frame-major).
// Where its chunks lie in the file (offset, size: two per chunk, 0 when unknown), when the
// file records it (`chunk_at`: absent from files written before it existed).
struct LevelData {
  LevelShape shape;
  Handle tiles, checksum_ds, at_ds;
  std::vector<uint64_t> checksums;
  std::vector<uint64_t> at;
};

std::string LevelPath(uint32_t level, const char* name) {
  return level == 0 ? fmt::format("/raw/{}", name) : fmt::format("/raw/levels/{}/{}", level, name);
}

// What a reader reads through its mapping of a file before the pages leave its memory again.
constexpr uint64_t kMappedReadBudget = uint64_t{32} << 20;

struct SlideFile::Impl {
  std::string path;
  std::string slide_id;
  ScanPlan plan;
  bool writable = false, swmr_read = false;
  Handle file, written_ds, levels_written_ds;
  std::vector<LevelData> levels;     // [0] is /raw/tiles
  std::vector<uint8_t> written;      // one byte per frame: level 0 stored
  std::vector<uint8_t> levels_done;  // one byte per frame: levels >= 1 stored
  std::vector<uint64_t> pending, pending_levels;  // frames marked since the last Sync
  uint64_t frames_written = 0;
  uint64_t bytes_stored = 0;
  int fd = -1;
  int read_fd = -1;           // a reader's, for ReadPlace
  // ReadPlace's view of the file: read_fd mapped, remapped larger as a live file grows. Every
  // mapping stays until Close (spans handed out point into it); `mapped` is the newest, read
  // without the lock. A mapping may reach past the file's end (never touched there: `inside`).
  struct Mapping {
    const uint8_t* at = nullptr;
    uint64_t length = 0, inside = 0;  // mapped; known to lie inside the file
    bool owns = false;                // munmap at Close (the others share a larger one's pages)
  };
  mutable std::mutex map_mu;
  mutable std::vector<std::unique_ptr<Mapping>> mappings;  // under map_mu
  mutable std::atomic<const Mapping*> mapped{nullptr};
  // Bytes read through the mapping since its pages were last dropped from this process (they
  // stay in the page cache): past kMappedReadBudget all are, so that a reader's resident memory
  // stays bounded however much of the file it reads. A span being decoded meanwhile faults its
  // pages back in. In bulk, not per chunk: every madvise interrupts the process's other cores.
  mutable std::atomic<uint64_t> mapped_reads{0};
  void DropMappedPages() const;
  // The newest mapping holding [0, end) of the file, made under map_mu when the last one does
  // not; nullptr past the file's end (with errno's reason in `why`).
  const Mapping* MapThrough(uint64_t end, std::string& why) const;
  internal::WriterLock lock;  // held while writable

  // A chunk's place among its level's checksums: (t, c, z chunk, cy, cx) row-major.
  size_t ChunkSlot(const ChunkKey& k) const {
    const LevelShape& s = levels[k.level].shape;
    const size_t zc = (size_t{k.frame.t} * plan.channels.size() + k.frame.c) * s.chunks_z() + k.frame.z / s.chunk_z;
    return zc * s.chunks_per_frame() + size_t{k.cy} * s.chunks_x() + k.cx;
  }

  // The level-0 frame whose written-map entry promises a chunk: its first plane's.
  uint64_t FrameOf(const ChunkKey& k) const {
    return plan.FrameIndex({k.frame.t, k.frame.c, k.frame.z << levels[k.level].shape.z_shift});
  }

  std::array<hsize_t, 5> Offset(const ChunkKey& k) const {
    const LevelShape& s = levels[k.level].shape;
    return {k.frame.t, k.frame.c, k.frame.z, hsize_t{k.cy} * s.chunk_y, hsize_t{k.cx} * s.chunk_x};
  }

  Status CheckChunk(const ChunkKey& k) const {
    TESSERA_RETURN_IF_ERROR(plan.CheckKey(k.frame));
    if (k.level >= levels.size()) {
      return Error(StatusCode::kOutOfRange, "level {} does not exist: the slide has levels 0..{}",
                   k.level, levels.size() - 1);
    }
    const LevelShape& s = levels[k.level].shape;
    if (k.frame.z >= s.depth || k.frame.z % s.chunk_z != 0) {
      return Error(StatusCode::kOutOfRange, "z={} is not the first plane of a chunk of level {} ({} planes in chunks of {})",
                   k.frame.z, k.level, s.depth, s.chunk_z);
    }
    if (k.cy >= s.chunks_y() || k.cx >= s.chunks_x()) {
      return Error(StatusCode::kOutOfRange, "chunk ({}, {}) is outside the {}x{} chunk grid of level {}",
                   k.cy, k.cx, s.chunks_y(), s.chunks_x(), k.level);
    }
    return OkStatus();
  }

  void SizeLevels() {
    levels.resize(plan.level_count());
    for (uint32_t l = 0; l < levels.size(); ++l) {
      levels[l].shape = plan.Level(l);
      const LevelShape& s = levels[l].shape;
      levels[l].checksums.assign(plan.tiles.size() * plan.channels.size() * s.chunks_z() * s.chunks_per_frame(), 0);
      levels[l].at.assign(2 * levels[l].checksums.size(), 0);
    }
    written.assign(plan.frame_count(), 0);
    levels_done.assign(plan.frame_count(), 0);
  }

  Status OpenDatasets() {
    written_ds = Handle(H5Dopen2(file.get(), "/raw/written", H5P_DEFAULT));
    levels_written_ds = Handle(H5Dopen2(file.get(), "/raw/levels_written", H5P_DEFAULT));
    if (!written_ds.valid() || !levels_written_ds.valid()) {
      return LastError(StatusCode::kDataLoss, path + " is not a Tessera slide file (format 2)");
    }
    for (uint32_t l = 0; l < levels.size(); ++l) {
      levels[l].tiles = Handle(H5Dopen2(file.get(), LevelPath(l, "tiles").c_str(), H5P_DEFAULT));
      levels[l].checksum_ds =
          Handle(H5Dopen2(file.get(), LevelPath(l, "chunk_xxh64").c_str(), H5P_DEFAULT));
      if (!levels[l].tiles.valid() || !levels[l].checksum_ds.valid()) {
        return LastError(StatusCode::kDataLoss, fmt::format("{} lacks level {}", path, l));
      }
      const std::string at = LevelPath(l, "chunk_at");
      if (H5Lexists(file.get(), at.c_str(), H5P_DEFAULT) > 0) {
        levels[l].at_ds = Handle(H5Dopen2(file.get(), at.c_str(), H5P_DEFAULT));
        if (!levels[l].at_ds.valid()) return LastError(StatusCode::kDataLoss, "cannot open " + at + " in " + path);
      }
    }
    return OkStatus();
  }

  // Reads the written-maps and checksums: at open, and on each refresh of a live file.
  Status ReadMaps() {
    bool ok = H5Dread(written_ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      written.data()) >= 0 &&
              H5Dread(levels_written_ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      levels_done.data()) >= 0;
    for (auto& l : levels) {
      ok = ok && H5Dread(l.checksum_ds.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         l.checksums.data()) >= 0;
      ok = ok && (!l.at_ds.valid() ||
                  H5Dread(l.at_ds.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, l.at.data()) >= 0);
    }
    if (!ok) return LastError(StatusCode::kDataLoss, "cannot read the written-map of " + path);
    frames_written = 0;
    for (uint8_t w : written) frames_written += w != 0;
    bytes_stored = H5Dget_storage_size(levels[0].tiles.get());
    return OkStatus();
  }

  Status LoadState() {
    TESSERA_ASSIGN_OR_RETURN(slide_id, ReadStringAttr(file.get(), "slide_id"));
    TESSERA_ASSIGN_OR_RETURN(std::string plan_json, ReadStringAttr(file.get(), "plan"));
    TESSERA_ASSIGN_OR_RETURN(plan, PlanFromJson(plan_json));
    SizeLevels();
    TESSERA_RETURN_IF_ERROR(OpenDatasets());
    return ReadMaps();
  }

  // Writes `count` elements at `start` of an in-place dataset.
  bool WriteRow(const Handle& ds, hid_t type, std::vector<hsize_t> start,
                std::vector<hsize_t> count, const void* data) {
    Handle fs(H5Dget_space(ds.get()));
    H5Sselect_hyperslab(fs.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    hsize_t n = 1;
    for (hsize_t c : count) n *= c;
    Handle ms(H5Screate_simple(1, &n, nullptr));
    return H5Dwrite(ds.get(), type, ms.get(), fs.get(), H5P_DEFAULT, data) >= 0;
  }

  // A frame's map byte and, at levels [first, last), the checksums of the chunks holding it.
  bool WriteFrameRows(uint64_t f, const Handle& map_ds, const uint8_t* flag, uint32_t first,
                      uint32_t last) {
    const FrameKey k = plan.KeyOf(f);
    if (!WriteRow(map_ds, H5T_NATIVE_UINT8, {k.t, k.c, k.z}, {1, 1, 1}, flag)) return false;
    for (uint32_t l = first; l < last; ++l) {
      const LevelShape& s = levels[l].shape;
      const uint32_t zc = (k.z >> s.z_shift) / s.chunk_z;
      const size_t slot = ChunkSlot({{k.t, k.c, zc * s.chunk_z}, l, 0, 0});
      if (!WriteRow(levels[l].checksum_ds, H5T_NATIVE_UINT64, {k.t, k.c, zc, 0, 0},
                    {1, 1, 1, s.chunks_y(), s.chunks_x()}, &levels[l].checksums[slot])) {
        return false;
      }
      if (levels[l].at_ds.valid() &&
          !WriteRow(levels[l].at_ds, H5T_NATIVE_UINT64, {k.t, k.c, zc, 0, 0, 0},
                    {1, 1, 1, s.chunks_y(), s.chunks_x(), 2}, &levels[l].at[2 * slot])) {
        return false;
      }
    }
    return true;
  }

  // HDF5's flush does not fsync: the file descriptor is synced here.
  Status Flush(bool fsync) {
    if (H5Fflush(file.get(), H5F_SCOPE_LOCAL) < 0) {
      return LastError(StatusCode::kInternal, "cannot flush " + path);
    }
    if (fsync && ::fdatasync(fd) != 0) {
      const int err = errno;
      return Error(err == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kInternal,
                   "fdatasync of {} failed: {}", path, std::strerror(err));
    }
    return OkStatus();
  }

  Status StartWriting() {
    if (H5Fstart_swmr_write(file.get()) < 0) {
      return LastError(StatusCode::kInternal, "cannot start SWMR writing on " + path);
    }
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file.get(), H5P_DEFAULT, &handle) < 0 || handle == nullptr) {
      return LastError(StatusCode::kInternal, "cannot get the file descriptor of " + path);
    }
    fd = *static_cast<int*>(handle);
    writable = true;
    return OkStatus();
  }

  // A reader's own descriptor for reading chunks at their recorded places, outside HDF5.
  Status OpenReadFd() {
    read_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (read_fd < 0) return Error(StatusCode::kDataLoss, "cannot open {}: {}", path, std::strerror(errno));
    return OkStatus();
  }
};

SlideFile::SlideFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SlideFile::~SlideFile() {
  if (impl_ && impl_->file.valid()) (void)Close();
}

const ScanPlan& SlideFile::plan() const { return impl_->plan; }
const std::string& SlideFile::slide_id() const { return impl_->slide_id; }
const std::string& SlideFile::path() const { return impl_->path; }
uint64_t SlideFile::frames_written() const { return impl_->frames_written; }
uint64_t SlideFile::bytes_stored() const { return impl_->bytes_stored; }

Result<std::unique_ptr<SlideFile>> SlideFile::Create(const std::string& path, const ScanPlan& plan,
                                                     const std::string& slide_id) {
  internal::InitHdf5();
  TESSERA_RETURN_IF_ERROR(plan.Validate());
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    return Error(StatusCode::kAlreadyExists, "{} exists already", path);
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->slide_id = slide_id;
  impl->plan = plan;
  Handle fapl = internal::FileAccess();
  TESSERA_RETURN_IF_ERROR(internal::UseRecordingDriver(fapl.get()));
  impl->file = Handle(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()));
  if (!impl->file.valid()) return LastError(StatusCode::kInternal, "cannot create " + path);
  TESSERA_ASSIGN_OR_RETURN(impl->lock, internal::WriterLock::Take(path));
  TESSERA_RETURN_IF_ERROR(durable::SyncParent(path));  // the new name survives a power cut
  hid_t f = impl->file.get();
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "slide_id", slide_id));
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "plan", PlanToJson(plan)));
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "header", plan.header_json));
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "tessera_format", std::to_string(kFormatVersion)));

  Handle raw(H5Gcreate2(f, "raw", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!raw.valid()) return LastError(StatusCode::kInternal, "cannot create /raw in " + path);

  const hsize_t T = plan.tiles.size(), C = plan.channels.size(), Z = plan.z_planes;  // frames: level 0's
  impl->SizeLevels();
  Handle levels_group(H5Gcreate2(raw.get(), "levels", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!levels_group.valid()) return LastError(StatusCode::kInternal, "cannot create /raw/levels");
  for (uint32_t l = 0; l < impl->levels.size(); ++l) {
    LevelData& level = impl->levels[l];
    const LevelShape& ls = level.shape;
    Handle group;
    if (l > 0) {
      group = Handle(H5Gcreate2(levels_group.get(), std::to_string(l).c_str(), H5P_DEFAULT,
                                H5P_DEFAULT, H5P_DEFAULT));
      if (!group.valid()) return LastError(StatusCode::kInternal, "cannot create level " + std::to_string(l));
    }
    const hid_t parent = l == 0 ? raw.get() : group.get();
    const std::array<hsize_t, 5> dims{T, C, ls.depth, ls.height, ls.width};
    const std::array<hsize_t, 5> chunk{1, 1, ls.chunk_z, ls.chunk_y, ls.chunk_x};
    Handle space(H5Screate_simple(5, dims.data(), nullptr));
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(dcpl.get(), 5, chunk.data());
    const auto cd = codec::Hdf5FilterValues(DtypeSize(plan.dtype),
                                            ls.chunk_voxels() * DtypeSize(plan.dtype), plan.codec);
    H5Pset_filter(dcpl.get(), codec::kHdf5BloscFilterId, H5Z_FLAG_OPTIONAL, cd.size(), cd.data());
    Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
    H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0);  // chunks go straight to disk
    hid_t type = plan.dtype == Dtype::kUint8 ? H5T_STD_U8LE : H5T_STD_U16LE;
    level.tiles = Handle(H5Dcreate2(parent, "tiles", type, space.get(), H5P_DEFAULT, dcpl.get(),
                                    dapl.get()));
    if (!level.tiles.valid()) {
      return LastError(StatusCode::kInternal, "cannot create " + LevelPath(l, "tiles"));
    }
    hid_t ds = level.tiles.get();
    const double scale = static_cast<double>(uint64_t{1} << l), scale_z = ls.z_scale();
    TESSERA_RETURN_IF_ERROR(WriteStringAttr(ds, "axes", "TCZYX"));
    TESSERA_RETURN_IF_ERROR(WriteStringArrayAttr(ds, "channel_names", plan.channels));
    TESSERA_RETURN_IF_ERROR(WriteDoublesAttr(
        ds, "pixel_size_um",
        {plan.pixel_size_um[2] * scale_z, plan.pixel_size_um[1] * scale, plan.pixel_size_um[0] * scale}));
    TESSERA_RETURN_IF_ERROR(WriteDoublesAttr(ds, "downsample", {scale, scale}));
    TESSERA_RETURN_IF_ERROR(WriteDoublesAttr(ds, "downsample_z", {scale_z}));
    TESSERA_ASSIGN_OR_RETURN(level.checksum_ds,
                             CreateInPlaceDataset(parent, "chunk_xxh64", H5T_STD_U64LE,
                                                  {T, C, ls.chunks_z(), ls.chunks_y(), ls.chunks_x()}));
    TESSERA_ASSIGN_OR_RETURN(level.at_ds,
                             CreateInPlaceDataset(parent, "chunk_at", H5T_STD_U64LE,
                                                  {T, C, ls.chunks_z(), ls.chunks_y(), ls.chunks_x(), 2}));
  }
  std::vector<double> positions;
  std::vector<int32_t> grid;
  std::vector<const char*> names;
  for (const auto& tile : plan.tiles) {
    positions.insert(positions.end(), {tile.x, tile.y, tile.z});
    grid.insert(grid.end(), {tile.row, tile.col});
    names.push_back(tile.name.c_str());
  }
  TESSERA_RETURN_IF_ERROR(WriteSmallDataset(raw.get(), "positions", H5T_IEEE_F64LE,
                                            H5T_NATIVE_DOUBLE, {T, 3}, positions.data()));
  TESSERA_RETURN_IF_ERROR(WriteSmallDataset(raw.get(), "grid", H5T_STD_I32LE, H5T_NATIVE_INT32,
                                            {T, 2}, grid.data()));
  {
    Handle type = StringType();
    TESSERA_RETURN_IF_ERROR(
        WriteSmallDataset(raw.get(), "tile_names", type.get(), type.get(), {T}, names.data()));
  }
  TESSERA_ASSIGN_OR_RETURN(impl->written_ds,
                           CreateInPlaceDataset(raw.get(), "written", H5T_STD_U8LE, {T, C, Z}));
  TESSERA_ASSIGN_OR_RETURN(impl->levels_written_ds, CreateInPlaceDataset(raw.get(), "levels_written",
                                                                         H5T_STD_U8LE, {T, C, Z}));
  levels_group.Reset();
  raw.Reset();
  TESSERA_RETURN_IF_ERROR(impl->StartWriting());
  return std::unique_ptr<SlideFile>(new SlideFile(std::move(impl)));
}

Result<std::unique_ptr<SlideFile>> SlideFile::OpenForWrite(const std::string& path) {
  internal::InitHdf5();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  // Taken before HDF5 opens the file: clearing the marks below is safe only for its one writer.
  // A writer started again while the one before still closes the file (its manager died and
  // it got SIGTERM) waits for it.
  TESSERA_ASSIGN_OR_RETURN(impl->lock, internal::WriterLock::Take(path, kTakeOverWaitMs));
  Handle fapl = internal::FileAccess();
  TESSERA_RETURN_IF_ERROR(internal::UseRecordingDriver(fapl.get()));
  // A writer killed mid-scan leaves the superblock marked "open for writing"; we are
  // the file's only writer (we hold its WriterLock), so clear the mark as h5clear does.
  hbool_t clear = true;
  H5Pset(fapl.get(), "clear_status_flags", &clear);
  // Metadata that fails its checksum is an error here, not a reason to retry and wait.
  H5Pset_metadata_read_attempts(fapl.get(), 1);
  impl->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!impl->file.valid()) return LastError(StatusCode::kDataLoss, "cannot open " + path);
  // The killed writer may have allocated space (chunks, lazily created index blocks) past the
  // end-of-allocation its last flush recorded. Move the end of allocation to the end of the
  // file, as `h5clear --increment` does, so that nothing it wrote is handed out again.
  if (H5Fincrement_filesize(impl->file.get(), 0) < 0) {
    return LastError(StatusCode::kDataLoss, "cannot recover the end of " + path);
  }
  TESSERA_RETURN_IF_ERROR(impl->LoadState());
  TESSERA_RETURN_IF_ERROR(impl->StartWriting());
  return std::unique_ptr<SlideFile>(new SlideFile(std::move(impl)));
}

Result<std::unique_ptr<SlideFile>> SlideFile::OpenForRead(const std::string& path) {
  internal::InitHdf5();
  if (::access(path.c_str(), R_OK) != 0) {
    return Error(StatusCode::kNotFound, "{}: {}", path, std::strerror(errno));
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  Handle fapl = internal::FileAccess();
  impl->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!impl->file.valid()) {
    H5Eclear2(H5E_DEFAULT);
    // A writer has the file: read what it has synced, without HDF5's sieve buffer, which
    // would keep stale bytes of the written-maps.
    H5Pset_sieve_buf_size(fapl.get(), 0);
    // A metadata read that fails its checksum (caught mid-flush) is tried again after a sleep
    // that doubles from 1 ns each time; HDF5's 100 attempts for SWMR readers would sleep for
    // ages on one that stays torn. kSwmrReadAttempts bounds it (~0.27 s), then the read fails
    // and the caller tries again later.
    H5Pset_metadata_read_attempts(fapl.get(), kSwmrReadAttempts);
    impl->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()));
    impl->swmr_read = true;
  }
  if (!impl->file.valid()) return LastError(StatusCode::kDataLoss, "cannot open " + path);
  TESSERA_RETURN_IF_ERROR(impl->LoadState());
  TESSERA_RETURN_IF_ERROR(impl->OpenReadFd());
  return std::unique_ptr<SlideFile>(new SlideFile(std::move(impl)));
}

Status SlideFile::WriteChunk(const ChunkKey& key, std::span<const uint8_t> blosc,
                             uint64_t checksum) {
  internal::InitHdf5();  // this thread's errors unprinted
  Impl& m = *impl_;
  assert(m.writable && m.CheckChunk(key).ok());
  const auto offset = m.Offset(key);
  internal::RawWrites writes;
  if (H5Dwrite_chunk(m.levels[key.level].tiles.get(), H5P_DEFAULT, 0, offset.data(), blosc.size(),
                     blosc.data()) < 0) {
    return LastError(StatusCode::kInternal,
                     fmt::format("cannot write chunk ({}, {}) of level {} of frame t={} c={} z={} to {}",
                                 key.cy, key.cx, key.level, key.frame.t, key.frame.c, key.frame.z,
                                 m.path));
  }
  LevelData& level = m.levels[key.level];
  const size_t slot = m.ChunkSlot(key);
  level.checksums[slot] = checksum;
  // Its place, when HDF5 wrote it in one piece (as it writes a chunk it does not cache).
  const bool placed = writes.count() == 1 && writes.last().size == blosc.size();
  level.at[2 * slot] = placed ? writes.last().offset : 0;
  level.at[2 * slot + 1] = placed ? writes.last().size : 0;
  if (key.level == 0) m.bytes_stored += blosc.size();
  return OkStatus();
}

void SlideFile::MarkWritten(uint64_t frame_index) {
  Impl& m = *impl_;
  if (m.written[frame_index] != 0) return;
  m.written[frame_index] = 1;
  m.pending.push_back(frame_index);
  ++m.frames_written;
}

bool SlideFile::IsWritten(uint64_t frame_index) const {
  return frame_index < impl_->written.size() && impl_->written[frame_index] != 0;
}

void SlideFile::MarkLevelsWritten(uint64_t frame_index) {
  Impl& m = *impl_;
  if (m.levels_done[frame_index] != 0) return;
  m.levels_done[frame_index] = 1;
  m.pending_levels.push_back(frame_index);
}

bool SlideFile::LevelsWritten(uint64_t frame_index) const {
  return frame_index < impl_->levels_done.size() && impl_->levels_done[frame_index] != 0;
}

bool SlideFile::HasPending() const { return !impl_->pending.empty() || !impl_->pending_levels.empty(); }

bool SlideFile::live() const { return impl_->swmr_read; }

Status SlideFile::Sync(bool fsync) {
  internal::InitHdf5();  // this thread's errors unprinted
  Impl& m = *impl_;
  if (!m.writable) return OkStatus();
  // Order matters for a writer killed at any instant: first the chunks and the chunk index
  // reach the disk, only then the written-maps that promise them. A frame a map calls
  // written is therefore always complete in the file.
  TESSERA_RETURN_IF_ERROR(m.Flush(fsync));
  if (!HasPending()) return OkStatus();
  const uint32_t n_levels = static_cast<uint32_t>(m.levels.size());
  for (uint64_t f : m.pending) {
    if (!m.WriteFrameRows(f, m.written_ds, &m.written[f], 0, 1)) {
      return LastError(StatusCode::kInternal, "cannot update the written-map of " + m.path);
    }
  }
  for (uint64_t f : m.pending_levels) {
    if (!m.WriteFrameRows(f, m.levels_written_ds, &m.levels_done[f], 1, n_levels)) {
      return LastError(StatusCode::kInternal, "cannot update the levels' written-map of " + m.path);
    }
  }
  TESSERA_RETURN_IF_ERROR(m.Flush(fsync));
  m.pending.clear();
  m.pending_levels.clear();
  return OkStatus();
}

std::mutex& Hdf5Mutex() {
  static std::mutex mu;
  return mu;
}

Status SlideFile::Refresh() {
  internal::InitHdf5();  // this thread's errors unprinted
  Impl& m = *impl_;
  if (!m.swmr_read) return OkStatus();
  // The written-maps first, then the chunk indexes: the writer stores (and flushes) a frame's
  // chunks before marking it written, so every frame the maps read now promise is in the
  // indexes refreshed after. The other order races: a frame marked written between the two
  // refreshes would be promised with a stale index that lacks it.
  for (const Handle& ds : {std::cref(m.written_ds), std::cref(m.levels_written_ds)}) {
    if (H5Drefresh(ds.get()) < 0) return LastError(StatusCode::kDataLoss, "cannot refresh " + m.path);
  }
  TESSERA_RETURN_IF_ERROR(m.ReadMaps());
  for (auto& l : m.levels) {
    if (H5Drefresh(l.tiles.get()) < 0 || H5Drefresh(l.checksum_ds.get()) < 0) {
      return LastError(StatusCode::kDataLoss, "cannot refresh " + m.path);
    }
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> SlideFile::ReadChunk(const ChunkKey& key) const {
  std::vector<uint8_t> out;
  TESSERA_RETURN_IF_ERROR(ReadChunk(key, out));
  return out;
}

// A chunk inside the plan that the written-maps promise: a live file's chunk index may hold
// chunks they do not promise yet. NOT_FOUND, OUT_OF_RANGE as ReadChunk.
Status SlideFile::CheckStored(const ChunkKey& key) const {
  TESSERA_RETURN_IF_ERROR(impl_->CheckChunk(key));
  const uint64_t frame = impl_->FrameOf(key);
  if (key.level == 0 ? !IsWritten(frame) : !LevelsWritten(frame)) {
    return Error(StatusCode::kNotFound, "chunk ({}, {}) of level {} of frame t={} c={} z={} is not stored{}",
                 key.cy, key.cx, key.level, key.frame.t, key.frame.c, key.frame.z,
                 key.level > 0 && IsWritten(frame) ? " yet (its levels are being computed)" : "");
  }
  return OkStatus();
}

Status SlideFile::ReadChunk(const ChunkKey& key, std::vector<uint8_t>& out) const {
  TESSERA_RETURN_IF_ERROR(CheckStored(key));
  return ReadOwnChunk(key, out);
}

Result<std::vector<uint8_t>> SlideFile::ReadOwnChunk(const ChunkKey& key) const {
  std::vector<uint8_t> out;
  TESSERA_RETURN_IF_ERROR(ReadOwnChunk(key, out));
  return out;
}

Status SlideFile::ReadOwnChunk(const ChunkKey& key, std::vector<uint8_t>& out) const {
  internal::InitHdf5();  // this thread's errors unprinted
  const Impl& m = *impl_;
  TESSERA_RETURN_IF_ERROR(m.CheckChunk(key));
  const auto offset = m.Offset(key);
  const hid_t ds = m.levels[key.level].tiles.get();
  hsize_t size = 0;
  if (H5Dget_chunk_storage_size(ds, offset.data(), &size) < 0 || size == 0) {
    H5Eclear2(H5E_DEFAULT);
    return Error(StatusCode::kDataLoss, "chunk ({}, {}) of level {} of frame t={} c={} z={} is missing from {}",
                 key.cy, key.cx, key.level, key.frame.t, key.frame.c, key.frame.z, m.path);
  }
  out.resize(size);
  uint32_t filter_mask = 0;
  if (H5Dread_chunk(ds, H5P_DEFAULT, offset.data(), &filter_mask, out.data()) < 0) {
    return LastError(StatusCode::kDataLoss, "cannot read a chunk of " + m.path);
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> SlideFile::ReadFrame(const FrameKey& key, uint32_t level) const {
  const ScanPlan& p = impl_->plan;
  if (level >= impl_->levels.size()) {
    return Error(StatusCode::kOutOfRange, "level {} does not exist: the slide has levels 0..{}", level,
                 impl_->levels.size() - 1);
  }
  const LevelShape& s = impl_->levels[level].shape;
  if (key.z >= s.depth) {
    return Error(StatusCode::kOutOfRange, "plane {} does not exist: level {} has {} planes", key.z, level, s.depth);
  }
  const size_t elem = DtypeSize(p.dtype);
  std::vector<uint8_t> frame(s.pixels() * elem);
  std::vector<uint8_t> chunk(s.chunk_voxels() * elem);
  const uint32_t in_chunk = key.z % s.chunk_z;  // the plane among its chunk's
  const std::span<const uint8_t> plane = std::span<const uint8_t>(chunk).subspan(in_chunk * s.chunk_pixels() * elem);
  for (uint32_t cy = 0; cy < s.chunks_y(); ++cy) {
    for (uint32_t cx = 0; cx < s.chunks_x(); ++cx) {
      const ChunkKey ck{{key.t, key.c, key.z - in_chunk}, level, cy, cx};
      TESSERA_ASSIGN_OR_RETURN(auto packed, ReadChunk(ck));
      const uint64_t expected = StoredChecksum(ck);
      if (expected != 0 && codec::Checksum(packed) != expected) {
        return Error(StatusCode::kDataLoss,
                     "chunk ({}, {}) of level {} of frame t={} c={} z={} in {} fails its checksum", cy,
                     cx, level, key.t, key.c, key.z, impl_->path);
      }
      TESSERA_RETURN_IF_ERROR(codec::Decompress(packed, chunk));
      pyramid::InsertChunk(plane, s, elem, cy, cx, frame);
    }
  }
  return frame;
}

Result<SlideFile::ChunkPlace> SlideFile::Place(const ChunkKey& key) const {
  TESSERA_RETURN_IF_ERROR(CheckStored(key));
  const Impl& m = *impl_;
  const LevelData& level = m.levels[key.level];
  const size_t slot = m.ChunkSlot(key);
  ChunkPlace place{level.at[2 * slot], level.at[2 * slot + 1], level.checksums[slot]};
  // A stored chunk is at most its pixels and Blosc's header (16 bytes).
  const uint64_t most = level.shape.chunk_voxels() * DtypeSize(m.plan.dtype) + 64;
  if (m.read_fd < 0 || place.checksum == 0 || place.size == 0 || place.size > most) return ChunkPlace{};
  return place;
}

const SlideFile::Impl::Mapping* SlideFile::Impl::MapThrough(uint64_t end, std::string& why) const {
  std::lock_guard lock(map_mu);
  const Mapping* last = mapped.load(std::memory_order_acquire);
  if (last != nullptr && end <= last->inside) return last;  // another reader mapped it meanwhile
  struct stat st {};
  if (read_fd < 0 || ::fstat(read_fd, &st) != 0) {
    why = read_fd < 0 ? "the file is closed" : std::strerror(errno);
    return nullptr;
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (end > size) {
    why = fmt::format("the file ends at {}", size);
    return nullptr;
  }
  auto m = std::make_unique<Mapping>();
  if (last != nullptr && size <= last->length) {  // the file grew inside the last mapping
    *m = {last->at, last->length, size, false};
  } else {
    // Room to grow: a live file's next syncs land in the same mapping, not a new one each.
    const uint64_t length = std::max(size, last == nullptr ? size : 2 * last->length);
    void* at = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, read_fd, 0);
    if (at == MAP_FAILED) {
      why = fmt::format("cannot map {} bytes: {}", length, std::strerror(errno));
      return nullptr;
    }
    *m = {static_cast<const uint8_t*>(at), length, size, true};
  }
  mappings.push_back(std::move(m));
  mapped.store(mappings.back().get(), std::memory_order_release);
  return mappings.back().get();
}

void SlideFile::Impl::DropMappedPages() const {
  std::unique_lock lock(map_mu, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another reader is at it, or remapping
  mapped_reads = 0;
  for (const auto& m : mappings) {
    if (m->owns) ::madvise(const_cast<uint8_t*>(m->at), m->length, MADV_DONTNEED);
  }
}

Result<std::span<const uint8_t>> SlideFile::ReadPlace(const ChunkPlace& place) const {
  const Impl& m = *impl_;
  const uint64_t end = place.offset + place.size;
  const Impl::Mapping* map = m.mapped.load(std::memory_order_acquire);
  std::string why = "they lie past any file";
  if (end < place.offset) {
    map = nullptr;
  } else if (map == nullptr || end > map->inside) {
    map = m.MapThrough(end, why);
  }
  if (map == nullptr) {
    return Error(StatusCode::kDataLoss, "cannot read {} bytes at {} of {}: {}", place.size, place.offset, m.path, why);
  }
  if (m.mapped_reads.fetch_add(place.size, std::memory_order_relaxed) + place.size > kMappedReadBudget) {
    m.DropMappedPages();
  }
  const std::span<const uint8_t> bytes(map->at + place.offset, place.size);
  if (codec::Checksum(bytes) != place.checksum) {
    return Error(StatusCode::kDataLoss, "the {} bytes at {} of {} fail the chunk's checksum", place.size,
                 place.offset, m.path);
  }
  return bytes;
}

uint64_t SlideFile::StoredChecksum(const ChunkKey& key) const {
  return impl_->levels[key.level].checksums[impl_->ChunkSlot(key)];
}

Status SlideFile::Close() {
  internal::InitHdf5();  // this thread's errors unprinted
  Impl& m = *impl_;
  Status s = m.writable ? Sync(/*fsync=*/true) : OkStatus();
  m.levels.clear();
  m.written_ds.Reset();
  m.levels_written_ds.Reset();
  if (m.file.valid() && H5Fclose(m.file.get()) < 0 && s.ok()) {
    s = LastError(StatusCode::kInternal, "cannot close " + m.path);
  }
  m.file = Handle();
  m.writable = false;
  {
    std::lock_guard lock(m.map_mu);
    m.mapped.store(nullptr);
    for (const auto& mapping : m.mappings) {
      if (mapping->owns) ::munmap(const_cast<uint8_t*>(mapping->at), mapping->length);
    }
    m.mappings.clear();
  }
  if (m.read_fd >= 0) ::close(m.read_fd);
  m.read_fd = -1;
  return s;
}

}  // namespace tessera::storage
