#include "server/writer/slide_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <map>

#include "common/log/log.h"
#include "common/storage/slide_file.h"
#include "common/wire/rpc.h"
#include "server/ingest/frame_check.h"
#include "server/writer/internal/level_builder.h"

namespace tessera::writer {
namespace {
constexpr int64_t kMinSyncGapMs = 20;  // at most 50 syncs a second when frames trickle in
constexpr int64_t kLevelsSyncMs = 250;  // stored levels wait at most this long for a sync
}  // namespace

struct SlideWriter::Impl {
  WriterOptions options;
  std::unique_ptr<storage::SlideFile> file;
  ScanPlan plan;
  wire::Limits limits;
  std::optional<wire::Server<proto::IngestMessage, proto::IngestMessage>> server;
  std::string endpoint;
  uint64_t incarnation = wire::RandomId();
  std::shared_ptr<spdlog::logger> log = log::Get("writer");

  // Frames written (or found already written) since the last sync, by requesting peer.
  std::map<std::string, std::vector<uint64_t>> unacked;
  uint64_t pending_bytes = 0;
  int64_t last_sync_ms = wire::NowMs();
  Status fatal;  // set once the file can take no more (disk full, I/O error)

  std::unique_ptr<internal::LevelBuilder> levels;
  std::deque<uint64_t> backlog;  // frames a killed writer left without levels
  zmq::socket_t events;          // PUB to the dealer, when configured
  std::vector<uint64_t> landed_unsynced, levels_unsynced;  // for the next SlideEvent
  int64_t levels_stored_ms = 0;  // when the oldest of levels_unsynced was stored

  void Reply(const zmq::message_t& identity, const proto::IngestMessage& m) {
    wire::Send(server->socket(), &identity, m);
  }

  void ReplyFault(const zmq::message_t& identity, const Status& s, bool is_fatal,
                  const uint64_t* frame) {
    Reply(identity, ingest::MakeFault(s, is_fatal, frame));
  }

  void HandleFrame(wire::Message& in, const proto::Frame& frame) {
    const uint64_t index = plan.FrameIndex({frame.t(), frame.c(), frame.z()});
    if (!fatal.ok()) return ReplyFault(*in.identity, fatal, true, &index);
    if (Status s = ingest::CheckFrame(plan, options.slide_id, frame, in.payload); !s.ok()) {
      log->warn("slide={} frame={} status={} refused: {}", options.slide_id, index,
                StatusCodeName(s.code()), s.message());
      const bool in_plan = s.code() != StatusCode::kOutOfRange && s.code() != StatusCode::kNotFound;
      return ReplyFault(*in.identity, s, false, in_plan ? &index : nullptr);
    }
    if (!file->IsWritten(index)) {
      for (int i = 0; i < frame.chunks_size(); ++i) {
        const auto& meta = frame.chunks(i);
        Status s = file->WriteChunk({{frame.t(), frame.c(), frame.z()}, meta.level(), meta.cy(), meta.cx()},
                                    wire::Bytes(in.payload[static_cast<size_t>(i)]), meta.xxh64());
        if (!s.ok()) return Fail(*in.identity, s);
      }
      file->MarkWritten(index);
      landed_unsynced.push_back(index);
      pending_bytes += ingest::PayloadBytes(in.payload);
      if (ingest::CarriesLevels(plan, frame)) {  // the scanner made them: stored as they came
        file->MarkLevelsWritten(index);
        if (levels_unsynced.empty()) levels_stored_ms = wire::NowMs();
        levels_unsynced.push_back(index);
        unacked[in.identity->to_string()].push_back(index);
        return;
      }
      std::vector<zmq::message_t> chunks(in.payload.size());
      for (int i = 0; i < frame.chunks_size(); ++i) {  // row-major, whatever order they came in
        const auto& meta = frame.chunks(i);
        chunks[size_t{meta.cy()} * plan.chunks_x() + meta.cx()] = std::move(in.payload[static_cast<size_t>(i)]);
      }
      levels->Submit(index, std::move(chunks));
    }
    // A duplicate is acknowledged with the next sync too: it may be written but not yet synced.
    unacked[in.identity->to_string()].push_back(index);
  }

  void Fail(const zmq::message_t& identity, const Status& s) {
    fatal = s;
    log->error("slide={} status={} writer stops accepting frames: {}", options.slide_id,
               StatusCodeName(s.code()), s.message());
    ReplyFault(identity, s, true, nullptr);
  }

