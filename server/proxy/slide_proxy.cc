#include "server/proxy/slide_proxy.h"

#include "common/metrics/metrics.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <set>

#include "common/log/log.h"
#include "common/plan/scan_plan.h"
#include "common/wire/rpc.h"
#include "server/ingest/frame_check.h"

namespace tessera::proxy {
namespace {

constexpr int64_t kWriterSilenceMs = 1000;  // probe the writer after this much silence
constexpr int64_t kProbeIntervalMs = 250;

struct HeldFrame {
  zmq::message_t header;  // the Frame header as received
  std::vector<zmq::message_t> chunks;
  uint64_t bytes = 0;
  std::string scanner;  // routing id of the scanner that sent it last
  int64_t received_us = 0;  // when it was first taken: its acknowledgement's latency runs from here
};

}  // namespace

struct SlideProxy::Impl {
  ProxyOptions options;
  ScanPlan plan;
  wire::Limits limits;
  std::optional<wire::Server<proto::IngestMessage, proto::IngestMessage>> front;  // scanners
  std::optional<wire::Stream<proto::IngestMessage>> back;  // to the writer
  std::string endpoint, local_endpoint;
  uint64_t incarnation = wire::RandomId();
  std::shared_ptr<spdlog::logger> log = log::Get("proxy");

  std::map<uint64_t, HeldFrame> held;
  uint64_t held_bytes = 0, peak_held_bytes = 0;
  uint64_t frames_received = 0, duplicates = 0, rejected = 0, frames_durable = 0;
  metrics::LatencyHistogram ack_latency;  // from a frame's arrival to its acknowledgement
  std::set<std::string> scanners;

  uint64_t writer_incarnation = 0;
  int64_t writer_heard_ms = 0, writer_probed_ms = 0;
  Status writer_status;  // a fatal fault from the writer, forwarded to every scanner

  proto::IngestMessage Envelope() const {
    proto::IngestMessage m;
    m.set_version(wire::kProtocolVersion);
    return m;
  }

  void ToScanner(const std::string& id, const proto::IngestMessage& m) {
    zmq::message_t identity(id.data(), id.size());
    wire::Send(front->socket(), &identity, m);
  }

