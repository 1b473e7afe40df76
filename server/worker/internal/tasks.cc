#include "server/worker/internal/tasks.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <cstring>
#include <future>
#include <optional>
#include <vector>

#include "common/codec/codec.h"
#include "common/correct/corrections_proto.h"
#include "common/deskew/deskew.h"
#include "common/pyramid/pyramid.h"
#include "common/stitch/fuse.h"
#include "common/stitch/register.h"
#include "common/wire/wire.h"

namespace tessera::worker::internal {
namespace {

// A window of one plane of a field of view as uint16 (uint8 slides widened).
struct Plane {
  std::vector<uint16_t> pixels;
  stitch::ImageView view;
};

// The maximum over the array's planes (one channel) folded into `p` (empty: set to it).
void MaxInto(const Array& a, Plane& p) {
  const auto n = static_cast<size_t>(a.shape[2] * a.shape[3]);
  if (p.pixels.size() != n) p.pixels.assign(n, 0);
  auto project = [&](auto values) {
    for (int64_t z = 0; z < a.shape[1]; ++z) {
      for (size_t i = 0; i < n; ++i) p.pixels[i] = std::max<uint16_t>(p.pixels[i], values[static_cast<size_t>(z) * n + i]);
    }
  };
  if (a.dtype == Dtype::kUint16) {
    project(a.values<uint16_t>());
  } else {
    project(a.values<uint8_t>());
  }
  p.view = {p.pixels.data(), a.shape[3], a.shape[2], 0};
}

// Plane z of the array (one channel), as uint16: a view into the array itself (valid while
// it lives), or for uint8 slides a widened copy.
Plane PlaneOf(const Array& a, int64_t z) {
  Plane p;
  const auto n = static_cast<size_t>(a.shape[2] * a.shape[3]);
  if (a.dtype == Dtype::kUint16) {
    p.view = {a.values<uint16_t>().subspan(static_cast<size_t>(z) * n, n).data(), a.shape[3], a.shape[2], 0};
    return p;
  }
  const auto v = a.values<uint8_t>().subspan(static_cast<size_t>(z) * n, n);
  p.pixels.assign(v.begin(), v.end());
  p.view = {p.pixels.data(), a.shape[3], a.shape[2], 0};
  return p;
}

// Reads windows `rects` of tiles `tiles` (one channel), planes [z0, z1), a block of planes at
// a time (both tiles' blocks read together), and hands each pair of blocks to `use`: memory
// is one block of the two windows whatever the stacks' depth.
constexpr uint64_t kPlaneBlockBytes = uint64_t{16} << 20;

Status ForPlaneBlocks(TaskContext& context, const std::string& slide, uint32_t channel, std::array<uint32_t, 2> tiles,
                      std::array<stitch::Rect, 2> rects, uint32_t z0, uint32_t z1,
                      const std::function<void(const Array&, const Array&)>& use) {
  const uint64_t plane_bytes = 2 * uint64_t(rects[0].width() * rects[0].height() + rects[1].width() * rects[1].height());
  const auto block = static_cast<uint32_t>(std::clamp<uint64_t>(kPlaneBlockBytes / std::max<uint64_t>(plane_bytes, 1), 1, z1 - z0));
  for (uint32_t z = z0; z < z1; z += block) {
    const uint32_t end = std::min(z1, z + block);
    auto read = [&](uint32_t k) {
      return context.client().ReadTileAsync({.slide = slide, .tile = tiles[k], .level = 0, .channels = {channel},
                                             .z_begin = z, .z_end = end, .x = rects[k].x0, .y = rects[k].y0,
                                             .width = rects[k].width(), .height = rects[k].height()});
    };
    auto fa = read(0), fb = read(1);
    TESSERA_ASSIGN_OR_RETURN(Array a, fa.get());
    TESSERA_ASSIGN_OR_RETURN(Array b, fb.get());
    use(a, b);
  }
  return OkStatus();
}

Result<TaskOutput> Register(TaskContext& context, const proto::RegisterTask& t) {
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan* plan, context.Plan(t.slide()));
  const auto tiles = static_cast<uint32_t>(plan->tiles.size());
  if (t.a() >= tiles || t.b() >= tiles || t.a() == t.b()) {
    return Error(StatusCode::kInvalidArgument, "register {} against {}: slide {} has tiles 0 to {}", t.b(), t.a(),
                 t.slide(), tiles - 1);
  }
  if (t.channel() >= plan->channels.size() || t.z() >= plan->z_planes) {
    return Error(StatusCode::kInvalidArgument, "channel {} z {}: slide {} has {} channels and {} planes", t.channel(),
                 t.z(), t.slide(), plan->channels.size(), plan->z_planes);
  }
  // The task's numbers, from the broker's client: bounded before they size anything.
  constexpr uint32_t kMaxShift = 4096;
  if (t.max_shift() > kMaxShift || t.max_shift_z() > kMaxZPlanes || !(std::abs(t.nominal_dx()) <= kMaxTilePosition) ||
      !(std::abs(t.nominal_dy()) <= kMaxTilePosition) || !(std::abs(t.nominal_dz()) <= kMaxTilePosition)) {
    return Error(StatusCode::kInvalidArgument, "register {} against {}: shifts up to {} px and {} planes, offsets within {}",
                 t.b(), t.a(), kMaxShift, kMaxZPlanes, kMaxTilePosition);
  }
  const int64_t w = plan->width, h = plan->height;
  const auto [wa, wb] = stitch::OverlapWindows(w, h, w, h, t.nominal_dx(), t.nominal_dy(), static_cast<int>(t.max_shift()));
  if (wa.empty() || wb.empty()) {
    return Error(StatusCode::kInvalidArgument, "tiles {} and {} at ({}, {}) cannot overlap within {} px", t.a(), t.b(),
                 t.nominal_dx(), t.nominal_dy(), t.max_shift());
  }
  const uint32_t z0 = t.project_z() ? 0 : t.z(), z1 = t.project_z() ? plan->z_planes : t.z() + 1;
  // The windows' maximum projections over their planes, read a block of planes at a time.
  Plane pa, pb;
  TESSERA_RETURN_IF_ERROR(ForPlaneBlocks(context, t.slide(), t.channel(), {t.a(), t.b()}, {wa, wb}, z0, z1,
                                         [&](const Array& a, const Array& b) {
    MaxInto(a, pa);
    MaxInto(b, pb);
  }));
  if (t.zero_is_empty()) {
    stitch::FillEmpty(pa.pixels);
    stitch::FillEmpty(pb.pixels);
  }
  // In the windows' pixels b's origin moves by the windows' corners.
  const double gx = static_cast<double>(wb.x0 - wa.x0), gy = static_cast<double>(wb.y0 - wa.y0);
  stitch::RegisterOptions o;
  o.max_shift = static_cast<int>(t.max_shift());
  TESSERA_ASSIGN_OR_RETURN(stitch::Link link,
                           stitch::RegisterPair(pa.view, pb.view, t.nominal_dx() + gx, t.nominal_dy() + gy, o));
  link.dx -= gx;
  link.dy -= gy;
  if (t.register_z() && t.project_z() && link.reliable) {
    // z: side views of the overlap at that offset, a row per plane, again a block at a time.
    const stitch::DepthOverlap d = stitch::DepthOverlapOf(w, h, w, h, link.dx, link.dy, t.zero_is_empty());
    const auto length = static_cast<size_t>(d.length), planes = size_t{z1 - z0};
    if (length * planes > (size_t{1} << 28)) {  // 2 x 512 MiB: far beyond any stack's side
      return Error(StatusCode::kResourceExhausted, "register {} against {}: side views of {} x {} are too large", t.b(),
                   t.a(), length, planes);
    }
    std::vector<uint16_t> side_a(length * planes), side_b(length * planes);
    uint32_t at = 0;
    TESSERA_RETURN_IF_ERROR(ForPlaneBlocks(context, t.slide(), t.channel(), {t.a(), t.b()}, {d.a, d.b}, z0, z1,
                                           [&](const Array& a, const Array& b) {
      for (int64_t z = 0; z < a.shape[1]; ++z, ++at) {
        Plane qa = PlaneOf(a, z), qb = PlaneOf(b, z);
        stitch::ProjectSide(qa.view, d.along_x, std::span(side_a).subspan(at * length, length));
        stitch::ProjectSide(qb.view, d.along_x, std::span(side_b).subspan(at * length, length));
      }
    }));
    if (t.zero_is_empty()) {
      stitch::FillEmpty(side_a);
      stitch::FillEmpty(side_b);
    }
    stitch::RegisterOptions oz = o;
    oz.max_shift = static_cast<int>(t.max_shift_z());
    TESSERA_RETURN_IF_ERROR(stitch::RegisterDepth({side_a.data(), d.length, static_cast<int64_t>(planes), 0},
                                                  {side_b.data(), d.length, static_cast<int64_t>(planes), 0}, d,
                                                  t.nominal_dz(), oz, link));
  } else {
    link.dz = link.nominal_dz = t.nominal_dz();
  }
  TaskOutput out;
  proto::LinkResult* l = out.result.mutable_link();
  l->set_a(t.a());
  l->set_b(t.b());
  l->set_dx(link.dx);
  l->set_dy(link.dy);
  l->set_dz(link.dz);
  l->set_ncc_z(link.ncc_z);
  l->set_ncc(link.ncc);
  l->set_margin(link.margin);
  l->set_texture(link.texture);
  l->set_reliable(link.reliable);
  l->set_reason(link.reason);
  return out;
}

// The planes of `a` (a window of `tile` whose top-left is (x0, y0)) corrected in place.
void CorrectInPlace(const correct::ChannelCorrections& cc, uint32_t tile, int64_t x0, int64_t y0, Array& a) {
  const auto plane = static_cast<size_t>(a.shape[2] * a.shape[3]);
  std::vector<uint16_t> wide(a.dtype == Dtype::kUint8 ? plane : 0);
  for (size_t k = 0; k < static_cast<size_t>(a.shape[0] * a.shape[1]); ++k) {
    if (a.dtype == Dtype::kUint16) {
      auto* v = reinterpret_cast<uint16_t*>(a.data.data()) + k * plane;
      // Each output pixel is its own input's: correcting in place is safe.
      correct::CorrectWindow(cc, tile, {v, a.shape[3], a.shape[2], 0}, x0, y0, 1, {v, plane}, 65535);
    } else {
      uint8_t* v = a.data.data() + k * plane;
      std::copy(v, v + plane, wide.begin());
      correct::CorrectWindow(cc, tile, {wide.data(), a.shape[3], a.shape[2], 0}, x0, y0, 1, wide, 255);
      std::copy(wide.begin(), wide.end(), v);
    }
  }
}

// Chunks of the fused image: the windows of the tiles over the box, feathered together plane
// by plane, then cut into the fused view's chunks (one chunk deep: chunk_depth planes, of
// which the task's `planes` are fused and the rest zero) and compressed with the slide's codec.
Result<TaskOutput> Fuse(TaskContext& context, const proto::FuseTask& t) {
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan* plan, context.Plan(t.slide()));
  const uint32_t planes = std::max(1u, t.planes()), depth = std::max(1u, t.chunk_depth());
  constexpr uint64_t kMaxFuseBytes = uint64_t{256} << 20;  // the fused block, as uint16
  if (t.channel() >= plan->channels.size() || t.width() == 0 || t.height() == 0 ||
      t.width() > 8192 || t.height() > 8192 || t.chunk_width() == 0 || t.chunk_height() == 0 ||
      t.width() % t.chunk_width() != 0 || t.height() % t.chunk_height() != 0 || planes > depth ||
      depth > kMaxChunkPlanes || uint64_t{t.width()} * t.height() * depth * 2 > kMaxFuseBytes) {
    return Error(StatusCode::kInvalidArgument,
                 "fuse channel {} z {} box {}x{}x{} in chunks of {}x{}x{}: not a fusable box of slide {}", t.channel(),
                 t.z(), t.width(), t.height(), planes, t.chunk_width(), t.chunk_height(), depth, t.slide());
  }
  const stitch::Rect box{t.x(), t.y(), t.x() + t.width(), t.y() + t.height()};
  const int64_t w = plan->width, h = plan->height;
  // Corrected fusion: the task's flat field and dark level, each tile's gain.
  std::optional<correct::ChannelCorrections> corrections;
  if (t.has_corrections()) {
    corrections = correct::FromProto(t.corrections());
    TESSERA_RETURN_IF_ERROR(correct::CheckCorrections({{*corrections}}, static_cast<uint32_t>(plan->tiles.size()),
                                                      static_cast<uint32_t>(plan->channels.size()), plan->width,
                                                      plan->height));
    if (corrections->channel != t.channel()) {
      return Error(StatusCode::kInvalidArgument, "fuse channel {} with the corrections of channel {}", t.channel(),
                   corrections->channel);
    }
    corrections->gains.assign(plan->tiles.size(), 1.0);
  }
  struct Part {
    stitch::Rect window;  // in the tile's pixels
    const proto::FuseTile* tile;
    uint32_t at, planes;  // under the task's planes at .. at + planes - 1
    std::future<Result<Array>> pixels;
    Array array;
  };
  std::vector<Part> parts;
  for (const auto& ft : t.tiles()) {
    const uint32_t n = std::max(1u, ft.planes());
    if (ft.tile() >= plan->tiles.size() || ft.z() >= plan->z_planes || n > plan->z_planes - ft.z() || ft.at() >= planes ||
        n > planes - ft.at() || !(ft.gain() == 0 || (ft.gain() > 0.01 && ft.gain() < 100))) {
      return Error(StatusCode::kInvalidArgument, "fuse: slide {} has no tile {} planes {}+{} under planes {}+{} of {} (gain {})",
                   t.slide(), ft.tile(), ft.z(), n, ft.at(), n, planes, ft.gain());
    }
    if (corrections && ft.gain() > 0) corrections->gains[ft.tile()] = ft.gain();
    const stitch::Rect window{std::max<int64_t>(0, box.x0 - ft.x()), std::max<int64_t>(0, box.y0 - ft.y()),
                              std::min<int64_t>(w, box.x1 - ft.x()), std::min<int64_t>(h, box.y1 - ft.y())};
    if (window.empty()) continue;
    parts.push_back({window, &ft, ft.at(), n,
                     context.client().ReadTileAsync({.slide = t.slide(), .tile = ft.tile(), .level = 0,
                                                     .channels = {t.channel()}, .z_begin = ft.z(), .z_end = ft.z() + n,
                                                     .x = window.x0, .y = window.y0, .width = window.width(),
                                                     .height = window.height()}),
                     {}});
  }
  for (auto& p : parts) {
    TESSERA_ASSIGN_OR_RETURN(p.array, p.pixels.get());
    if (corrections) CorrectInPlace(*corrections, p.tile->tile(), p.window.x0, p.window.y0, p.array);
  }
  const int64_t cw = t.chunk_width(), ch = t.chunk_height(), bw = t.width(), bh = t.height();
  const size_t elem = DtypeSize(plan->dtype);
  // Each plane's inputs: the tiles' planes under it.
  std::vector<std::vector<Plane>> views(planes);
  std::vector<std::vector<stitch::FuseInput>> inputs(planes);
  for (uint32_t i = 0; i < planes; ++i) {
    views[i].reserve(parts.size());
    for (const auto& p : parts) {
      if (i < p.at || i >= p.at + p.planes) continue;
      views[i].push_back(PlaneOf(p.array, i - p.at));
      inputs[i].push_back({views[i].back().view, p.window.x0, p.window.y0, p.tile->x(), p.tile->y(), w, h});
    }
  }
  // Chunk by chunk, row-major: each plane fused straight into the chunk (the planes past the
  // task's stay zero), in the slide's sample type and codec.
  TaskOutput out;
  const size_t chunk_plane = static_cast<size_t>(cw * ch);
  std::vector<uint16_t> chunk(chunk_plane * depth, 0);
  std::vector<uint8_t> narrow(elem == 1 ? chunk.size() : 0, 0);
  for (int64_t y0 = 0; y0 < bh; y0 += ch) {
    for (int64_t x0 = 0; x0 < bw; x0 += cw) {
      const stitch::Rect chunk_box{box.x0 + x0, box.y0 + y0, box.x0 + x0 + cw, box.y0 + y0 + ch};
      for (uint32_t i = 0; i < planes; ++i) {
        stitch::FuseBox(chunk_box, inputs[i], t.blend(), std::span(chunk).subspan(chunk_plane * i, chunk_plane));
      }
      std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size() * 2);
      if (elem == 1) {
        for (size_t k = 0; k < chunk_plane * planes; ++k) narrow[k] = static_cast<uint8_t>(std::min<uint16_t>(chunk[k], 255));
        raw = narrow;
      }
      TESSERA_ASSIGN_OR_RETURN(auto packed, codec::Compress(raw, elem, plan->codec));
      out.result.mutable_chunk()->add_checksums(codec::Checksum(packed));
      out.payload.push_back(std::move(packed));
    }
  }
  return out;
}

