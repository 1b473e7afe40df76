// The default stack's security end to end: credentials of this stack, of another, revoked or
// missing; what each role may do; the HTTP token; --insecure and --http-public.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "client/client.h"
#include "client/scanner.h"
#include "common/security/security.h"
#include "common/wire/rpc.h"
#include "common/wire/wire.h"
#include "tests/stack.h"
#include "tests/test_frames.h"

namespace tessera::testing {
namespace {

using Clock = std::chrono::steady_clock;

// `tessera ARGS` without the credential the test process holds (TESSERA_CREDENTIAL).
RunResult RunWithout(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/env", "-u", "TESSERA_CREDENTIAL", TesseraBin()});
  return RunProgram(args);
}

// The HTTP status (and headers, with -D) curl saw.
RunResult Curl(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/curl", "-s", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}"});
  return RunProgram(args);
}

std::string Scan(const Stack& stack) {
  auto scan = RunTessera({"scan", "--synthetic", "--cols", "2", "--rows", "1", "--width", "256", "--height", "256",
                          "--server", stack.manager()});
  EXPECT_EQ(scan.exit_code, 0) << scan.err;
  return scan.LastLine();
}

TEST(SecureStackTest, OnlyThisStacksCredentialsGetInAndRefusedOnesAreNamedAtOnce) {
  Stack a;
  Stack b;  // another stack, with keys of its own
  ASSERT_FALSE(a.credential().empty()) << "tessera up names its admin credential on the ready line";
  struct stat st{};
  ASSERT_EQ(::stat(a.credential().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  EXPECT_EQ(RunTessera({"ls", "--server", a.manager(), "--credential", a.credential()}).exit_code, 0);

  const auto start = Clock::now();
  auto foreign = RunTessera({"ls", "--server", a.manager(), "--credential", b.credential()});
  EXPECT_NE(foreign.exit_code, 0);
  EXPECT_NE(foreign.err.find("UNAUTHENTICATED"), std::string::npos) << foreign.err;
  EXPECT_NE(foreign.err.find(b.credential()), std::string::npos) << "the error names the credential: " << foreign.err;

  auto none = RunWithout({"ls", "--server", a.manager()});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("UNAUTHENTICATED"), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("--credential"), std::string::npos) << "the error says what to do: " << none.err;
  // Refused in the handshake, not left to the 10 s request timeout.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(8));

  // A process without keys that reaches a role's port directly gets nothing through.
  zmq::socket_t raw = wire::MakeSocket(zmq::socket_type::dealer);
  raw.connect(a.endpoint("dealer"));
  raw.send(zmq::str_buffer("\x08\x01"), zmq::send_flags::dontwait);
  EXPECT_FALSE(wire::Receive(raw, 500).has_value());
}

TEST(SecureStackTest, EachRoleMayDoItsPartAndIsRefusedTheRest) {
  Stack stack;
  const std::string dir = FreshDir("roles");
  const std::string id = Scan(stack);
  const std::string viewer = dir + "/lab-viewer.credential", scanner = dir + "/scope.credential";
  auto issued = RunTessera({"credential", "new", "--role", "viewer", "-o", viewer});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  ASSERT_EQ(RunTessera({"credential", "new", "--role", "scanner", "-o", scanner}).exit_code, 0);
  struct stat st{};
  ASSERT_EQ(::stat(viewer.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto listed = RunTessera({"credential", "ls"});
  EXPECT_NE(listed.out.find("lab-viewer"), std::string::npos) << listed.out;

  auto denied = [](const RunResult& r) {
    return r.exit_code != 0 && r.err.find("PERMISSION_DENIED") != std::string::npos;
  };
  // Viewers read (the credential names its endpoint: no --server needed) ...
  EXPECT_EQ(RunTessera({"ls", "--credential", viewer}).exit_code, 0);
  EXPECT_EQ(RunTessera({"info", id, "--credential", viewer}).exit_code, 0);
  ASSERT_TRUE(UseCredential(viewer).ok());
  Client open_viewer(stack.manager());  // stays connected to the dealer, as the viewer's keys
  {
    auto tile = open_viewer.ReadTile({.slide = id, .tile = 1});
    EXPECT_TRUE(tile.ok()) << tile.status().ToString();
    // ... and may not serve tasks at the broker as a worker would.
    proto::BrokerMessage ready;
    ready.set_version(wire::kProtocolVersion);
    ready.mutable_ready()->add_services("register");
    auto reply = wire::Call(stack.endpoint("broker"), ready, 5000);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    proto::BrokerMessage answer;
    ASSERT_TRUE(wire::ParseHeader(*reply, &answer).ok());
    EXPECT_EQ(answer.result().status().code(), proto::PERMISSION_DENIED) << answer.DebugString();
    ASSERT_TRUE(UseCredential(stack.credential()).ok());
  }
  auto as_worker = RunTessera({"serve", "worker", "--broker", stack.endpoint("broker"), "--manager", stack.manager(),
                               "--credential", viewer});
  EXPECT_TRUE(denied(as_worker)) << "a worker refused says why and stops: " << as_worker.err;
  auto keyless = RunWithout({"serve", "worker", "--broker", stack.endpoint("broker"), "--manager", stack.manager()});
  EXPECT_NE(keyless.err.find("UNAUTHENTICATED"), std::string::npos) << keyless.err;
  auto close = RunTessera({"close", id, "--credential", viewer});
  EXPECT_TRUE(denied(close)) << close.err;
  EXPECT_NE(close.err.find("lab-viewer"), std::string::npos) << "names who was refused: " << close.err;
  EXPECT_TRUE(denied(RunTessera({"scan", "--synthetic", "--cols", "1", "--rows", "1", "--credential", viewer})));
  EXPECT_TRUE(denied(RunTessera({"stitch", id, "--credential", viewer})));
  EXPECT_TRUE(denied(RunTessera({"credential", "new", "--role", "admin", "-o", dir + "/x.credential",
                                 "--credential", viewer})));
  // Scanners push scans, and do not manage credentials.
  auto pushed = RunTessera({"scan", "--synthetic", "--cols", "2", "--rows", "1", "--width", "256", "--height", "256",
                            "--credential", scanner});
  EXPECT_EQ(pushed.exit_code, 0) << pushed.err;
  EXPECT_TRUE(denied(RunTessera({"credential", "ls", "--credential", scanner})));

  // A revoked credential is refused at the next connection, by name.
  ASSERT_EQ(RunTessera({"credential", "revoke", "lab-viewer"}).exit_code, 0);
  auto revoked = RunTessera({"ls", "--credential", viewer});
  EXPECT_NE(revoked.exit_code, 0);
  EXPECT_NE(revoked.err.find("UNAUTHENTICATED"), std::string::npos) << revoked.err;
  EXPECT_NE(revoked.err.find("lab-viewer"), std::string::npos) << revoked.err;
  EXPECT_EQ(RunTessera({"ls", "--credential", scanner}).exit_code, 0) << "the others are unaffected";
  // ... and so is a connection it made before: its next requests are refused, by name.
  Status last;
  EXPECT_TRUE(WaitFor([&] {
    last = open_viewer.ReadTile({.slide = id, .tile = 1}).status();
    return last.code() == StatusCode::kUnauthenticated;
  }, 5000)) << "a connection made before the revocation still reads: " << last.ToString();
  EXPECT_NE(last.message().find("lab-viewer"), std::string::npos) << last.ToString();
}

// A scanner on the stack's host pushes through its proxy's Unix socket, where no encryption is
// paid for: the socket is open to local users, and the credential is checked there as on TCP.
TEST(SecureStackTest, AScannerOnTheStacksHostPushesThroughTheProxysUnixSocketWithItsCredentialChecked) {
  Stack stack;
  Stack other;
  const std::string dir = FreshDir("door");
  const std::string scanner = dir + "/scope.credential", viewer = dir + "/viewer.credential";
  const std::string as_admin = stack.credential();
  ASSERT_EQ(RunTessera({"credential", "new", "--role", "scanner", "-o", scanner, "--credential", as_admin}).exit_code, 0);
  ASSERT_EQ(RunTessera({"credential", "new", "--role", "viewer", "-o", viewer, "--credential", as_admin}).exit_code, 0);
  const ScanPlan plan = NoisePlan(4, 128, 64);

  ASSERT_TRUE(UseCredential(scanner).ok());
  for (const bool local : {true, false}) {
    ScannerOptions o;
    o.local = local;
    auto sc = Scanner::Open(stack.manager(), plan, o);
    ASSERT_TRUE(sc.ok()) << sc.status().ToString();
    EXPECT_TRUE((*sc)->endpoint().starts_with(local ? "ipc://" : "tcp://")) << (*sc)->endpoint();
    const std::string id = (*sc)->slide_id();
    for (uint64_t i = 0; i < plan.frame_count(); ++i) ASSERT_TRUE((*sc)->Push(plan.KeyOf(i), NoiseFrame(plan, i)).ok());
    ASSERT_TRUE((*sc)->Close().ok());
    auto info = Client(stack.manager()).Info(id);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->frames_written, plan.frame_count());
    auto tile = Client(stack.manager()).ReadTile({.slide = id, .tile = 3});
    ASSERT_TRUE(tile.ok()) << tile.status().ToString();
  }

  // An open slide's door: a socket file every local user may connect to ...
  ASSERT_TRUE(UseCredential(stack.credential()).ok());
  auto open = Client(stack.manager()).OpenSlide(plan);
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  const std::string door = open->proxy_local_endpoint;
  ASSERT_TRUE(door.starts_with("ipc://" + std::filesystem::absolute(stack.data_dir()).string() + "/ingest/")) << door;
  EXPECT_EQ(open->host, wire::HostId());
  struct stat st{};
  ASSERT_EQ(::stat(door.c_str() + 6, &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  // ... where a viewer's credential may not push,
  proto::IngestMessage stats;
  stats.mutable_stats_request();
  // An answer or a refusal comes as an event; the deadline only bounds a loaded machine's wait.
  auto frame_from = [&](const std::string& credential, int deadline_ms = 20000) -> Result<proto::IngestMessage> {
    if (credential.empty()) {
      wire::SetSecurity({});
    } else {
      EXPECT_TRUE(UseCredential(credential).ok());
    }
    auto stream = wire::Stream<proto::IngestMessage>::Connect(door);
    EXPECT_TRUE(stream.ok());
    proto::IngestMessage m;
    auto* f = m.mutable_frame();
    f->set_slide_id(open->id);
    stream->Send(m);
    Result<proto::IngestMessage> out = Error(StatusCode::kDeadlineExceeded, "no answer on {}", door);
    WaitFor([&] {
      if (auto in = stream->Next(100)) {
        out = in->header;
        return true;
      }
      if (Status refused = stream->Refused(); !refused.ok()) {
        out = refused;
        return true;
      }
      return false;
    }, deadline_ms);
    EXPECT_TRUE(UseCredential(stack.credential()).ok());
    return out;
  };
  auto as_viewer = frame_from(viewer);
  ASSERT_TRUE(as_viewer.ok()) << as_viewer.status().ToString();
  ASSERT_TRUE(as_viewer->has_fault()) << as_viewer->DebugString();
  EXPECT_EQ(as_viewer->fault().status().code(), proto::PERMISSION_DENIED) << as_viewer->DebugString();
  EXPECT_NE(as_viewer->fault().status().message().find("viewer"), std::string::npos) << as_viewer->DebugString();
  // ... another stack's key and no key at all get nothing through,
  auto foreign = frame_from(other.credential());
  EXPECT_EQ(foreign.status().code(), StatusCode::kUnauthenticated) << foreign.status().ToString();
  auto keyless = frame_from("", 3000);  // no answer ever comes: its wait is the deadline
  EXPECT_FALSE(keyless.ok());
  // ... and a revoked scanner is refused at its next connection.
  ASSERT_EQ(RunTessera({"credential", "revoke", "scope", "--credential", as_admin}).exit_code, 0);
  auto revoked = frame_from(scanner);
  EXPECT_EQ(revoked.status().code(), StatusCode::kUnauthenticated) << revoked.status().ToString();
  // The stack's own credential still pushes there.
  auto admin = frame_from(stack.credential());
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  ASSERT_TRUE(admin->has_fault()) << admin->DebugString();
  EXPECT_EQ(admin->fault().status().code(), proto::INVALID_ARGUMENT) << "past the door, the frame's own fault: "
                                                                     << admin->DebugString();
}

// The stack's workers and stitchers reach the broker through its Unix socket (no CURVE paid
// on every task's pixels): in DATA/run, which only the service user may open, and a PLAIN door
// that still checks the credential.
TEST(SecureStackTest, TheWorkersReachTheBrokerThroughItsUnixSocketWhichChecksTheirCredential) {
  Stack stack;
  Stack other;
  const std::string run = std::filesystem::absolute(stack.data_dir()).string() + "/run";
  const std::string door = stack.endpoint("broker_local");
  ASSERT_EQ(door, "ipc://" + run + "/broker.ipc");
  struct stat st{};
  ASSERT_EQ(::stat(run.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto workers = stack.RolePids("worker");
  ASSERT_FALSE(workers.empty());
  for (pid_t pid : workers) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(cmdline.find(door), std::string::npos) << "worker " << pid << " does not use the broker's socket";
  }
  proto::BrokerMessage ask;
  ask.mutable_status_request();
  ASSERT_TRUE(UseCredential(stack.credential()).ok());
  auto mine = wire::Ask<proto::BrokerMessage>(door, ask, 20000);
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_TRUE(mine->has_status()) << mine->DebugString();
  ASSERT_TRUE(UseCredential(other.credential()).ok());
  auto foreign = wire::Ask<proto::BrokerMessage>(door, ask, 20000);
  ASSERT_TRUE(UseCredential(stack.credential()).ok());
  EXPECT_EQ(foreign.status().code(), StatusCode::kUnauthenticated) << foreign.status().ToString();
}

TEST(SecureStackTest, HttpAnswersOnlyWithTheTokenAndTheViewerLinkSetsIt) {
  Stack stack;
  const std::string url = stack.endpoint("http"), token = stack.token();
  ASSERT_FALSE(token.empty());
  auto none = Curl({url + "/api/slides"});
  EXPECT_EQ(none.LastLine().substr(none.LastLine().size() - 3), "401") << none.out;
  EXPECT_NE(none.out.find("WWW-Authenticate: Bearer"), std::string::npos) << none.out;
  auto wrong = Curl({"-H", "Authorization: Bearer " + std::string(token.size(), '0'), url + "/api/slides"});
  EXPECT_TRUE(wrong.out.ends_with("401")) << wrong.out;
  auto bearer = Curl({"-H", "Authorization: Bearer " + token, url + "/api/slides"});
  EXPECT_TRUE(bearer.out.ends_with("200")) << bearer.out;
  // The link `tessera up` prints: a cookie for the page, and the same address without the token.
  auto link = Curl({url + "/?token=" + token + "&x=1"});
  EXPECT_TRUE(link.out.ends_with("302")) << link.out;
  EXPECT_NE(link.out.find("Set-Cookie: tessera_token=" + token + "; Path=/; HttpOnly; SameSite=Strict"),
            std::string::npos)
      << link.out;
  EXPECT_NE(link.out.find("Location: /?x=1"), std::string::npos) << link.out;
  auto cookie = Curl({"-H", "Cookie: a=b; tessera_token=" + token, url + "/api/slides"});
  EXPECT_TRUE(cookie.out.ends_with("200")) << cookie.out;
  EXPECT_TRUE(Curl({url + "/?token=bad"}).out.ends_with("401"));
  // The stack refusing the gateway's own credential is the server's fault, not the browser's:
  // 503 naming it, never a 401 that would ask the user for a token.
  ASSERT_EQ(RunTessera({"credential", "revoke", "stack"}).exit_code, 0);
  auto refused = RunProgram({"/usr/bin/curl", "-s", "-w", "%{http_code}", "-H", "Authorization: Bearer " + token,
                             url + "/api/slides"});
  EXPECT_TRUE(refused.out.ends_with("503")) << refused.out;
  EXPECT_NE(refused.out.find("UNAUTHENTICATED"), std::string::npos) << refused.out;

  Stack published({"--http-public"});
  EXPECT_TRUE(Curl({published.endpoint("http") + "/api/slides"}).out.ends_with("200"));
  EXPECT_FALSE(published.credential().empty()) << "the ZeroMQ side stays secured";
}

TEST(SecureStackTest, TheGatewayServesHttpsWithACertificate) {
  const std::string dir = FreshDir("tls");
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  auto made = RunProgram({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                          cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Stack stack({"--tls-cert", cert, "--tls-key", key});
  const std::string url = stack.endpoint("http");
  ASSERT_TRUE(url.starts_with("https://")) << url;
  auto ok = Curl({"--cacert", cert, "-H", "Authorization: Bearer " + stack.token(), url + "/api/slides"});
  EXPECT_TRUE(ok.out.ends_with("200")) << ok.out << ok.err;
  auto link = Curl({"--cacert", cert, url + "/?token=" + stack.token()});
  EXPECT_NE(link.out.find("SameSite=Strict; Secure"), std::string::npos) << "the cookie stays on HTTPS: " << link.out;
  EXPECT_TRUE(Curl({"--cacert", cert, url + "/api/slides"}).out.ends_with("401"));
  auto plain = Curl({"http://" + url.substr(8) + "/api/slides"});
  EXPECT_FALSE(plain.out.ends_with("200")) << "no plain HTTP on the TLS port: " << plain.out;
}

TEST(SecureStackTest, InsecureIsForLoopbackOnly) {
  Stack open({"--insecure"});
  EXPECT_TRUE(open.credential().empty());
  EXPECT_TRUE(open.token().empty());
  EXPECT_EQ(RunWithout({"ls", "--server", open.manager()}).exit_code, 0);
  auto plain = Curl({open.endpoint("http") + "/api/slides"});
  EXPECT_TRUE(plain.out.ends_with("200")) << plain.out << plain.err;

  auto wide = RunTessera({"up", "--insecure", "--host", "0.0.0.0", "--port", "0", "--data", FreshDir("wide")});
  EXPECT_NE(wide.exit_code, 0);
  EXPECT_NE(wide.err.find("refusing to listen"), std::string::npos) << wide.err;
}

}  // namespace
}  // namespace tessera::testing
