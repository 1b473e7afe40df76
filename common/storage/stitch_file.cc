#include "common/storage/stitch_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/durable/durable.h"
#include "common/storage/internal/hdf5_util.h"

namespace tessera::storage {

using internal::Handle;
using internal::LastError;

namespace {

Status WritePairs(hid_t group, const char* name, const std::vector<std::array<double, 2>>& v) {
  return internal::WriteSmallDataset(group, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {v.size(), 2}, v.data());
}

Result<std::vector<std::array<double, 2>>> ReadPairs(hid_t group, const char* name) {
  Handle ds(H5Dopen2(group, name, H5P_DEFAULT));
  if (!ds.valid()) return LastError(StatusCode::kDataLoss, std::string("missing /stitch/") + name);
  Handle space(H5Dget_space(ds.get()));
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space.get()) != 2 || H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0 ||
      dims[1] != 2) {
    return Error(StatusCode::kDataLoss, "/stitch/{} is not a (T, 2) array", name);
  }
  std::vector<std::array<double, 2>> v(dims[0]);
  if (dims[0] > 0 && H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) {
    return LastError(StatusCode::kDataLoss, std::string("cannot read /stitch/") + name);
  }
  return v;
}

Status WriteCorrections(hid_t stitch, const correct::SlideCorrections& corrections) {
  if (corrections.empty()) return OkStatus();
  Handle group(H5Gcreate2(stitch, "corrections", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!group.valid()) return LastError(StatusCode::kInternal, "cannot create /stitch/corrections");
  for (const auto& c : corrections.channels) {
    const std::string name = "c" + std::to_string(c.channel);
    Handle g(H5Gcreate2(group.get(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (!g.valid()) return LastError(StatusCode::kInternal, "cannot create /stitch/corrections/" + name);
    TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(g.get(), "dark", fmt::format("{:.17g}", c.dark)));
    if (c.flat) {
      TESSERA_RETURN_IF_ERROR(internal::WriteSmallDataset(g.get(), "flat_field", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                                                          {c.flat->grid_y, c.flat->grid_x}, c.flat->gain.data()));
      Handle ds(H5Dopen2(g.get(), "flat_field", H5P_DEFAULT));
      TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(ds.get(), "field_width", std::to_string(c.flat->width)));
      TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(ds.get(), "field_height", std::to_string(c.flat->height)));
    }
    if (!c.gains.empty()) {
      TESSERA_RETURN_IF_ERROR(internal::WriteSmallDataset(g.get(), "gains", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                                          {c.gains.size()}, c.gains.data()));
    }
  }
  return OkStatus();
}

// A float dataset of at most 2 dimensions and at most `max_values` values, as read.
template <typename T>
Result<std::vector<T>> ReadSmall(hid_t group, const char* name, hid_t mem_type, std::vector<hsize_t>& dims, size_t max_values) {
  Handle ds(H5Dopen2(group, name, H5P_DEFAULT));
  Handle space(ds.valid() ? H5Dget_space(ds.get()) : H5I_INVALID_HID);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 1 || rank > 2) return Error(StatusCode::kDataLoss, "{}: not a 1- or 2-D dataset", name);
  dims.assign(static_cast<size_t>(rank), 0);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  size_t n = 1;
  for (hsize_t d : dims) n *= d;
  if (n > max_values) return Error(StatusCode::kDataLoss, "{}: {} values, more than {}", name, n, max_values);
  std::vector<T> v(n);
  if (n > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0) {
    return LastError(StatusCode::kDataLoss, std::string("cannot read ") + name);
  }
  return v;
}

Result<correct::SlideCorrections> ReadCorrections(hid_t stitch) {
  correct::SlideCorrections out;
  if (H5Lexists(stitch, "corrections", H5P_DEFAULT) <= 0) return out;
  Handle group(H5Gopen2(stitch, "corrections", H5P_DEFAULT));
  if (!group.valid()) return Error(StatusCode::kDataLoss, "cannot open /stitch/corrections");
  H5G_info_t info{};
  if (H5Gget_info(group.get(), &info) < 0 || info.nlinks > 4096) return Error(StatusCode::kDataLoss, "/stitch/corrections: unreadable");
  for (uint32_t channel = 0, found = 0; found < info.nlinks && channel < 4096; ++channel) {
    const std::string name = "c" + std::to_string(channel);
    if (H5Lexists(group.get(), name.c_str(), H5P_DEFAULT) <= 0) continue;
    ++found;
    Handle g(H5Gopen2(group.get(), name.c_str(), H5P_DEFAULT));
    correct::ChannelCorrections c{.channel = channel};
    TESSERA_ASSIGN_OR_RETURN(std::string dark, internal::ReadStringAttr(g.get(), "dark"));
    c.dark = std::strtod(dark.c_str(), nullptr);
    std::vector<hsize_t> dims;
    if (H5Lexists(g.get(), "flat_field", H5P_DEFAULT) > 0) {
      TESSERA_ASSIGN_OR_RETURN(auto gain, ReadSmall<float>(g.get(), "flat_field", H5T_NATIVE_FLOAT, dims, 1u << 20));
      if (dims.size() != 2) return Error(StatusCode::kDataLoss, "/stitch/corrections/{}/flat_field is not 2-D", name);
      Handle ds(H5Dopen2(g.get(), "flat_field", H5P_DEFAULT));
      TESSERA_ASSIGN_OR_RETURN(std::string w, internal::ReadStringAttr(ds.get(), "field_width"));
      TESSERA_ASSIGN_OR_RETURN(std::string h, internal::ReadStringAttr(ds.get(), "field_height"));
      c.flat = correct::FlatField{.width = static_cast<uint32_t>(std::strtoul(w.c_str(), nullptr, 10)),
                                  .height = static_cast<uint32_t>(std::strtoul(h.c_str(), nullptr, 10)),
                                  .grid_x = static_cast<uint32_t>(dims[1]), .grid_y = static_cast<uint32_t>(dims[0]),
                                  .gain = std::move(gain), .dark = c.dark};
    }
    if (H5Lexists(g.get(), "gains", H5P_DEFAULT) > 0) {
      TESSERA_ASSIGN_OR_RETURN(c.gains, ReadSmall<double>(g.get(), "gains", H5T_NATIVE_DOUBLE, dims, 1u << 24));
    }
    out.channels.push_back(std::move(c));
  }
  return out;
}