// At most this many planes, and chunks over all their levels, in one deskew task: the answer
// is one message (its parts bounded by the broker's limits) and the planes are in memory.
constexpr uint32_t kMaxDeskewPlanes = 256;
constexpr size_t kMaxDeskewChunks = wire::Limits{}.max_parts - 24;

// A task on planes z .. z + planes - 1 of one tile and channel of `raw` (a DeskewTask or a
// DestripeTask), answered in `view`'s plan: its numbers checked against the slide, and the
// chunks one plane's answer holds over every level (the whole answer bounded).
template <typename Task>
Result<size_t> CheckPlaneTask(const char* what, const ScanPlan& raw, const ScanPlan& view, const Task& t) {
  if (t.tile() >= raw.tiles.size() || t.channel() >= raw.channels.size() || t.planes() == 0 ||
      t.planes() > kMaxDeskewPlanes || t.z() >= raw.z_planes || t.planes() > raw.z_planes - t.z()) {
    return Error(StatusCode::kInvalidArgument,
                 "{} tile {} channel {} planes {}+{}: slide {} has {} tiles, {} channels, {} planes (at most {} a task)",
                 what, t.tile(), t.channel(), t.z(), t.planes(), t.slide(), raw.tiles.size(), raw.channels.size(),
                 raw.z_planes, kMaxDeskewPlanes);
  }
  size_t chunks = 0;
  for (uint32_t l = 0; l < view.level_count(); ++l) chunks += view.Level(l).chunks_per_frame();
  if (chunks * t.planes() > kMaxDeskewChunks) {
    return Error(StatusCode::kInvalidArgument, "{} of {} planes of {}: {} chunks, more than a task answers ({})", what,
                 t.planes(), t.slide(), chunks * t.planes(), kMaxDeskewChunks);
  }
  return chunks;
}

