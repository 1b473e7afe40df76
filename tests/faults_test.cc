// Faults and bad input on the ingest path, each against real processes on loopback.
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "client/client.h"
#include "client/scanner.h"
#include "common/codec/codec.h"
#include "common/pyramid/pyramid.h"
#include "common/storage/slide_file.h"
#include "common/wire/listener.h"
#include "common/wire/wire.h"
#include "server/supervisor/child_process.h"
#include "tests/stack.h"
#include "tests/test_frames.h"

namespace tessera::testing {
namespace {

void ExpectFileHolds(const std::string& path, const ScanPlan& plan, uint64_t frames) {
  auto file = storage::SlideFile::OpenForRead(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->frames_written(), frames);
  for (uint64_t i = 0; i < frames; ++i) {
    auto got = (*file)->ReadFrame(plan.KeyOf(i));
    ASSERT_TRUE(got.ok()) << "frame " << i << ": " << got.status().ToString();
    EXPECT_TRUE(*got == NoiseFrame(plan, i)) << "frame " << i << " differs";
  }
}

proto::Stats ProxyStats(const std::string& endpoint) {
  proto::IngestMessage req;
  req.set_version(wire::kProtocolVersion);
  req.mutable_stats_request();
  auto reply = wire::Call(endpoint, req, 5000);
  proto::IngestMessage m;
  if (reply.ok()) {
    EXPECT_TRUE(wire::ParseHeader(*reply, &m).ok());
  }
  return m.stats();
}

// A role's parent holds its listening socket (wire/listener.h): while the role is dead no
// other program can take its port (a port chosen, freed and bound later once went to another
// process's connection), and a request sent meanwhile waits in the socket's backlog for the
// restarted role, which serves on the same socket.
TEST(FaultsTest, AKilledRolesPortStaysItsOwnAndItsRestartAnswersWhatWaited) {
  auto socket = wire::Listener::Open("127.0.0.1");
  ASSERT_TRUE(socket.ok()) << socket.status().ToString();
  const std::vector<std::string> args{"serve", "manager", "--data", FreshDir("listener"), "--bind",
                                      socket->endpoint(), "--die-with-parent"};
  auto first = supervisor::Spawn(TesseraBin(), args, 20000, {&*socket});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE((first->endpoint + " ").starts_with("manager=" + socket->endpoint() + " ")) << first->endpoint;
  Client client(socket->endpoint());
  ASSERT_TRUE(client.List().ok());
  ASSERT_EQ(::kill(first->pid, SIGKILL), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(first->pid, &st, 0), first->pid);

  auto thief = wire::Listener::Open("127.0.0.1", socket->port());
  EXPECT_EQ(thief.status().code(), StatusCode::kUnavailable) << "the dead role's port was free for anyone";
  Result<std::vector<SlideSummary>> waited = Error(StatusCode::kInternal, "not asked");
  std::thread asks([&] { waited = Client(socket->endpoint(), 20000).List(); });
  auto again = supervisor::Spawn(TesseraBin(), args, 20000, {&*socket});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  asks.join();
  EXPECT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(supervisor::Stop(again->pid, 10000) & 0x7f, 0) << "the restarted manager did not end on SIGTERM";
}

TEST(FaultsTest, KilledWriterThenKilledProxyLoseNothingAndDoubleNothing) {
  Stack stack({"--sync-interval-ms", "100"});
  const ScanPlan plan = NoisePlan(30, 256, 128);
  auto scanner = Scanner::Open(stack.manager(), plan);
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  Scanner& sc = **scanner;
  Client client(stack.manager());
  auto push = [&](uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; ++i) ASSERT_TRUE(sc.Push(plan.KeyOf(i), NoiseFrame(plan, i)).ok());
  };

  push(0, 10);
  auto before = client.Info(sc.slide_id());
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(::kill(before->writer_pid, SIGKILL), 0);
  push(10, 20);
  ASSERT_TRUE(WaitFor([&] {
    auto i = client.Info(sc.slide_id());
    return i.ok() && i->writer_pid > 0 && i->writer_pid != before->writer_pid;
  })) << "the manager did not restart the writer";
  ASSERT_EQ(::kill(before->proxy_pid, SIGKILL), 0);
  push(20, 30);
  ASSERT_TRUE(sc.Close().ok());

  auto after = client.Info(sc.slide_id());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state, "acquired");
  EXPECT_EQ(after->frames_written, 30u);
  EXPECT_EQ(sc.progress().frames_durable, 30u);
  EXPECT_GT(sc.progress().frames_resent, 0u) << "the proxy's restart made the scanner resend";
  // Resent and re-forwarded frames were stored once: the file holds exactly the compressed
  // bytes the scanner pushed, one copy of each chunk.
  EXPECT_EQ(after->bytes_stored, sc.progress().compressed_bytes);
  ExpectFileHolds(after->path, plan, 30);
}

