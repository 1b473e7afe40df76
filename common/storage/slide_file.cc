#include "common/storage/slide_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "common/codec/codec.h"
#include "common/storage/internal/hdf5_util.h"

namespace tessera::storage {

using internal::Handle;
using internal::LastError;

namespace {

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

// A dataset written whole at creation (positions, grid, names).
Status WriteSmallDataset(hid_t group, const char* name, hid_t file_type, hid_t mem_type,
                         std::vector<hsize_t> dims, const void* data) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle ds(H5Dcreate2(group, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!ds.valid() || H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    return LastError(StatusCode::kInternal, std::string("cannot write /raw/") + name);
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
  if (!ds.valid()) return LastError(StatusCode::kInternal, std::string("cannot create /raw/") + name);
  return ds;
}

Handle FileAccess() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  return fapl;
}

}  // namespace

struct SlideFile::Impl {
  std::string path;
  std::string slide_id;
  ScanPlan plan;
  bool writable = false;
  Handle file, tiles, written_ds, checksum_ds;
  std::vector<uint8_t> written;     // one byte per frame
  std::vector<uint64_t> checksums;  // one per chunk, frame-major
  std::vector<uint64_t> pending;    // frames marked since the last Sync
  uint64_t frames_written = 0;
  uint64_t bytes_stored = 0;
  int fd = -1;

  size_t ChunkSlot(const FrameKey& k, uint32_t cy, uint32_t cx) const {
    return plan.FrameIndex(k) * plan.chunks_per_frame() + size_t{cy} * plan.chunks_x() + cx;
  }

  std::array<hsize_t, 5> Offset(const FrameKey& k, uint32_t cy, uint32_t cx) const {
    return {k.t, k.c, k.z, hsize_t{cy} * plan.chunk_y, hsize_t{cx} * plan.chunk_x};
  }

  Status OpenDatasets() {
    tiles = Handle(H5Dopen2(file.get(), "/raw/tiles", H5P_DEFAULT));
    written_ds = Handle(H5Dopen2(file.get(), "/raw/written", H5P_DEFAULT));
    checksum_ds = Handle(H5Dopen2(file.get(), "/raw/chunk_xxh64", H5P_DEFAULT));
    if (!tiles.valid() || !written_ds.valid() || !checksum_ds.valid()) {
      return LastError(StatusCode::kDataLoss, path + " is not a Tessera slide file");
    }
    return OkStatus();
  }

