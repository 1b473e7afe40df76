#include "client/scanner.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "client/client.h"
#include "common/codec/codec.h"
#include "common/log/log.h"
#include "common/pyramid/pyramid.h"
#include "common/wire/rpc.h"

namespace tessera {
namespace {

constexpr int64_t kSilenceMs = 1000;  // say Hello after this much silence from the proxy
constexpr int64_t kHelloIntervalMs = 500;

using Chunk = std::shared_ptr<const std::vector<uint8_t>>;

struct Outstanding {
  std::string header;
  std::vector<Chunk> chunks;
  uint64_t bytes = 0;
};

}  // namespace

struct Scanner::Impl {
  ScannerOptions options;
  std::string server;
  SlideSummary slide;
  std::optional<wire::Stream<proto::IngestMessage>> proxy;
  std::shared_ptr<spdlog::logger> log = log::Get("scanner");

  uint64_t proxy_incarnation = 0;
  uint64_t window = 0;
  std::map<uint64_t, Outstanding> outstanding;
  Progress progress;
  Status error;  // sticky: the first fault the slide reported
  uint32_t compress_threads = 1;
  // Push's, kept from frame to frame: the chunks to make, and the zoom levels' images.
  struct Job {
    uint32_t level, cy, cx;
  };
  std::vector<Job> jobs;
  std::vector<std::vector<uint8_t>> level_images;
  bool scanner_levels = false;  // ScannerOptions::levels, resolved for the endpoint in use
  int64_t heard_ms = wire::NowMs(), hello_ms = 0, asked_ms = 0;

  void SendFrame(const Outstanding& f) {
    std::vector<zmq::message_t> payload;
    payload.reserve(f.chunks.size());
    for (const auto& c : f.chunks) payload.push_back(wire::Share(c));
    proto::IngestMessage header;
    header.ParseFromString(f.header);
    proxy->Send(std::move(header), std::move(payload));
  }

  // The proxy's Unix socket when this process runs on the manager's host and may open it;
  // its TCP endpoint otherwise.
  std::string PickEndpoint() const {
    const std::string& local = slide.proxy_local_endpoint;
    if (options.local && !slide.host.empty() && slide.host == wire::HostId() && wire::CanOpenIpc(local)) {
      return local;
    }
    return slide.proxy_endpoint;
  }

  void Hello() {
    proto::IngestMessage m;
    m.mutable_hello()->set_slide_id(slide.id);
    proxy->Send(std::move(m));
    hello_ms = wire::NowMs();
  }

  void Handle(const proto::IngestMessage& m) {
    heard_ms = wire::NowMs();
    switch (m.body_case()) {
      case proto::IngestMessage::kWelcome:
        window = m.welcome().window_bytes();
        if (m.welcome().incarnation() != proxy_incarnation) {
          if (proxy_incarnation != 0) {
            log->warn("slide={} proxy restarted; resending frames={}", slide.id, outstanding.size());
            progress.frames_resent += outstanding.size();
            for (const auto& [index, f] : outstanding) SendFrame(f);
          }
          proxy_incarnation = m.welcome().incarnation();
        }
        return;
      case proto::IngestMessage::kAck:
        for (uint64_t index : m.ack().durable()) {
          auto it = outstanding.find(index);
          if (it == outstanding.end()) continue;  // a duplicate's second ack
          progress.outstanding_bytes -= it->second.bytes;
          ++progress.frames_durable;
          outstanding.erase(it);
        }
        return;
      case proto::IngestMessage::kFault: {
        Status s = wire::FromProto(m.fault().status());
        if (m.fault().has_frame()) {
          const uint64_t index = m.fault().frame_index();
          // A refused frame is not held anywhere: forget it, and report why.
          if (auto it = outstanding.find(index); it != outstanding.end() && !m.fault().fatal()) {
            progress.outstanding_bytes -= it->second.bytes;
            outstanding.erase(it);
          }
          const FrameKey k = slide.plan.KeyOf(index);
          s = Status(s.code(), fmt::format("frame t={} c={} z={} refused: {}", k.t, k.c, k.z, s.message()));
        }
        if (error.ok()) error = s;
        return;
      }
      default:
        return;
    }
  }

  // Handles what has arrived, waiting up to `wait_ms` for the first message.
  void Pump(int wait_ms) {
    const int64_t now = wire::NowMs();
    if (now - heard_ms > kSilenceMs && now - hello_ms > kHelloIntervalMs) Hello();
    for (auto in = proxy->Next(wait_ms); in; in = proxy->Next(0)) Handle(in->header);
    if (error.ok()) error = proxy->Refused();
  }

  // The proxy is silent: a slide that failed (its proxy stopped) is an error now, not at the
  // timeout. Asked at most every kSilenceMs; an unreachable manager is no answer.
  void AskManagerWhenSilent() {
    const int64_t now = wire::NowMs();
    if (now - heard_ms < 2 * kSilenceMs || now - asked_ms < kSilenceMs) return;
    asked_ms = now;
    Client client(server, static_cast<int>(kSilenceMs));
    auto info = client.Info(slide.id);
    if (info.ok() && info->state == "failed" && error.ok()) {
      error = Error(StatusCode::kUnavailable, "slide {} failed: {}", slide.id,
                    info->error.empty() ? "see the manager's log" : info->error);
    }
  }