// The manager never waits for a child: a writer that takes its time to close (stopped here
// with SIGSTOP, as a writer finishing the zoom levels of a large slide on a slow disk does)
// holds only its own close, while every other request, another slide's open included, is
// answered at once.
TEST(FaultsTest, TheManagerAnswersWhileAWriterTakesItsTimeToClose) {
  Stack stack;
  const ScanPlan plan = NoisePlan(2, 128, 128);
  Client client(stack.manager());
  auto slide = client.OpenSlide(plan);
  ASSERT_TRUE(slide.ok()) << slide.status().ToString();
  ASSERT_GT(slide->writer_pid, 0);
  ASSERT_EQ(::kill(slide->writer_pid, SIGSTOP), 0);

  std::atomic<bool> closed{false};
  Result<SlideSummary> close_result = Error(StatusCode::kInternal, "not closed");
  std::thread closer([&] {
    Client slow(stack.manager(), 120000);
    close_result = slow.CloseSlide(slide->id);
    closed = true;
  });
  // The proxy ends at once; the writer cannot until it runs again.
  ASSERT_TRUE(WaitFor([&] { return stack.RolePids("proxy", slide->id).empty(); })) << "the proxy was not stopped";
  Client quick(stack.manager(), 2000);
  for (int i = 0; i < 5; ++i) {
    auto list = quick.List();
    ASSERT_TRUE(list.ok()) << "the manager did not answer while a writer was closing: " << list.status().ToString();
    auto other = quick.OpenSlide(plan);
    ASSERT_TRUE(other.ok()) << "another slide could not open while a writer was closing: " << other.status().ToString();
    EXPECT_GT(other->writer_pid, 0);
  }
  EXPECT_FALSE(closed.load()) << "the close was answered before its writer ended";
  auto during = quick.Info(slide->id);
  ASSERT_TRUE(during.ok());
  EXPECT_EQ(during->state, "acquiring");

  ASSERT_EQ(::kill(slide->writer_pid, SIGCONT), 0);
  closer.join();
  ASSERT_TRUE(close_result.ok()) << close_result.status().ToString();
  EXPECT_EQ(close_result->state, "acquired");
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plan_ = NoisePlan(4, 128, 128);  // one chunk per frame: the chunk is the frame
    auto slide = Client(stack_.manager()).OpenSlide(plan_);
    ASSERT_TRUE(slide.ok()) << slide.status().ToString();
    slide_ = *slide;
    EXPECT_TRUE(wire::Connect(socket_, slide_.proxy_endpoint).ok());
  }

  // A frame message: header + chunk payloads, each piece overridable.
  struct FrameSpec {
    std::string slide_id;
    uint32_t t = 0;
    std::vector<uint8_t> chunk;
    bool corrupt_checksum = false;
    int payload_frames = 1;
    uint32_t version = wire::kProtocolVersion;
  };

  FrameSpec Valid(uint32_t t) {
    FrameSpec f;
    f.slide_id = slide_.id;
    f.t = t;
    f.chunk = *codec::Compress(NoiseFrame(plan_, t), 2, plan_.codec);
    return f;
  }

  void Send(const FrameSpec& f) {
    proto::IngestMessage m;
    m.set_version(f.version);
    auto* fr = m.mutable_frame();
    fr->set_slide_id(f.slide_id);
    fr->set_t(f.t);
    auto* meta = fr->add_chunks();
    meta->set_xxh64(codec::Checksum(f.chunk) ^ (f.corrupt_checksum ? 1 : 0));
    std::vector<zmq::message_t> payload;
    for (int i = 0; i < f.payload_frames; ++i) payload.emplace_back(f.chunk.data(), f.chunk.size());
    ASSERT_TRUE(wire::Send(socket_, nullptr, m, std::move(payload)));
  }

  // A frame of chunks given as (level, bytes), each at chunk (0, 0) of its level (one chunk
  // per frame at every level of this plan).
  void SendChunks(uint32_t t, const std::vector<std::pair<uint32_t, std::vector<uint8_t>>>& chunks) {
    proto::IngestMessage m;
    m.set_version(wire::kProtocolVersion);
    auto* fr = m.mutable_frame();
    fr->set_slide_id(slide_.id);
    fr->set_t(t);
    std::vector<zmq::message_t> payload;
    for (const auto& [level, bytes] : chunks) {
      auto* meta = fr->add_chunks();
      meta->set_level(level);
      meta->set_xxh64(codec::Checksum(bytes));
      payload.emplace_back(bytes.data(), bytes.size());
    }
    ASSERT_TRUE(wire::Send(socket_, nullptr, m, std::move(payload)));
  }

  void SendRaw(const std::string& bytes) {
    socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
  }

  // The next reply, which must be a Fault; returns its status.
  Status NextFault() {
    auto in = wire::Receive(socket_, 10000);
    if (!in) return Error(StatusCode::kDeadlineExceeded, "no reply from the proxy");
    proto::IngestMessage m;
    EXPECT_TRUE(wire::ParseHeader(*in, &m).ok());
    EXPECT_TRUE(m.has_fault()) << m.DebugString();
    return wire::FromProto(m.fault().status());
  }

  Stack stack_;
  ScanPlan plan_;
  SlideSummary slide_;
  zmq::socket_t socket_ = wire::MakeSocket(zmq::socket_type::dealer);
};