  Status LoadState() {
    TESSERA_ASSIGN_OR_RETURN(slide_id, ReadStringAttr(file.get(), "slide_id"));
    TESSERA_ASSIGN_OR_RETURN(std::string plan_json, ReadStringAttr(file.get(), "plan"));
    TESSERA_ASSIGN_OR_RETURN(plan, PlanFromJson(plan_json));
    TESSERA_RETURN_IF_ERROR(OpenDatasets());
    written.assign(plan.frame_count(), 0);
    checksums.assign(plan.frame_count() * plan.chunks_per_frame(), 0);
    if (H5Dread(written_ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                written.data()) < 0 ||
        H5Dread(checksum_ds.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                checksums.data()) < 0) {
      return LastError(StatusCode::kDataLoss, "cannot read the written-map of " + path);
    }
    frames_written = 0;
    for (uint8_t w : written) frames_written += w != 0;
    bytes_stored = H5Dget_storage_size(tiles.get());
    return OkStatus();
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
  Handle fapl = FileAccess();
  impl->file = Handle(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()));
  if (!impl->file.valid()) return LastError(StatusCode::kInternal, "cannot create " + path);
  hid_t f = impl->file.get();
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "slide_id", slide_id));
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "plan", PlanToJson(plan)));
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "header", plan.header_json));
  TESSERA_RETURN_IF_ERROR(WriteStringAttr(f, "tessera_format", std::to_string(kFormatVersion)));

  Handle raw(H5Gcreate2(f, "raw", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!raw.valid()) return LastError(StatusCode::kInternal, "cannot create /raw in " + path);

  const hsize_t T = plan.tiles.size(), C = plan.channels.size(), Z = plan.z_planes;
  {
    const std::array<hsize_t, 5> dims{T, C, Z, plan.height, plan.width};
    const std::array<hsize_t, 5> chunk{1, 1, 1, plan.chunk_y, plan.chunk_x};
    Handle space(H5Screate_simple(5, dims.data(), nullptr));
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(dcpl.get(), 5, chunk.data());
    const auto cd = codec::Hdf5FilterValues(DtypeSize(plan.dtype), plan.chunk_bytes(), plan.codec);
    H5Pset_filter(dcpl.get(), codec::kHdf5BloscFilterId, H5Z_FLAG_OPTIONAL, cd.size(), cd.data());
    Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
    H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0);  // chunks go straight to disk
    hid_t type = plan.dtype == Dtype::kUint8 ? H5T_STD_U8LE : H5T_STD_U16LE;
    impl->tiles = Handle(H5Dcreate2(raw.get(), "tiles", type, space.get(), H5P_DEFAULT, dcpl.get(),
                                    dapl.get()));
    if (!impl->tiles.valid()) return LastError(StatusCode::kInternal, "cannot create /raw/tiles");
    hid_t ds = impl->tiles.get();
    TESSERA_RETURN_IF_ERROR(WriteStringAttr(ds, "axes", "TCZYX"));
    TESSERA_RETURN_IF_ERROR(WriteStringArrayAttr(ds, "channel_names", plan.channels));
    TESSERA_RETURN_IF_ERROR(WriteDoublesAttr(
        ds, "pixel_size_um", {plan.pixel_size_um[2], plan.pixel_size_um[1], plan.pixel_size_um[0]}));
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
  TESSERA_ASSIGN_OR_RETURN(Handle w, CreateInPlaceDataset(raw.get(), "written", H5T_STD_U8LE, {T, C, Z}));
  TESSERA_ASSIGN_OR_RETURN(
      Handle c, CreateInPlaceDataset(raw.get(), "chunk_xxh64", H5T_STD_U64LE,
                                     {T, C, Z, plan.chunks_y(), plan.chunks_x()}));
  impl->written_ds = std::move(w);
  impl->checksum_ds = std::move(c);
  impl->written.assign(plan.frame_count(), 0);
  impl->checksums.assign(plan.frame_count() * plan.chunks_per_frame(), 0);
  raw.Reset();
  TESSERA_RETURN_IF_ERROR(impl->StartWriting());
  return std::unique_ptr<SlideFile>(new SlideFile(std::move(impl)));
}

Result<std::unique_ptr<SlideFile>> SlideFile::OpenForWrite(const std::string& path) {
  internal::InitHdf5();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  Handle fapl = FileAccess();
  // A writer killed mid-scan leaves the superblock marked "open for writing"; we are
  // the slide's only writer (the manager guarantees it), so clear the mark as h5clear does.
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
  Handle fapl = FileAccess();
  impl->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!impl->file.valid()) {
    H5Eclear2(H5E_DEFAULT);
    impl->file = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()));
  }
  if (!impl->file.valid()) return LastError(StatusCode::kDataLoss, "cannot open " + path);
  TESSERA_RETURN_IF_ERROR(impl->LoadState());
  return std::unique_ptr<SlideFile>(new SlideFile(std::move(impl)));
}