  // Pumps until `done()` or an error, failing when nothing is acknowledged for too long.
  template <typename Done>
  Status WaitUntil(Done done, const std::function<void(const Progress&)>& on_progress = {}) {
    uint64_t last_durable = progress.frames_durable;
    int64_t last_progress_ms = wire::NowMs();
    while (error.ok() && !done()) {
      if (options.stop != nullptr && options.stop->load()) {
        return Error(StatusCode::kCancelled, "slide {}: stopped with {} frames not yet acknowledged", slide.id,
                     outstanding.size());
      }
      Pump(100);
      if (on_progress) on_progress(progress);
      AskManagerWhenSilent();
      if (progress.frames_durable != last_durable) {
        last_durable = progress.frames_durable;
        last_progress_ms = wire::NowMs();
      } else if (wire::NowMs() - last_progress_ms > options.timeout_ms) {
        return Error(StatusCode::kDeadlineExceeded,
                     "slide {}: no frame acknowledged for {} ms ({} frames outstanding); check "
                     "`tessera info {}` and the proxy at {}",
                     slide.id, options.timeout_ms, outstanding.size(), slide.id,
                     proxy->endpoint());
      }
    }
    return error;
  }
};

Scanner::Scanner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scanner::~Scanner() = default;
const std::string& Scanner::slide_id() const { return impl_->slide.id; }
const std::string& Scanner::endpoint() const { return impl_->proxy->endpoint(); }
const ScanPlan& Scanner::plan() const { return impl_->slide.plan; }
Scanner::Progress Scanner::progress() const { return impl_->progress; }

Result<std::unique_ptr<Scanner>> Scanner::Open(const std::string& server, const ScanPlan& plan,
                                               const ScannerOptions& options) {
  TESSERA_RETURN_IF_ERROR(plan.Validate());
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->compress_threads = options.compress_threads > 0
                               ? static_cast<uint32_t>(options.compress_threads)
                               : std::max(1u, std::thread::hardware_concurrency());
  impl->server = server;
  Client client(server, std::min(options.timeout_ms, 10000));
  TESSERA_ASSIGN_OR_RETURN(impl->slide, client.OpenSlide(plan));
  // A fixed routing id: after a reconnect the proxy still knows whom to acknowledge.
  const std::string routing_id = fmt::format("scanner-{:016x}", wire::RandomId());
  TESSERA_ASSIGN_OR_RETURN(impl->proxy, (wire::Stream<proto::IngestMessage>::Connect(
                                            impl->PickEndpoint(), routing_id, {}, "scanner")));
  using Levels = ScannerOptions::Levels;
  impl->scanner_levels = options.levels == Levels::kScanner ||
                         (options.levels == Levels::kAuto && impl->proxy->endpoint() != impl->slide.proxy_local_endpoint);
  impl->log->info("slide={} pushing to {}; zoom levels made by the {}", impl->slide.id, impl->proxy->endpoint(),
                  impl->scanner_levels ? "scanner" : "writer");
  impl->Hello();
  Impl& m = *impl;
  TESSERA_RETURN_IF_ERROR(m.WaitUntil([&m] { return m.proxy_incarnation != 0; }));
  return std::unique_ptr<Scanner>(new Scanner(std::move(impl)));
}

Status Scanner::Push(const FrameKey& key, std::span<const uint8_t> pixels) {
  Impl& m = *impl_;
  const ScanPlan& plan = m.slide.plan;
  TESSERA_RETURN_IF_ERROR(m.error);
  TESSERA_RETURN_IF_ERROR(plan.CheckKey(key));
  if (pixels.size() != plan.frame_bytes()) {
    return Error(StatusCode::kInvalidArgument, "frame of {} bytes; the plan's frames are {}x{} {} = {} bytes",
                 pixels.size(), plan.width, plan.height, DtypeName(plan.dtype), plan.frame_bytes());
  }
  const size_t elem = DtypeSize(plan.dtype);
  codec::BloscParams params = plan.codec;
  params.threads = 1;

  Outstanding f;
  proto::IngestMessage header;
  header.set_version(wire::kProtocolVersion);
  auto* frame = header.mutable_frame();
  frame->set_slide_id(m.slide.id);
  frame->set_t(key.t);
  frame->set_c(key.c);
  frame->set_z(key.z);
  // The frame's chunks: level 0's, then (ScannerOptions::levels) every chunk of levels 1..,
  // made here from the pixels in hand, as the writer would make them from the stored chunks
  // (docs/protocol.md): the writer then decodes nothing.
  const LevelShape level0 = plan.Level(0);
  const bool levels = m.scanner_levels && plan.level_count() > 1 && pyramid::HalvesByChunk(level0);
  std::vector<Impl::Job>& jobs = m.jobs;
  jobs.clear();
  for (uint32_t l = 0; l < (levels ? plan.level_count() : 1); ++l) {
    const LevelShape shape = plan.Level(l);
    for (uint32_t cy = 0; cy < shape.chunks_y(); ++cy) {
      for (uint32_t cx = 0; cx < shape.chunks_x(); ++cx) jobs.push_back({l, cy, cx});
    }
  }
  const auto n_level0 = static_cast<uint32_t>(level0.chunks_per_frame());
  // Level l's image, l >= 1, kept from frame to frame ([l - 1]); level 1 is halved chunk by chunk
  // as level 0's chunks are cut out, the rest from the level below.
  std::vector<std::vector<uint8_t>>& images = m.level_images;
  if (levels) {
    images.resize(plan.level_count() - 1);
    for (uint32_t l = 1; l < plan.level_count(); ++l) images[l - 1].resize(pyramid::LevelBytes(plan.Level(l), plan.dtype));
  }
  std::vector<Result<std::vector<uint8_t>>> packed(jobs.size(), std::vector<uint8_t>{});
  // Job i of [begin, end) goes to thread i % threads, which cuts its chunk out of its level's
  // image and compresses it.
  auto compress = [&](size_t begin, size_t end, uint32_t first, uint32_t step) {
    thread_local std::vector<uint8_t> chunk;
    for (size_t i = begin + first; i < end; i += step) {
      const Impl::Job& j = jobs[i];
      const LevelShape shape = plan.Level(j.level);
      chunk.resize(shape.chunk_pixels() * elem);
      pyramid::ExtractChunk(j.level == 0 ? pixels : std::span<const uint8_t>(images[j.level - 1]), shape, elem, j.cy,
                            j.cx, chunk);
      if (j.level == 0 && levels) pyramid::DownsampleChunk(chunk, level0, plan.dtype, j.cy, j.cx, images[0]);
      packed[i] = codec::Compress(chunk, elem, params);
    }
  };
  auto in_parallel = [&](size_t begin, size_t end) {
    const auto threads = static_cast<uint32_t>(std::min<size_t>(m.compress_threads, end - begin));
    std::vector<std::jthread> helpers;
    for (uint32_t k = 1; k < threads; ++k) helpers.emplace_back(compress, begin, end, k, threads);
    compress(begin, end, 0, std::max(threads, 1u));
  };
  in_parallel(0, n_level0);
  if (levels) {
    for (uint32_t l = 2; l < plan.level_count(); ++l) {
      pyramid::Downsample2x(images[l - 2], plan.Level(l - 1), plan.dtype, images[l - 1]);
    }
    in_parallel(n_level0, jobs.size());
  }
  uint64_t level0_bytes = 0, level_bytes = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!packed[i].ok()) return packed[i].status();
    auto* meta = frame->add_chunks();
    meta->set_level(jobs[i].level);
    meta->set_cy(jobs[i].cy);
    meta->set_cx(jobs[i].cx);
    meta->set_xxh64(codec::Checksum(*packed[i]));
    f.bytes += packed[i]->size();
    (jobs[i].level == 0 ? level0_bytes : level_bytes) += packed[i]->size();
    f.chunks.push_back(std::make_shared<const std::vector<uint8_t>>(std::move(*packed[i])));
  }
  if (f.bytes > m.window) {
    return Error(StatusCode::kResourceExhausted,
                 "a frame of {} compressed bytes exceeds the proxy's FIFO of {} bytes; start the "
                 "stack with a larger --fifo-bytes",
                 f.bytes, m.window);
  }
  const uint64_t index = plan.FrameIndex(key);
  // Credit: wait until the proxy has room for this frame.
  TESSERA_RETURN_IF_ERROR(m.WaitUntil(
      [&m, &f] { return m.progress.outstanding_bytes + f.bytes <= m.window; }));
  f.header = header.SerializeAsString();
  if (auto old = m.outstanding.find(index); old != m.outstanding.end()) {
    m.progress.outstanding_bytes -= old->second.bytes;  // pushed again before it was acked
    m.outstanding.erase(old);
  }
  m.SendFrame(f);
  m.progress.outstanding_bytes += f.bytes;
  m.progress.compressed_bytes += level0_bytes;
  m.progress.level_bytes += level_bytes;
  m.progress.raw_bytes += pixels.size();
  ++m.progress.frames_pushed;
  m.outstanding.emplace(index, std::move(f));
  m.Pump(0);
  return m.error;
}

Status Scanner::Flush(const std::function<void(const Progress&)>& on_progress) {
  Impl& m = *impl_;
  return m.WaitUntil([&m] { return m.outstanding.empty(); }, on_progress);
}

Status Scanner::Close(const std::function<void(const Progress&)>& on_progress) {
  TESSERA_RETURN_IF_ERROR(Flush(on_progress));
  // The manager stops the proxy and the writer, which syncs what is left: allow the timeout.
  Client client(impl_->server, impl_->options.timeout_ms);
  TESSERA_ASSIGN_OR_RETURN(SlideSummary s, client.CloseSlide(impl_->slide.id));
  if (s.frames_written != s.frames_total) {
    impl_->log->warn("slide={} closed with frames_written={} of {}", s.id, s.frames_written,
                     s.frames_total);
  }
  return OkStatus();
}

}  // namespace tessera