TEST_F(BadInputTest, EachBadMessageGetsItsSpecificErrorAndTheProxyKeepsServing) {
  SendRaw("\x08\x01\xff\xff garbage");
  Status s = NextFault();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("malformed"), std::string::npos);

  SendRaw("");
  EXPECT_EQ(NextFault().code(), StatusCode::kInvalidArgument);

  auto f = Valid(0);
  f.version = 99;
  Send(f);
  EXPECT_EQ(NextFault().code(), StatusCode::kVersionMismatch);

  f = Valid(0);
  f.corrupt_checksum = true;
  Send(f);
  s = NextFault();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.ToString();

  f = Valid(0);
  std::vector<uint8_t> half(plan_.chunk_bytes() / 2, 7);
  f.chunk = *codec::Compress(half, 2, plan_.codec);  // a valid Blosc buffer of the wrong size
  Send(f);
  s = NextFault();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("plan's chunks are"), std::string::npos) << s.ToString();

  f = Valid(0);
  f.chunk.assign(100, 0x55);  // not Blosc at all, with a matching checksum
  Send(f);
  s = NextFault();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("Blosc"), std::string::npos) << s.ToString();

  f = Valid(0);
  f.t = 4;  // the plan has tiles 0..3
  Send(f);
  EXPECT_EQ(NextFault().code(), StatusCode::kOutOfRange);

  f = Valid(0);
  f.slide_id = "s424242";
  Send(f);
  EXPECT_EQ(NextFault().code(), StatusCode::kNotFound);

  f = Valid(0);
  f.payload_frames = 0;  // truncated: the header announces a chunk that never came
  Send(f);
  EXPECT_EQ(NextFault().code(), StatusCode::kInvalidArgument);

  // The proxy still takes good frames and makes them durable.
  Send(Valid(1));
  auto in = wire::Receive(socket_, 10000);
  ASSERT_TRUE(in.has_value());
  proto::IngestMessage ack;
  ASSERT_TRUE(wire::ParseHeader(*in, &ack).ok());
  ASSERT_TRUE(ack.has_ack()) << ack.DebugString();
  EXPECT_EQ(ack.ack().durable(0), 1u);
  auto stats = ProxyStats(slide_.proxy_endpoint);
  EXPECT_EQ(stats.frames_rejected(), 9u);
  EXPECT_EQ(stats.frames_durable(), 1u);

  // Another slide is untouched by all of this.
  const ScanPlan other = NoisePlan(3, 64, 64);
  auto sc = Scanner::Open(stack_.manager(), other);
  ASSERT_TRUE(sc.ok());
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE((*sc)->Push(other.KeyOf(i), NoiseFrame(other, i)).ok());
  ASSERT_TRUE((*sc)->Close().ok());
  auto info = Client(stack_.manager()).Info((*sc)->slide_id());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->frames_written, 3u);
}