Status SlideFile::WriteChunk(const FrameKey& key, uint32_t cy, uint32_t cx,
                             std::span<const uint8_t> blosc, uint64_t checksum) {
  Impl& m = *impl_;
  assert(m.writable);
  const auto offset = m.Offset(key, cy, cx);
  if (H5Dwrite_chunk(m.tiles.get(), H5P_DEFAULT, 0, offset.data(), blosc.size(), blosc.data()) < 0) {
    return LastError(StatusCode::kInternal,
                     fmt::format("cannot write chunk ({}, {}) of frame t={} c={} z={} to {}", cy,
                                 cx, key.t, key.c, key.z, m.path));
  }
  m.checksums[m.ChunkSlot(key, cy, cx)] = checksum;
  m.bytes_stored += blosc.size();
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

Status SlideFile::Sync(bool fsync) {
  Impl& m = *impl_;
  if (!m.writable) return OkStatus();
  // Order matters for a writer killed at any instant: first the chunks and the chunk index
  // reach the disk, only then the written-map that promises them. A frame the map calls
  // written is therefore always complete in the file.
  TESSERA_RETURN_IF_ERROR(m.Flush(fsync));
  if (m.pending.empty()) return OkStatus();
  const hsize_t per_frame = m.plan.chunks_per_frame();
  for (uint64_t f : m.pending) {
    const FrameKey k = m.plan.KeyOf(f);
    if (!m.WriteRow(m.written_ds, H5T_NATIVE_UINT8, {k.t, k.c, k.z}, {1, 1, 1}, &m.written[f]) ||
        !m.WriteRow(m.checksum_ds, H5T_NATIVE_UINT64, {k.t, k.c, k.z, 0, 0},
                    {1, 1, 1, m.plan.chunks_y(), m.plan.chunks_x()}, &m.checksums[f * per_frame])) {
      return LastError(StatusCode::kInternal, "cannot update the written-map of " + m.path);
    }
  }
  TESSERA_RETURN_IF_ERROR(m.Flush(fsync));
  m.pending.clear();
  return OkStatus();
}

Result<std::vector<uint8_t>> SlideFile::ReadChunk(const FrameKey& key, uint32_t cy,
                                                  uint32_t cx) const {
  const Impl& m = *impl_;
  TESSERA_RETURN_IF_ERROR(m.plan.CheckKey(key));
  if (cy >= m.plan.chunks_y() || cx >= m.plan.chunks_x()) {
    return Error(StatusCode::kOutOfRange, "chunk ({}, {}) is outside the {}x{} chunk grid", cy, cx,
                 m.plan.chunks_y(), m.plan.chunks_x());
  }
  const auto offset = m.Offset(key, cy, cx);
  hsize_t size = 0;
  if (H5Dget_chunk_storage_size(m.tiles.get(), offset.data(), &size) < 0 || size == 0) {
    H5Eclear2(H5E_DEFAULT);
    return Error(StatusCode::kNotFound, "chunk ({}, {}) of frame t={} c={} z={} is not stored", cy,
                 cx, key.t, key.c, key.z);
  }
  std::vector<uint8_t> out(size);
  uint32_t filter_mask = 0;
  if (H5Dread_chunk(m.tiles.get(), H5P_DEFAULT, offset.data(), &filter_mask, out.data()) < 0) {
    return LastError(StatusCode::kDataLoss, "cannot read a chunk of " + m.path);
  }
  return out;
}

Result<std::vector<uint8_t>> SlideFile::ReadFrame(const FrameKey& key) const {
  const ScanPlan& p = impl_->plan;
  const size_t elem = DtypeSize(p.dtype);
  std::vector<uint8_t> frame(p.frame_bytes());
  std::vector<uint8_t> chunk(p.chunk_bytes());
  for (uint32_t cy = 0; cy < p.chunks_y(); ++cy) {
    for (uint32_t cx = 0; cx < p.chunks_x(); ++cx) {
      TESSERA_ASSIGN_OR_RETURN(auto packed, ReadChunk(key, cy, cx));
      const uint64_t expected = StoredChecksum(key, cy, cx);
      if (expected != 0 && codec::Checksum(packed) != expected) {
        return Error(StatusCode::kDataLoss, "chunk ({}, {}) of frame t={} c={} z={} in {} fails its checksum",
                     cy, cx, key.t, key.c, key.z, impl_->path);
      }
      TESSERA_RETURN_IF_ERROR(codec::Decompress(packed, chunk));
      const uint32_t y0 = cy * p.chunk_y, x0 = cx * p.chunk_x;
      const uint32_t rows = std::min(p.chunk_y, p.height - y0);
      const uint32_t cols = std::min(p.chunk_x, p.width - x0);
      for (uint32_t r = 0; r < rows; ++r) {
        std::memcpy(frame.data() + (size_t{y0 + r} * p.width + x0) * elem,
                    chunk.data() + size_t{r} * p.chunk_x * elem, size_t{cols} * elem);
      }
    }
  }
  return frame;
}

uint64_t SlideFile::StoredChecksum(const FrameKey& key, uint32_t cy, uint32_t cx) const {
  return impl_->checksums[impl_->ChunkSlot(key, cy, cx)];
}

Status SlideFile::Close() {
  Impl& m = *impl_;
  Status s = m.writable ? Sync(/*fsync=*/true) : OkStatus();
  m.tiles.Reset();
  m.written_ds.Reset();
  m.checksum_ds.Reset();
  if (m.file.valid() && H5Fclose(m.file.get()) < 0 && s.ok()) {
    s = LastError(StatusCode::kInternal, "cannot close " + m.path);
  }
  m.file = Handle();
  m.writable = false;
  return s;
}

}  // namespace tessera::storage