// Appends frame `key` of `plan` (its level-0 pixels) as stored chunks: level 0 row-major,
// then each zoom level row-major.
Status AppendFrameChunks(const ScanPlan& plan, const FrameKey& key, std::span<const uint8_t> pixels, TaskOutput& out) {
  const LevelShape l0 = plan.Level(0);
  const size_t elem = DtypeSize(plan.dtype);
  std::vector<uint8_t> chunk(l0.chunk_pixels() * elem);
  auto add = [&](std::vector<uint8_t> packed, uint64_t sum) {
    out.result.mutable_chunk()->add_checksums(sum);
    out.payload.push_back(std::move(packed));
  };
  for (uint32_t cy = 0; cy < l0.chunks_y(); ++cy) {
    for (uint32_t cx = 0; cx < l0.chunks_x(); ++cx) {
      pyramid::ExtractChunk(pixels, l0, elem, cy, cx, chunk);
      TESSERA_ASSIGN_OR_RETURN(auto packed, codec::Compress(chunk, elem, plan.codec));
      const uint64_t sum = codec::Checksum(packed);
      add(std::move(packed), sum);
    }
  }
  TESSERA_ASSIGN_OR_RETURN(auto levels, pyramid::EncodeLevels(key, pixels, plan));
  for (auto& c : levels) add(std::move(c.blosc), c.xxh64);
  return OkStatus();
}

