// Client: talks to a Tessera stack: the slide manager (list, info, open, close) and the
// tile dealer (pixels: stored tiles and mosaic regions at any zoom level, live events).
//
// Given only the manager's endpoint, it learns the dealer's. Manager calls are one
// request-reply each. Dealer requests are pipelined over one connection by a background
// thread, chunks are decoded on a thread pool and checked against their checksums; the
// *Async variants return at once. Errors are Status codes: NOT_FOUND (slide, tile,
// level), OUT_OF_RANGE (a box wholly outside the mosaic), DATA_LOSS (a corrupt chunk,
// named), UNAVAILABLE (no service), RESOURCE_EXHAUSTED (a region over max_region_bytes).
//
//   tessera::Client client("tcp://127.0.0.1:7400");
//   auto info = client.Info("s000001");
//   auto region = client.ReadRegion({.slide = "s000001", .level = 1, .x = 0, .y = 0,
//                                    .width = 2048, .height = 2048, .channels = {0}});
//   if (region.ok()) use(region->values<uint16_t>());
//
// Thread-safe: one Client may serve many threads.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "client/array.h"
#include "common/correct/corrections.h"
#include "common/correct/destripe.h"
#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera {

/// The default manager endpoint; TESSERA_SERVER overrides it (see DefaultServer()).
inline constexpr const char* kDefaultServer = "tcp://127.0.0.1:7400";
/// TESSERA_SERVER if set, else the endpoint of the credential in use, else kDefaultServer.
std::string DefaultServer();

/// Every connection this process makes from now on holds the credential in `path` (a file
/// `tessera credential new` wrote; `tessera up` names the admin's as credential= on its ready
/// line). Without a call, the first Client loads TESSERA_CREDENTIAL if it is set. An empty
/// `path` drops the credential (for an insecure stack). NOT_FOUND or INVALID_ARGUMENT naming
/// the file. A stack refusing the credential answers UNAUTHENTICATED;
/// a request its role may not make, PERMISSION_DENIED.
Status UseCredential(const std::string& path);

/// A client of a secured stack, as `ListCredentials` gives it.
struct CredentialEntry {
  std::string name;
  std::string role;  ///< admin, scanner, viewer, worker
  bool revoked = false;
};

/// A stitch the manager runs (tessera serve stitcher): its progress and, once done, its QC
/// report (JSON, as `tessera stitch ID --json` prints it).
struct StitchState {
  std::string slide;
  std::string state;  ///< running, done, failed; "" never stitched
  std::string stage;  ///< deskew, register, solve, fuse, pyramid, store
  uint64_t done = 0, total = 0;
  std::string error;
  std::string report_json;  ///< GetStitch, when done
  double register_s = 0, solve_s = 0, fuse_s = 0;  ///< when done
  uint64_t fused_bytes = 0;     ///< the fused image, level 0, raw
  uint64_t peak_rss_bytes = 0;  ///< the stitcher's peak resident memory
  uint64_t registered_while_acquiring = 0;  ///< pairs registered before the scan closed
  double deskew_s = 0;                      ///< an oblique scan's deskew, when done
  uint64_t deskewed_while_acquiring = 0;    ///< planes deskewed before the scan closed
};

struct SlideSummary {
  std::string id;
  std::string name;
  std::string state;  ///< acquiring, acquired, failed
  std::string path;   ///< the slide's HDF5 file
  uint64_t frames_total = 0;
  uint64_t frames_written = 0;  ///< durable frames
  uint64_t bytes_stored = 0;
  int64_t created_unix_ms = 0;
  std::string proxy_endpoint;  ///< while acquiring
  /// While acquiring, the proxy's Unix socket for scanners on `host` (the manager's
  /// wire::HostId); empty when it has none.
  std::string proxy_local_endpoint, host;
  int proxy_pid = 0, writer_pid = 0;
  /// While acquiring: the proxy's FIFO (compressed bytes held, its bound), the frames it took,
  /// and its acknowledgements' latency (a count per metrics::kLatencyBoundsMs bucket, one more
  /// past the last; their sum in milliseconds).
  uint64_t fifo_held_bytes = 0, fifo_window_bytes = 0, frames_received = 0;
  std::vector<uint64_t> ack_latency_counts;
  double ack_latency_sum_ms = 0;
  std::string error;
  ScanPlan plan;
  /// After a stitch (`Info` only): each tile's solved x, y in level-0 pixels, sub-pixel;
  /// empty before, when the plan's stage positions hold.
  std::vector<std::array<double, 2>> positions;
  std::vector<double> positions_z;  ///< stacks stitched in 3-D: each tile's solved z, planes
  int64_t stitched_unix_ms = 0;
  /// The last stitch this stack's manager ran for the slide (state "" if none); no report.
  StitchState stitch;
  /// After a stitch that estimated them (`Info` only): flat fields, dark levels, tile gains.
  correct::SlideCorrections corrections;
};