  // Stores the levels the builder has finished, and hands it frames from the backlog
  // (read back from the file) while it has room.
  void CollectLevels() {
    for (auto& done : levels->TakeResults()) {
      if (!done.chunks.ok()) {
        log->error("slide={} frame={} status={} levels not computed: {}", options.slide_id, done.frame,
                   StatusCodeName(done.chunks.status().code()), done.chunks.status().message());
        continue;
      }
      for (const auto& c : *done.chunks) {
        if (Status s = file->WriteChunk(c.key, c.blosc, c.xxh64); !s.ok()) {
          fatal = s;
          log->error("slide={} status={} cannot store levels: {}", options.slide_id,
                     StatusCodeName(s.code()), s.message());
          return;
        }
      }
      file->MarkLevelsWritten(done.frame);
      if (levels_unsynced.empty()) levels_stored_ms = wire::NowMs();
      levels_unsynced.push_back(done.frame);
    }
    while (!backlog.empty() && !levels->Full()) {
      const uint64_t frame = backlog.front();
      const FrameKey key = plan.KeyOf(frame);
      std::vector<zmq::message_t> chunks;
      for (uint32_t cy = 0; cy < plan.chunks_y(); ++cy) {
        for (uint32_t cx = 0; cx < plan.chunks_x(); ++cx) {
          auto bytes = file->ReadChunk({key, 0, cy, cx});
          if (!bytes.ok()) {
            log->error("slide={} frame={} levels not computed: {}", options.slide_id, frame,
                       bytes.status().ToString());
            chunks.clear();
            break;
          }
          chunks.emplace_back(bytes->data(), bytes->size());
        }
        if (chunks.empty()) break;
      }
      if (!chunks.empty()) levels->Submit(frame, std::move(chunks));
      backlog.pop_front();
    }
  }

  bool LevelsBusy() const { return !backlog.empty() || levels->in_flight() > 0; }
  bool LevelsDue() const { return !levels_unsynced.empty() && wire::NowMs() - levels_stored_ms >= kLevelsSyncMs; }

  void Publish(bool closed) {
    if (!events || (landed_unsynced.empty() && levels_unsynced.empty() && !closed)) return;
    proto::SlideEvent e;
    e.set_version(wire::kProtocolVersion);
    e.set_slide_id(options.slide_id);
    for (uint64_t f : landed_unsynced) e.add_landed(f);
    for (uint64_t f : levels_unsynced) e.add_levels(f);
    e.set_frames_durable(file->frames_written());
    e.set_closed(closed);
    e.set_writer_incarnation(incarnation);
    zmq::message_t topic(options.slide_id.data(), options.slide_id.size());
    events.send(topic, zmq::send_flags::sndmore);
    const std::string body = e.SerializeAsString();
    events.send(zmq::buffer(body), zmq::send_flags::dontwait);
    landed_unsynced.clear();
    levels_unsynced.clear();
  }

  void SyncAndAck() {
    if ((unacked.empty() && !file->HasPending()) || !fatal.ok()) return;
    Status s = file->Sync(options.fsync);
    if (!s.ok()) {
      fatal = s;
      log->error("slide={} status={} sync failed: {}", options.slide_id, StatusCodeName(s.code()),
                 s.message());
      for (const auto& [peer, frames] : unacked) {
        ReplyFault(zmq::message_t(peer.data(), peer.size()), s, true, nullptr);
      }
      return;
    }
    for (auto& [peer, frames] : unacked) {
      proto::IngestMessage m;
      m.set_version(wire::kProtocolVersion);
      auto* ack = m.mutable_ack();
      ack->set_incarnation(incarnation);
      ack->set_frames_durable(file->frames_written());
      for (uint64_t f : frames) ack->add_durable(f);
      Reply(zmq::message_t(peer.data(), peer.size()), m);
    }
    log->debug("slide={} synced frames_durable={} bytes={}", options.slide_id,
               file->frames_written(), pending_bytes);
    Publish(/*closed=*/false);
    unacked.clear();
    pending_bytes = 0;
    last_sync_ms = wire::NowMs();
  }

  // Only the slide's proxy writes (over ipc, or as the stack's admin over tcp).
  static Status Authorize(const wire::Message& in, const proto::IngestMessage&) {
    return wire::Authorize(in, {}, "write to a slide's file (only its proxy does)");
  }