// Raw planes of one stack, turned and sheared one at a time into the deskewed view's frames.
template <typename T>
Status DeskewPlanes(const ScanPlan& raw, const ScanPlan& deskewed, const deskew::Geometry& g, const Array& planes,
                    const proto::DeskewTask& t, TaskOutput& out) {
  const auto values = planes.values<T>();
  const size_t frame = size_t{raw.width} * raw.height;
  std::vector<T> oriented(size_t{g.raw_width} * g.raw_height), plane(size_t{g.width} * g.height);
  for (uint32_t i = 0; i < t.planes(); ++i) {
    const uint32_t k = t.z() + i;
    TESSERA_RETURN_IF_ERROR(deskew::Orient<T>(g.params, values.subspan(i * frame, frame), raw.width, raw.height, oriented));
    TESSERA_RETURN_IF_ERROR(deskew::DeskewPlane<T>(g, k, oriented, plane));
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(plane.data()), plane.size() * sizeof(T));
    TESSERA_RETURN_IF_ERROR(AppendFrameChunks(deskewed, {t.tile(), t.channel(), k}, bytes, out));
  }
  return OkStatus();
}

// Planes of one stack of an oblique scan, deskewed with their zoom levels.
Result<TaskOutput> Deskew(TaskContext& context, const proto::DeskewTask& t) {
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan* raw, context.Plan(t.slide()));
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan deskewed, DeskewedPlanOf(*raw));
  TESSERA_ASSIGN_OR_RETURN(const size_t chunks, CheckPlaneTask("deskew", *raw, deskewed, t));
  TESSERA_ASSIGN_OR_RETURN(const deskew::Geometry g,
                           deskew::Plan(DeskewParamsOf(*raw), raw->width, raw->height, raw->z_planes));
  TESSERA_ASSIGN_OR_RETURN(Array planes,
                           context.client().ReadTile({.slide = t.slide(), .tile = t.tile(), .level = 0,
                                                      .channels = {t.channel()}, .z_begin = t.z(),
                                                      .z_end = t.z() + t.planes()}));
  TaskOutput out;
  out.payload.reserve(chunks * t.planes());
  if (raw->dtype == Dtype::kUint16) {
    TESSERA_RETURN_IF_ERROR(DeskewPlanes<uint16_t>(*raw, deskewed, g, planes, t, out));
  } else {
    TESSERA_RETURN_IF_ERROR(DeskewPlanes<uint8_t>(*raw, deskewed, g, planes, t, out));
  }
  return out;
}