struct StitchRequest {
  std::string slide;
  uint32_t channel = 0;
  int z = -1;              ///< -1: a z-stack's maximum projection
  uint32_t max_shift = 0;  ///< px; 0: the default
  bool store = true;       ///< false: report only
  bool flat_field = false; ///< estimate each channel's flat field and dark level, fuse with them
  bool normalize = false;  ///< solve a gain per tile from the overlaps, fuse with them
  double dark = -1;        ///< the camera's dark level (its offset), if known; -1: estimated
  /// Destripe every plane first (the view "<id>:destriped", which is then registered and fused).
  std::optional<correct::DestripeOptions> destripe;
};

/// `tessera info --json`: id, name, state, path, counts, shape, voxel size (pixel_size_um),
/// and `tiles` [{index, name, x, y, z, stage_x, stage_y, stage_z, width, height, planes}] in
/// level-0 voxels: x, y (and z, for stacks stitched in 3-D) solved once the slide is stitched,
/// the stage's before.
std::string SummaryToJson(const SlideSummary& s);

/// What the dealer knows of a slide: its summary, levels, current tile positions and
/// which frames have landed.
struct SlideView {
  SlideSummary summary;
  uint32_t level_count = 1;
  std::vector<std::array<double, 3>> positions;  ///< x, y, z of each tile, level-0 pixels
  std::vector<uint8_t> landed;  ///< per frame: 0 nothing, 1 level 0 stored, 2 every level
  bool live = false;            ///< still being written
  /// The mosaic's planes at level 0: its stacks placed at their z (plane 0 the lowest stack's
  /// first), as the dealer places them; a volume view's level L has plan.Level(L).DepthOf(depth).
  uint64_t depth = 1;
  std::string host;  ///< the dealer's (wire::HostId): where summary.path can be opened
};

/// A tile dealer's counters (docs/protocol.md, DealerStats).
struct DealerStats {
  std::string endpoint;
  bool answered = false;
  uint64_t cache_bytes = 0, cache_capacity = 0, cache_hits = 0, cache_misses = 0, requests = 0;
  /// read_chunks requests, arrival to answer: a count per metrics::kLatencyBoundsMs bucket (one
  /// more past the last), their sum in milliseconds.
  std::vector<uint64_t> read_latency_counts;
  double read_latency_sum_ms = 0;
};

/// Frames of a slide that became readable (FrameIndex values; see ScanPlan::KeyOf).
struct LandedEvent {
  std::string slide;
  std::vector<uint64_t> landed;  ///< level 0 readable
  std::vector<uint64_t> levels;  ///< every level readable
  bool closed = false;           ///< the slide's writer closed the file
};

/// Ends its subscription when destroyed.
class Subscription {
 public:
  struct Impl;
  explicit Subscription(std::unique_ptr<Impl> impl);
  Subscription(Subscription&&) noexcept;
  ~Subscription();

 private:
  std::unique_ptr<Impl> impl_;
};

/// One stored chunk as the dealer sent it (Blosc), its checksum verified; the bytes are the
/// received message itself, not a copy.
struct StoredChunk {
  std::span<const uint8_t> bytes;
  uint64_t xxh64 = 0;
  std::shared_ptr<const void> owner;  ///< keeps `bytes` alive
};

struct ClientOptions {
  int timeout_ms = 10000;                          ///< per request
  uint64_t max_region_bytes = uint64_t{4} << 30;   ///< larger reads: ask for parts
  int decode_threads = 0;                          ///< 0: one per core
  /// On the dealer's host, read the slide's file itself (HDF5, SWMR while it is written) when
  /// this process may open it: the same pixels and checks, without the dealer's socket
  /// between. Regions are still planned by the dealer; tiles need it only once per slide.
  bool local_files = true;
  /// Keep up to this many bytes of decoded chunks for later reads (0: none). Reads of
  /// neighbouring boxes share chunks (a viewer's tiles cut the fields of view's chunks, each
  /// chunk under about four of them): each is decoded once while it stays. A chunk is reused
  /// only while its stored checksum is the one it was decoded from.
  uint64_t decoded_cache_bytes = 0;
};