Status Write(const std::string& path, const StitchRecord& r) {
  Handle fapl = internal::FileAccess();
  Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!file.valid()) return LastError(StatusCode::kInternal, "cannot create " + path);
  TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(file.get(), "format", "tessera-stitch"));
  TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(file.get(), "format_version", std::to_string(kStitchFormatVersion)));
  TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(file.get(), "slide_id", r.slide_id));
  TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(file.get(), "created_unix_ms", std::to_string(r.created_unix_ms)));
  TESSERA_RETURN_IF_ERROR(internal::WriteStringAttr(file.get(), "report", r.report_json));
  Handle group(H5Gcreate2(file.get(), "stitch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!group.valid()) return LastError(StatusCode::kInternal, "cannot create /stitch in " + path);
  TESSERA_RETURN_IF_ERROR(WritePairs(group.get(), "positions", r.positions));
  TESSERA_RETURN_IF_ERROR(WritePairs(group.get(), "stage", r.stage));
  if (!r.z.empty()) {
    TESSERA_RETURN_IF_ERROR(
        internal::WriteSmallDataset(group.get(), "z", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {r.z.size()}, r.z.data()));
  }
  TESSERA_RETURN_IF_ERROR(WriteCorrections(group.get(), r.corrections));
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) return LastError(StatusCode::kInternal, "cannot flush " + path);
  return OkStatus();
}

}  // namespace

namespace {
std::string Beside(const std::string& slide_path, const char* suffix) {
  std::filesystem::path p(slide_path);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}
}  // namespace

std::string StitchPathOf(const std::string& slide_path) { return Beside(slide_path, ".stitch.h5"); }

std::string FusedPathOf(const std::string& slide_path) { return Beside(slide_path, ".fused.h5"); }
std::string DeskewedPathOf(const std::string& slide_path) { return Beside(slide_path, ".deskewed.h5"); }
std::string DestripedPathOf(const std::string& slide_path) { return Beside(slide_path, ".destriped.h5"); }

Status WriteStitchFile(const std::string& path, const StitchRecord& record) {
  if (record.positions.size() != record.stage.size() || (!record.z.empty() && record.z.size() != record.stage.size())) {
    return Error(StatusCode::kInvalidArgument, "{} solved positions ({} z) for {} stage positions",
                 record.positions.size(), record.z.size(), record.stage.size());
  }
  internal::InitHdf5();
  StitchRecord r = record;
  if (r.created_unix_ms == 0) {
    r.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  }
  const std::string tmp = path + ".tmp";
  Status s = Write(tmp, r);
  if (s.ok()) s = durable::SyncFile(tmp);
  if (s.ok()) s = durable::Rename(tmp, path);
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
  }
  return s;
}

Result<StitchRecord> ReadStitchFile(const std::string& path) {
  internal::InitHdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Error(StatusCode::kNotFound, "{} does not exist", path);
  Handle fapl = internal::FileAccess();
  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!file.valid()) return LastError(StatusCode::kDataLoss, "cannot open " + path);
  TESSERA_ASSIGN_OR_RETURN(std::string format, internal::ReadStringAttr(file.get(), "format"));
  if (format != "tessera-stitch") return Error(StatusCode::kDataLoss, "{} is not a Tessera stitch file", path);
  StitchRecord r;
  TESSERA_ASSIGN_OR_RETURN(r.slide_id, internal::ReadStringAttr(file.get(), "slide_id"));
  TESSERA_ASSIGN_OR_RETURN(r.report_json, internal::ReadStringAttr(file.get(), "report"));
  TESSERA_ASSIGN_OR_RETURN(std::string created, internal::ReadStringAttr(file.get(), "created_unix_ms"));
  r.created_unix_ms = std::atoll(created.c_str());
  Handle group(H5Gopen2(file.get(), "stitch", H5P_DEFAULT));
  if (!group.valid()) return LastError(StatusCode::kDataLoss, "missing /stitch in " + path);
  TESSERA_ASSIGN_OR_RETURN(r.positions, ReadPairs(group.get(), "positions"));
  TESSERA_ASSIGN_OR_RETURN(r.stage, ReadPairs(group.get(), "stage"));
  if (H5Lexists(group.get(), "z", H5P_DEFAULT) > 0) {
    Handle ds(H5Dopen2(group.get(), "z", H5P_DEFAULT));
    Handle space(ds.valid() ? H5Dget_space(ds.get()) : H5I_INVALID_HID);
    hsize_t n = 0;
    if (!space.valid() || H5Sget_simple_extent_ndims(space.get()) != 1 ||
        H5Sget_simple_extent_dims(space.get(), &n, nullptr) < 0 || n != r.stage.size()) {
      return Error(StatusCode::kDataLoss, "/stitch/z of {} is not one z per tile", path);
    }
    r.z.resize(n);
    if (n > 0 && H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, r.z.data()) < 0) {
      return LastError(StatusCode::kDataLoss, "cannot read /stitch/z of " + path);
    }
  }
  TESSERA_ASSIGN_OR_RETURN(r.corrections, ReadCorrections(group.get()));
  return r;
}

}  // namespace tessera::storage