// Planes of one tile destriped (common/correct/destripe.h), each stored with its zoom levels in
// the slide's own plan (its destriped view).
Result<TaskOutput> Destripe(TaskContext& context, const proto::DestripeTask& t) {
  TESSERA_ASSIGN_OR_RETURN(const ScanPlan* plan, context.Plan(t.slide()));
  TESSERA_ASSIGN_OR_RETURN(const correct::DestripeOptions options, correct::FromProto(t.params()));
  std::optional<correct::ChannelCorrections> flat;
  if (t.has_flat()) {
    flat = correct::FromProto(t.flat());
    flat->gains.clear();
    TESSERA_RETURN_IF_ERROR(correct::CheckCorrections({{*flat}}, static_cast<uint32_t>(plan->tiles.size()),
                                                      static_cast<uint32_t>(plan->channels.size()), plan->width,
                                                      plan->height));
  }
  TESSERA_ASSIGN_OR_RETURN(const size_t chunks, CheckPlaneTask("destripe", *plan, *plan, t));
  TESSERA_ASSIGN_OR_RETURN(Array planes, context.client().ReadTile({.slide = t.slide(), .tile = t.tile(), .level = 0,
                                                                    .channels = {t.channel()}, .z_begin = t.z(),
                                                                    .z_end = t.z() + t.planes()}));
  const size_t frame = size_t{plan->width} * plan->height, elem = DtypeSize(plan->dtype);
  std::vector<uint16_t> in(frame), out(frame);
  std::vector<uint8_t> bytes(frame * elem);
  TaskOutput result;
  result.payload.reserve(chunks * t.planes());
  for (uint32_t i = 0; i < t.planes(); ++i) {
    const uint8_t* raw = planes.data.data() + i * frame * elem;
    if (elem == 1) {
      std::copy(raw, raw + frame, in.begin());
    } else {
      std::memcpy(in.data(), raw, frame * 2);
    }
    if (flat) correct::CorrectWindow(*flat, t.tile(), {in.data(), plan->width, plan->height, 0}, 0, 0, 1, in, elem == 1 ? 255 : 65535);
    TESSERA_RETURN_IF_ERROR(correct::Destripe({in.data(), plan->width, plan->height, 0}, options, out));
    if (elem == 1) {
      for (size_t k = 0; k < frame; ++k) bytes[k] = static_cast<uint8_t>(std::min<uint16_t>(out[k], 255));
    } else {
      std::memcpy(bytes.data(), out.data(), frame * 2);
    }
    TESSERA_RETURN_IF_ERROR(AppendFrameChunks(*plan, {t.tile(), t.channel(), t.z() + i}, bytes, result));
  }
  return result;
}

}  // namespace

Result<const ScanPlan*> TaskContext::Plan(const std::string& slide) {
  if (auto it = plans_.find(slide); it != plans_.end()) return &it->second;
  TESSERA_ASSIGN_OR_RETURN(SlideSummary s, client_.Info(slide));
  return &plans_.emplace(slide, std::move(s.plan)).first->second;
}

Result<TaskOutput> RunTask(TaskContext& context, const proto::TaskRequest& request) {
  switch (request.body_case()) {
    case proto::TaskRequest::kRegisterPair: return Register(context, request.register_pair());
    case proto::TaskRequest::kFuse: return Fuse(context, request.fuse());
    case proto::TaskRequest::kDeskew: return Deskew(context, request.deskew());
    case proto::TaskRequest::kDestripe: return Destripe(context, request.destripe());
    default:
      return Error(StatusCode::kInvalidArgument, "service {}: this worker has no task of that kind", request.service());
  }
}

}  // namespace tessera::worker::internal