  void Handle(wire::Incoming<proto::IngestMessage>& call) {
    wire::Message& in = call.message;
    const proto::IngestMessage& m = call.request;
    switch (m.body_case()) {
      case proto::IngestMessage::kFrame: return HandleFrame(in, m.frame());
      case proto::IngestMessage::kHello: {
        proto::IngestMessage out;
        out.set_version(wire::kProtocolVersion);
        out.mutable_welcome()->set_incarnation(incarnation);
        Reply(*in.identity, out);
        if (!fatal.ok()) ReplyFault(*in.identity, fatal, true, nullptr);
        return;
      }
      case proto::IngestMessage::kStatsRequest: {
        proto::IngestMessage out;
        out.set_version(wire::kProtocolVersion);
        auto* st = out.mutable_stats();
        st->set_incarnation(incarnation);
        st->set_frames_durable(file->frames_written());
        wire::ToProto(fatal, st->mutable_writer_status());
        return Reply(*in.identity, out);
      }
      case proto::IngestMessage::BODY_NOT_SET:
        return ReplyFault(*in.identity,
                          Error(StatusCode::kInvalidArgument, "malformed message: an ingest header with no body"),
                          false, nullptr);
      default:
        return ReplyFault(*in.identity,
                          Error(StatusCode::kUnimplemented, "the slide writer does not take message {}",
                                static_cast<int>(m.body_case())),
                          false, nullptr);
    }
  }
};

SlideWriter::SlideWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SlideWriter::~SlideWriter() = default;
const std::string& SlideWriter::endpoint() const { return impl_->endpoint; }

Result<std::unique_ptr<SlideWriter>> SlideWriter::Open(const WriterOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (std::filesystem::exists(options.file)) {
    TESSERA_ASSIGN_OR_RETURN(impl->file, storage::SlideFile::OpenForWrite(options.file));
    impl->log->info("slide={} reopened file={} frames_written={}", options.slide_id, options.file,
                    impl->file->frames_written());
  } else {
    TESSERA_ASSIGN_OR_RETURN(ScanPlan plan, ReadPlanFile(options.plan_file));
    TESSERA_ASSIGN_OR_RETURN(impl->file,
                             storage::SlideFile::Create(options.file, plan, options.slide_id));
  }
  impl->plan = impl->file->plan();
  if (impl->options.slide_id.empty()) impl->options.slide_id = impl->file->slide_id();
  impl->levels = std::make_unique<internal::LevelBuilder>(impl->plan, options.level_queue_bytes);
  for (uint64_t f = 0; f < impl->plan.frame_count(); ++f) {  // a killed writer left these
    if (impl->file->IsWritten(f) && !impl->file->LevelsWritten(f)) impl->backlog.push_back(f);
  }
  if (!options.events.empty()) {
    impl->events = wire::MakeSocket(zmq::socket_type::pub);
    TESSERA_RETURN_IF_ERROR(wire::ConnectAll(impl->events, options.events));
  }
  impl->limits = ingest::IngestLimits(impl->plan, uint64_t{1} << 30);
  TESSERA_ASSIGN_OR_RETURN(impl->server, (wire::Server<proto::IngestMessage, proto::IngestMessage>::Bind(
                                              options.bind, impl->limits,
                                              {.authorize = &Impl::Authorize, .refuse = &ingest::Refuse, .log = "writer"})));
  impl->endpoint = impl->server->endpoint();
  return std::unique_ptr<SlideWriter>(new SlideWriter(std::move(impl)));
}

Status SlideWriter::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  // After `stop`, the writer finishes the levels of what it stored before it closes.
  while (!stop.load() || (m.LevelsBusy() && m.fatal.ok())) {
    m.CollectLevels();
    const bool have_pending = !m.unacked.empty() || m.file->HasPending();
    const int64_t since = wire::NowMs() - m.last_sync_ms;
    const int64_t due = m.options.sync_interval_ms - since;
    // Idle with frames pending: sync once kMinSyncGapMs have passed since the last sync (a
    // scanner sending frame after frame would otherwise cost a sync, two flushes of the
    // file's metadata, for each). Busy: sync on the cadence, the byte budget, or when stored
    // levels have waited kLevelsSyncMs.
    const int64_t gap = std::max<int64_t>(0, std::min<int64_t>(kMinSyncGapMs, m.options.sync_interval_ms) - since);
    if (m.levels->Full()) {  // the levels pace the intake: no new frame until they catch up
      m.levels->WaitForResults(have_pending ? static_cast<int>(std::max<int64_t>(gap, 1)) : 10);
      if (have_pending && wire::NowMs() - m.last_sync_ms >= kMinSyncGapMs) m.SyncAndAck();
      continue;
    }
    auto in = m.server->Next(have_pending ? static_cast<int>(gap) : m.LevelsBusy() ? 10 : 100);
    if (in) {
      m.Handle(*in);
      if (m.pending_bytes >= m.options.sync_bytes || (have_pending && due <= 0) || m.LevelsDue()) m.SyncAndAck();
    } else if (have_pending) {
      m.SyncAndAck();
    }
  }
  m.CollectLevels();
  m.SyncAndAck();
  Status s = m.file->Close();
  m.Publish(/*closed=*/true);
  m.log->info("slide={} closed frames_written={} status={}", m.options.slide_id,
              m.file->frames_written(), s.ToString());
  return s;
}

}  // namespace tessera::writer