// A frame carries every chunk of its zoom levels (as the client library's scanner sends them)
// or none (the writer makes them); anything between is refused by name, and both kinds store
// the same levels.
TEST_F(BadInputTest, FramesCarryEveryZoomLevelOrNoneAndBothStoreTheSameLevels) {
  ASSERT_EQ(plan_.level_count(), 3u);  // 128, 64 and 32 pixels, one chunk each
  std::vector<std::vector<uint8_t>> images{NoiseFrame(plan_, 0)};
  for (uint32_t l = 1; l < 3; ++l) {
    images.emplace_back(pyramid::LevelBytes(plan_.Level(l), plan_.dtype));
    pyramid::Downsample2x(images[l - 1], plan_.Level(l - 1), plan_.dtype, images[l]);
  }
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> all;
  for (uint32_t l = 0; l < 3; ++l) all.emplace_back(l, *codec::Compress(images[l], 2, plan_.codec));

  auto refused = [&](const std::vector<std::pair<uint32_t, std::vector<uint8_t>>>& chunks, StatusCode code,
                     const std::string& says) {
    SendChunks(0, chunks);
    const Status s = NextFault();
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_NE(s.message().find(says), std::string::npos) << s.ToString();
  };
  refused({all[0], all[1]}, StatusCode::kInvalidArgument, "with its zoom levels");   // level 2 missing
  refused({all[1]}, StatusCode::kInvalidArgument, "every chunk of its zoom levels or none");
  refused({all[0], all[1], {3, all[2].second}}, StatusCode::kOutOfRange, "levels 0..2");
  refused({all[0], all[1], all[1]}, StatusCode::kInvalidArgument, "appears twice");
  refused({all[0], {1, all[0].second}, all[2]}, StatusCode::kDataLoss, "at that level");  // level 0's size

  SendChunks(0, all);          // with its levels
  SendChunks(1, {all[0]});   // the same pixels as tile 1, level 0 only: the writer makes the levels
  std::set<uint64_t> durable;
  while (durable.size() < 2) {
    auto in = wire::Receive(socket_, 10000);
    ASSERT_TRUE(in.has_value()) << "frames not acknowledged";
    proto::IngestMessage ack;
    ASSERT_TRUE(wire::ParseHeader(*in, &ack).ok());
    ASSERT_TRUE(ack.has_ack()) << ack.DebugString();
    durable.insert(ack.ack().durable().begin(), ack.ack().durable().end());
  }
  auto closed = Client(stack_.manager()).CloseSlide(slide_.id);
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  Client client(stack_.manager());
  for (uint32_t tile : {0u, 1u}) {
    for (uint32_t l = 0; l < 3; ++l) {
      auto got = client.ReadTile({.slide = slide_.id, .tile = tile, .level = l});
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->data, images[l]) << "tile " << tile << " level " << l;
    }
  }
}

TEST_F(BadInputTest, DuplicateFramesAreStoredOnceAndAcknowledgedEachTime) {
  auto next_ack = [&] {
    auto in = wire::Receive(socket_, 10000);
    proto::IngestMessage m;
    if (in) {
      EXPECT_TRUE(wire::ParseHeader(*in, &m).ok());
    }
    return m;
  };
  // While the writer is stalled the frame is held: a second copy is recognised, held once.
  ASSERT_EQ(::kill(slide_.writer_pid, SIGSTOP), 0);
  Send(Valid(2));
  Send(Valid(2));
  ASSERT_TRUE(WaitFor([&] { return ProxyStats(slide_.proxy_endpoint).frames_received() == 2; }));
  auto held = ProxyStats(slide_.proxy_endpoint);
  EXPECT_EQ(held.duplicates(), 1u);
  EXPECT_EQ(held.held_frames(), 1u);
  EXPECT_EQ(held.held_bytes(), Valid(2).chunk.size());
  ASSERT_EQ(::kill(slide_.writer_pid, SIGCONT), 0);
  auto first = next_ack();
  ASSERT_TRUE(first.has_ack()) << first.DebugString();
  EXPECT_EQ(first.ack().durable(0), 2u);
  // Once durable, a resend (a scanner that missed the ack) is acknowledged again.
  Send(Valid(2));
  auto again = next_ack();
  ASSERT_TRUE(again.has_ack()) << again.DebugString();
  EXPECT_EQ(again.ack().durable(0), 2u);
  EXPECT_EQ(again.ack().frames_durable(), 1u);
  auto closed = Client(stack_.manager()).CloseSlide(slide_.id);
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  EXPECT_EQ(closed->frames_written, 1u);
  EXPECT_EQ(closed->bytes_stored, Valid(2).chunk.size());  // one copy in the file, not three
}