class Client {
 public:
  /// An empty `server` is DefaultServer().
  explicit Client(std::string server = "", int timeout_ms = 10000);
  Client(std::string server, ClientOptions options);
  ~Client();
  Client(Client&&) noexcept;

  /// Opens a slide for `plan`; the manager starts its proxy and writer.
  Result<SlideSummary> OpenSlide(const ScanPlan& plan);
  /// Stops the slide's proxy and writer once they have stored what they hold.
  Result<SlideSummary> CloseSlide(const std::string& id);
  /// NOT_FOUND for an id the catalog does not have.
  Result<SlideSummary> Info(const std::string& id);
  /// Stores a stitch's solved positions (one x, y per tile, and z for stacks stitched in 3-D)
  /// and QC report beside the slide, with the corrections it estimated (if any); the dealer
  /// places the tiles there from then on.
  Result<SlideSummary> StoreStitch(const std::string& id, const std::vector<std::array<double, 2>>& positions,
                                   const std::string& report_json, const std::vector<double>& z = {},
                                   const correct::SlideCorrections& corrections = {});
  /// Starts stitching a closed slide on the stack's workers (or returns the stitch under way).
  Result<StitchState> StartStitch(const StitchRequest& request);
  /// The slide's last stitch, with its report once done.
  Result<StitchState> GetStitch(const std::string& id);
  Result<std::vector<SlideSummary>> List();
  /// Every role of the stack and its endpoint ("manager", ...).
  Result<std::map<std::string, std::string>> Endpoints();

  /// Admin only. Issues a credential for a new client named `name` with `role` and writes it
  /// to `path` (mode 0600): hand that file to the client. ALREADY_EXISTS for a name in use.
  Status IssueCredential(const std::string& name, const std::string& role, const std::string& path);
  /// Admin only. Refuses `name`'s key from now on (new connections). NOT_FOUND if unknown.
  Status RevokeCredential(const std::string& name);
  Result<std::vector<CredentialEntry>> ListCredentials();

  /// The dealer's view of a slide (levels, positions, landed frames).
  Result<SlideView> Describe(const std::string& id);
  /// What each of the stack's tile dealers has served, in the manager's order (`answered`
  /// false for one that did not answer within the client's timeout): the gateway's /metrics.
  Result<std::vector<DealerStats>> DealersStats();

  /// A box of the mosaic at a level, composed from the fields of view at their current
  /// positions (the higher tile index on top where they overlap); pixels no tile covers
  /// are 0. z_begin, z_end count the mosaic's planes: stacks placed at their z (solved, or the
  /// stage's), plane 0 the lowest stack's first, so a 3-D box of a volume is x, y, z_begin and
  /// width, height, z_end - z_begin. A box partly outside the mosaic (or past its last plane)
  /// is clipped (Array::clipped says so).
  Result<Array> ReadRegion(const RegionRequest& request);
  /// The same into `out`, whose buffer is reused: a loop of reads into one Array faults in
  /// no fresh memory per read. On an error `out`'s pixels are unspecified.
  Status ReadRegion(const RegionRequest& request, Array& out);
  std::future<Result<Array>> ReadRegionAsync(RegionRequest request);

  /// One field of view at a level: channels x z x its height x width at that level.
  Result<Array> ReadTile(const TileRequest& request);
  Status ReadTile(const TileRequest& request, Array& out);  ///< into `out`, its buffer reused
  std::future<Result<Array>> ReadTileAsync(TileRequest request);

  /// One stored chunk exactly as stored (Blosc), its checksum verified.
  Result<StoredChunk> ReadChunk(const std::string& slide, const ChunkKey& key);

  /// Calls `on_event` (on a background thread) as frames of `slide` land.
  Result<Subscription> Subscribe(const std::string& slide, std::function<void(const LandedEvent&)> on_event);

  const std::string& server() const { return server_; }

 private:
  struct Reader;
  Result<Reader*> reader();  // the dealer connection, made on first use

  std::string server_;
  ClientOptions options_;
  Status credential_;  // how loading TESSERA_CREDENTIAL went
  std::unique_ptr<std::mutex> reader_mu_;
  std::unique_ptr<Reader> reader_;
};

}  // namespace tessera