  void SendToWriter(HeldFrame& f) {
    std::vector<zmq::message_t> payload;
    payload.reserve(f.chunks.size());
    for (auto& c : f.chunks) {
      payload.emplace_back();
      payload.back().copy(c);  // shares the buffer, no copy of the bytes
    }
    zmq::message_t header;
    header.copy(f.header);
    // The scanner's header as it was checked, forwarded as is.
    zmq::socket_t& writer = back->socket();
    writer.send(header, zmq::send_flags::sndmore);
    for (size_t i = 0; i < payload.size(); ++i) {
      writer.send(payload[i], i + 1 < payload.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

  void Welcome(const std::string& scanner) {
    auto m = Envelope();
    m.mutable_welcome()->set_incarnation(incarnation);
    m.mutable_welcome()->set_window_bytes(options.fifo_bytes);
    ToScanner(scanner, m);
    if (!writer_status.ok()) ToScanner(scanner, ingest::MakeFault(writer_status, true, nullptr));
  }

  void FrontFault(const std::string& scanner, const Status& s, const uint64_t* frame) {
    ++rejected;
    log->warn("slide={} status={} refused: {}", options.slide_id, StatusCodeName(s.code()),
              s.message());
    ToScanner(scanner, ingest::MakeFault(s, false, frame));
  }

  void HandleFrame(wire::Message& in, const proto::Frame& frame, const std::string& scanner) {
    const uint64_t index = plan.FrameIndex({frame.t(), frame.c(), frame.z()});
    if (!writer_status.ok()) {
      return ToScanner(scanner, ingest::MakeFault(writer_status, true, &index));
    }
    // Every byte is read once more by the writer, which verifies the checksums where it
    // stores them: here they would cost a tenth of the proxy's CPU for the same refusal.
    if (Status s = ingest::CheckFrame(plan, options.slide_id, frame, in.payload, ingest::Checksums::kSkip); !s.ok()) {
      const bool in_plan = s.code() != StatusCode::kOutOfRange && s.code() != StatusCode::kNotFound;
      return FrontFault(scanner, s, in_plan ? &index : nullptr);
    }
    ++frames_received;
    if (auto it = held.find(index); it != held.end()) {
      ++duplicates;
      it->second.scanner = scanner;  // acknowledge to whoever asks last
      return;
    }
    const uint64_t bytes = ingest::PayloadBytes(in.payload);
    if (held_bytes + bytes > options.fifo_bytes) {
      return FrontFault(scanner,
                        Error(StatusCode::kResourceExhausted,
                              "frame {} ({} bytes) exceeds the scanner's credit: {} of {} bytes "
                              "held; wait for acknowledgements before sending more",
                              index, bytes, held_bytes, options.fifo_bytes),
                        &index);
    }
    HeldFrame f{std::move(in.header), std::move(in.payload), bytes, scanner, wire::NowUs()};
    SendToWriter(f);
    held.emplace(index, std::move(f));
    held_bytes += bytes;
    peak_held_bytes = std::max(peak_held_bytes, held_bytes);
  }

  static Status Authorize(const wire::Message& in, const proto::IngestMessage&) {
    return wire::Authorize(in, {"scanner"}, "push frames");
  }

  void HandleFront(wire::Incoming<proto::IngestMessage>& call) {
    wire::Message& in = call.message;
    const proto::IngestMessage& m = call.request;
    const std::string scanner = in.identity->to_string();
    switch (m.body_case()) {
      case proto::IngestMessage::kHello:
        if (m.hello().slide_id() != options.slide_id) {
          return FrontFault(scanner,
                            Error(StatusCode::kNotFound, "this proxy serves slide {}, not '{}'",
                                  options.slide_id, m.hello().slide_id()),
                            nullptr);
        }
        scanners.insert(scanner);
        return Welcome(scanner);
      case proto::IngestMessage::kFrame:
        scanners.insert(scanner);
        return HandleFrame(in, m.frame(), scanner);
      case proto::IngestMessage::kStatsRequest: {
        auto out = Envelope();
        auto* st = out.mutable_stats();
        st->set_incarnation(incarnation);
        st->set_window_bytes(options.fifo_bytes);
        st->set_held_bytes(held_bytes);
        st->set_held_frames(held.size());
        st->set_frames_received(frames_received);
        st->set_duplicates(duplicates);
        st->set_frames_durable(frames_durable);
        st->set_frames_rejected(rejected + front->refused());
        st->set_peak_held_bytes(peak_held_bytes);
        const metrics::HistogramData acks = ack_latency.Read();
        for (uint64_t n : acks.counts) st->add_ack_latency_counts(n);
        st->set_ack_latency_sum_ms(acks.sum_ms);
        st->set_writer_connected(writer_incarnation != 0 &&
                                 wire::NowMs() - writer_heard_ms < 2 * kWriterSilenceMs);
        wire::ToProto(writer_status, st->mutable_writer_status());
        return ToScanner(scanner, out);
      }
      default:
        return FrontFault(scanner, Error(StatusCode::kUnimplemented,
                                         "the slide proxy does not take this message"),
                          nullptr);
    }
  }

  void HandleBack(const proto::IngestMessage& m) {
    writer_heard_ms = wire::NowMs();
    switch (m.body_case()) {
      case proto::IngestMessage::kWelcome:
        if (m.welcome().incarnation() != writer_incarnation) {
          if (writer_incarnation != 0) {
            log->warn("slide={} writer restarted; resending held_frames={}", options.slide_id,
                      held.size());
          }
          writer_incarnation = m.welcome().incarnation();
          for (auto& [index, f] : held) SendToWriter(f);
        }
        return;
      case proto::IngestMessage::kAck: {
        frames_durable = std::max(frames_durable, m.ack().frames_durable());
        std::map<std::string, proto::IngestMessage> acks;
        for (uint64_t index : m.ack().durable()) {
          auto it = held.find(index);
          if (it == held.end()) continue;
          auto [pos, fresh] = acks.try_emplace(it->second.scanner, Envelope());
          auto* ack = pos->second.mutable_ack();
          ack->set_incarnation(incarnation);
          ack->add_durable(index);
          ack_latency.Observe(static_cast<double>(wire::NowUs() - it->second.received_us) / 1000);
          held_bytes -= it->second.bytes;
          held.erase(it);
        }
        for (auto& [scanner, ack] : acks) {
          ack.mutable_ack()->set_frames_durable(frames_durable);
          ToScanner(scanner, ack);
        }
        return;
      }
      case proto::IngestMessage::kFault: {
        const Status s = wire::FromProto(m.fault().status());
        if (m.fault().fatal()) {
          if (!writer_status.ok()) return;  // already known and forwarded
          writer_status = s;
          log->error("slide={} status={} writer failed: {}", options.slide_id,
                     StatusCodeName(s.code()), s.message());
          for (const auto& scanner : scanners) ToScanner(scanner, ingest::MakeFault(s, true, nullptr));
        } else if (m.fault().has_frame()) {
          // The writer refused a frame the proxy holds (a checksum the bytes do not match):
          // it is dropped and its scanner told why.
          ++rejected;
          log->warn("slide={} frame={} writer refused: {}", options.slide_id,
                    m.fault().frame_index(), s.ToString());
          if (auto it = held.find(m.fault().frame_index()); it != held.end()) {
            ToScanner(it->second.scanner, ingest::MakeFault(s, false, &it->first));
            held_bytes -= it->second.bytes;
            held.erase(it);
          }
        }
        return;
      }
      default:
        return;
    }
  }

  void ProbeWriter() {
    const int64_t now = wire::NowMs();
    if ((writer_incarnation == 0 || now - writer_heard_ms > kWriterSilenceMs) &&
        now - writer_probed_ms > kProbeIntervalMs) {
      auto m = Envelope();
      m.mutable_hello()->set_slide_id(options.slide_id);
      back->Send(std::move(m));
      writer_probed_ms = now;
    }
  }
};

SlideProxy::SlideProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SlideProxy::~SlideProxy() = default;
const std::string& SlideProxy::endpoint() const { return impl_->endpoint; }
const std::string& SlideProxy::local_endpoint() const { return impl_->local_endpoint; }

Result<std::unique_ptr<SlideProxy>> SlideProxy::Open(const ProxyOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  TESSERA_ASSIGN_OR_RETURN(impl->plan, ReadPlanFile(options.plan_file));
  impl->limits = ingest::IngestLimits(impl->plan, options.fifo_bytes);
  // Frames wait here, in the FIFO, not in the writer link's queue; held frames are resent
  // after a writer restart, so nothing queued for a dead writer needs to survive.
  TESSERA_ASSIGN_OR_RETURN(impl->back, wire::Stream<proto::IngestMessage>::Connect(options.writer, "", {}, "proxy"));
  TESSERA_ASSIGN_OR_RETURN(impl->front, (wire::Server<proto::IngestMessage, proto::IngestMessage>::Bind(
                                             options.bind, impl->limits,
                                             {.authorize = &Impl::Authorize, .refuse = &ingest::Refuse, .log = "proxy"})));
  impl->endpoint = impl->front->endpoint();
  if (!options.local.empty()) {
    TESSERA_ASSIGN_OR_RETURN(impl->local_endpoint, impl->front->AlsoBind(options.local));
    // Who may reach the socket is the folder's business; who may push, the credential's.
    std::error_code ec;
    std::filesystem::permissions(options.local.substr(6), static_cast<std::filesystem::perms>(0666), ec);
  }
  return std::unique_ptr<SlideProxy>(new SlideProxy(std::move(impl)));
}

Status SlideProxy::Run(const std::atomic<bool>& stop) {
  Impl& m = *impl_;
  zmq::pollitem_t items[] = {{m.front->socket().handle(), 0, ZMQ_POLLIN, 0},
                             {m.back->socket().handle(), 0, ZMQ_POLLIN, 0}};
  while (!stop.load()) {
    m.ProbeWriter();
    wire::Poll(items, 2, static_cast<int>(kProbeIntervalMs));
    // Durability news first: it frees credit.
    while (auto in = m.back->Next(0)) m.HandleBack(in->header);
    for (int i = 0; i < 64; ++i) {
      auto in = m.front->Next(0);
      if (!in) break;
      m.HandleFront(*in);
    }
  }
  m.log->info("slide={} proxy stops held_frames={} frames_durable={}", m.options.slide_id,
              m.held.size(), m.frames_durable);
  return OkStatus();
}

}  // namespace tessera::proxy