TEST_F(BadInputTest, ManagerAnswersBadRequestsWithErrors) {
  zmq::socket_t s = wire::MakeSocket(zmq::socket_type::dealer);
  ASSERT_TRUE(wire::Connect(s, stack_.manager()).ok());
  s.send(zmq::str_buffer("not a request"), zmq::send_flags::none);
  auto in = wire::Receive(s, 10000);
  ASSERT_TRUE(in.has_value());
  proto::ManagerReply reply;
  ASSERT_TRUE(wire::ParseHeader(*in, &reply).ok());
  EXPECT_EQ(reply.status().code(), proto::INVALID_ARGUMENT);

  ScanPlan bad = plan_;
  bad.tiles.clear();
  auto opened = Client(stack_.manager()).OpenSlide(bad);
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("no tiles"), std::string::npos);

  EXPECT_EQ(Client(stack_.manager()).CloseSlide("s777777").status().code(), StatusCode::kNotFound);
  // Positions that would reach a float-to-int cast in every reader of the slide.
  for (double bad : {std::nan(""), 1e300, -HUGE_VAL}) {
    std::vector<std::array<double, 2>> positions(plan_.tiles.size(), {0.0, 0.0});
    positions[1][0] = bad;
    auto stored = Client(stack_.manager()).StoreStitch(slide_.id, positions, "{}");
    EXPECT_EQ(stored.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  // And the manager is still there.
  EXPECT_TRUE(Client(stack_.manager()).Info(slide_.id).ok());
}

TEST(FaultsTest, SlowWriterKeepsProxyWithinItsBoundAndDropsNothing) {
  constexpr uint64_t kFifo = 3'000'000;
  Stack stack({"--fifo-bytes", std::to_string(kFifo)});
  const ScanPlan plan = NoisePlan(40, 512, 256);  // ~0.5 MB per frame, barely compressible
  auto scanner = Scanner::Open(stack.manager(), plan);
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  Scanner& sc = **scanner;
  auto info = Client(stack.manager()).Info(sc.slide_id());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(::kill(info->writer_pid, SIGSTOP), 0);  // the writer stalls, as a slow disk would

  std::atomic<uint64_t> pushed{0};
  Status result;
  std::thread producer([&] {
    for (uint64_t i = 0; i < 40 && result.ok(); ++i) {
      result = sc.Push(plan.KeyOf(i), NoiseFrame(plan, i));
      pushed = i + 1;
    }
    if (result.ok()) result = sc.Flush();
  });
  // The proxy fills to its bound, and the scanner is held back by credit.
  ASSERT_TRUE(WaitFor([&] {
    return ProxyStats(info->proxy_endpoint).held_bytes() + plan.frame_bytes() > kFifo;
  }));
  const auto stalled = ProxyStats(info->proxy_endpoint);
  EXPECT_LE(stalled.held_bytes(), kFifo);
  EXPECT_LT(pushed.load(), 40u);
  ::kill(info->writer_pid, SIGCONT);
  producer.join();
  ASSERT_TRUE(result.ok()) << result.ToString();
  const auto done = ProxyStats(info->proxy_endpoint);
  EXPECT_LE(done.peak_held_bytes(), kFifo);
  EXPECT_EQ(done.frames_durable(), 40u);
  ASSERT_TRUE(sc.Close().ok());
  ExpectFileHolds(info->path, plan, 40);
}

TEST(FaultsTest, FullDiskIsReportedToTheScannerAndKeepsWhatWasAcknowledged) {
  const std::string data = FreshDir("diskfull");
  const std::string slides = data + "/slides";
  std::filesystem::create_directories(slides);
  if (::mount("tmpfs", slides.c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "needs root to mount a small tmpfs: " << std::strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{slides};
  Stack stack({"--sync-interval-ms", "50"}, data);
  const ScanPlan plan = NoisePlan(40, 512, 256);  // ~20 MB of noise for a 4 MB disk
  ScannerOptions options;
  options.timeout_ms = 20000;
  auto scanner = Scanner::Open(stack.manager(), plan, options);
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  Status s;
  for (uint64_t i = 0; i < 40 && s.ok(); ++i) s = (*scanner)->Push(plan.KeyOf(i), NoiseFrame(plan, i, 16));
  if (s.ok()) s = (*scanner)->Flush();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("disk is full"), std::string::npos) << s.ToString();

  const uint64_t durable = (*scanner)->progress().frames_durable;
  EXPECT_GT(durable, 0u);
  EXPECT_LT(durable, 40u);
  auto info = Client(stack.manager()).Info((*scanner)->slide_id());
  ASSERT_TRUE(info.ok()) << "the manager stopped serving: " << info.status().ToString();
  EXPECT_NE(info->error.find("disk is full"), std::string::npos) << info->error;
  // Every acknowledged frame is in the file, readable.
  auto file = storage::SlideFile::OpenForRead(info->path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_GE((*file)->frames_written(), durable);
  for (uint64_t i = 0; i < durable; ++i) {
    auto got = (*file)->ReadFrame(plan.KeyOf(i));
    ASSERT_TRUE(got.ok()) << "frame " << i << ": " << got.status().ToString();
    EXPECT_TRUE(*got == NoiseFrame(plan, i, 16)) << "frame " << i;
  }
}

}  // namespace
}  // namespace tessera::testing
