// The stack's /metrics as operators use it: Debian's Prometheus scrapes the gateway of the
// default stack (secured: the scrape carries the stack's token; live stitching on) every second
// while a real mosaic is scanned and stitched, and its query API gives back what happened.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/client.h"
#include "tests/mist.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {



// A TCP port free on loopback now (the OS's choice, released for the server to take).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

RunResult Curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/curl", "-s", "--max-time", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv);
}

class StackMetricsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (prometheus_ > 0) {
      ::kill(prometheus_, SIGTERM);
      int st = 0;
      ::waitpid(prometheus_, &st, 0);
    }
  }

  // The value of a PromQL query's first sample, or -1 when it has none (yet).
  double Query(const std::string& promql) {
    const RunResult r = Curl({"-G", prometheus_url_ + "/api/v1/query", "--data-urlencode", "query=" + promql});
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success" || j["data"]["result"].empty()) return -1;
    return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  }

  pid_t prometheus_ = -1;
  std::string prometheus_url_;
};

TEST_F(StackMetricsTest, PrometheusScrapesTheWholeStackWhileAScanIsStitched) {
  Stack stack({"--auto-stitch", "true", "--http-port", "0"});
  ASSERT_FALSE(stack.manager().empty());
  const std::string http = stack.endpoint("http");
  ASSERT_FALSE(http.empty());

  // Without the token: 401, like every other route. With it: text that promtool accepts.
  EXPECT_EQ(Curl({"-o", "/dev/null", "-w", "%{http_code}", http + "/metrics"}).out, "401");
  const RunResult body = Curl({"-H", "Authorization: Bearer " + stack.token(), http + "/metrics"});
  ASSERT_NE(body.out.find("tessera_manager_up 1"), std::string::npos) << body.out;
  const std::string dir = FreshDir("prometheus");
  {
    std::ofstream(dir + "/metrics.txt") << body.out;
  }
  const RunResult lint = RunProgram({"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + dir + "/metrics.txt"});
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;

  // Prometheus, scraping every second with the stack's token.
  std::ofstream(dir + "/token") << stack.token();
  const std::string target = http.substr(http.find("//") + 2);
  std::ofstream(dir + "/prometheus.yml") << "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                                            "scrape_configs:\n"
                                            "  - job_name: tessera\n"
                                            "    authorization: {credentials_file: " << dir << "/token}\n"
                                            "    static_configs: [{targets: ['" << target << "']}]\n";
  const int port = FreePort();
  prometheus_url_ = "http://127.0.0.1:" + std::to_string(port);
  prometheus_ = StartProgram({"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
                              "--storage.tsdb.path=" + dir + "/data",
                              "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                             dir + "/prometheus.log");
  ASSERT_GT(prometheus_, 0);
  ASSERT_TRUE(WaitFor([&] { return Curl({prometheus_url_ + "/-/ready"}).out.find("Ready") != std::string::npos; },
                      60000))
      << "Prometheus did not start: " << dir << "/prometheus.log";
  ASSERT_TRUE(WaitFor([&] { return Query("up{job=\"tessera\"}") == 1; }, 30000)) << "the scrape fails";

  // A scan at a microscope's pace: the per-slide series appear while it acquires.
  RunResult scan;
  std::thread scanning([&] { scan = RunTessera({"scan", "--tile-config", kMist, "--rate", "5", "--server", stack.manager()}); });
  EXPECT_TRUE(WaitFor([&] { return Query("tessera_slide_frames_written_total") > 0; }, 60000))
      << "the acquiring slide's frames";
  EXPECT_TRUE(WaitFor([&] { return Query("tessera_ack_latency_seconds_count") > 0; }, 60000));
  EXPECT_GT(Query("tessera_fifo_window_bytes"), 0);
  scanning.join();
  ASSERT_EQ(scan.exit_code, 0) << scan.err;

  // After it: every frame counted, the stitch's tasks done on the two workers, the dealer up,
  // the gateway's own requests counted (Prometheus's scrapes among them).
  EXPECT_TRUE(WaitFor([&] { return Query("tessera_frames_written_total") == 25; }, 30000));
  EXPECT_TRUE(WaitFor([&] { return Query("tessera_tasks_done_total{service=\"register\"}") >= 40; }, 120000))
      << "mist's 40 pairs registered";
  EXPECT_EQ(Query("tessera_workers"), 2);
  EXPECT_EQ(Query("tessera_dealer_up"), 1);
  EXPECT_EQ(Query("tessera_broker_up"), 1);
  EXPECT_EQ(Query("tessera_slides{state=\"acquired\"}"), 1);
  EXPECT_GT(Query("tessera_gateway_requests_total{route=\"metrics\",code=\"200\"}"), 1);
  EXPECT_EQ(Query("tessera_slide_frames_written_total"), -1) << "no per-slide series once a slide is acquired";
}

}  // namespace
}  // namespace tessera::testing
