// Workers on a real Slurm cluster: Debian's slurmctld, slurmd and munge, started by the test on
// this machine (tests/scale/slurm_cluster.sh), a stack of `tessera up` with no workers of its
// own, and `tessera serve scaler` asking Slurm for workers (sbatch of
// deploy/slurm/tessera-worker.sbatch) while the live stitch's tasks wait, then letting them go
// (scancel) once the queues drain.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "client/client.h"
#include "tests/mist.h"
#include "tests/stack.h"

namespace tessera::testing {
namespace {


const std::string kCluster = "tests/scale/slurm_cluster.sh";

class SlurmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the Slurm daemons run as root here";
    cluster_ = FreshDir("slurm");
    const RunResult started = RunProgram({"/bin/bash", kCluster, "start", cluster_});
    ASSERT_EQ(started.exit_code, 0) << "the Slurm cluster did not start:\n" << started.err;
    // The one thing a Slurm client needs: `export SLURM_CONF=...`.
    const auto at = started.out.find("SLURM_CONF=");
    ASSERT_NE(at, std::string::npos) << started.out;
    std::string conf = started.out.substr(at + 11, started.out.find('\n', at) - at - 11);
    if (!conf.empty() && (conf.front() == '\'' || conf.front() == '"')) conf = conf.substr(1, conf.size() - 2);
    ::setenv("SLURM_CONF", conf.c_str(), 1);
  }

  void TearDown() override {
    if (!cluster_.empty()) RunProgram({"/bin/bash", kCluster, "stop", cluster_});
  }

  // The job ids squeue lists (every state but ended), or "error" if it does not answer.
  std::string Jobs() {
    const RunResult r = RunProgram({"/usr/bin/squeue", "--noheader", "--format=%i"});
    if (r.exit_code != 0) return "error";
    std::string ids;
    std::istringstream in(r.out);
    for (std::string id; in >> id;) ids += id + " ";
    return ids;
  }

  std::string cluster_;
};

TEST_F(SlurmTest, AStitchRunsEveryTaskOnWorkersSlurmStartedAndTheyAreLetGoWhenTheQueuesDrain) {
  Stack stack({"--workers", "0", "--auto-stitch", "true"});
  ASSERT_FALSE(stack.manager().empty());
  const std::string worker_credential = cluster_ + "/worker.credential";
  const RunResult issued = RunTessera({"credential", "new", "--role", "worker", "--name", "slurm-workers", "-o",
                                       worker_credential, "--server", stack.manager()});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  // Each job's log beside the cluster's state, for a failure's diagnosis.
  Process scaler({"serve", "scaler", "--manager", stack.manager(), "--worker-credential", worker_credential,
                  "--script", "deploy/slurm/tessera-worker.sbatch", "--max-workers", "2", "--tasks-per-worker", "1",
                  "--idle-s", "8", "--submit-arg=--output=" + cluster_ + "/job-%j.log", "--submit-arg=--mem=512M",
                  "--submit-arg=--cpus-per-task=1"},
                 cluster_ + "/scaler.log");
  EXPECT_EQ(Jobs(), "") << "no worker is asked for before there is work";

  const RunResult scan = RunTessera({"scan", "--tile-config", kMist, "--rate", "10", "--server", stack.manager()});
  ASSERT_EQ(scan.exit_code, 0) << scan.err;
  Client client(stack.manager());
  auto all = client.List();
  ASSERT_TRUE(all.ok() && !all->empty());
  const std::string id = all->back().id;

  ExpectMistStitchDone(client, id);

  // Every task the broker handed out went to a worker a Slurm job started (the stack has none).
  const RunResult ps = RunTessera({"ps", "--server", stack.manager()});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  uint64_t by_slurm = 0, by_others = 0, done = 0;
  std::istringstream lines(ps.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string x; words >> x;) w.push_back(x);
    if (w.size() == 5 && w[0] != "WORKER") (w[0].rfind("slurm-", 0) == 0 ? by_slurm : by_others) += std::stoull(w[3]);
    if (w.size() == 8 && w[0] != "SERVICE") done += std::stoull(w[4]);
  }
  EXPECT_GT(by_slurm, 0u) << ps.out;
  EXPECT_EQ(by_others, 0u) << ps.out;
  EXPECT_EQ(by_slurm, done) << "every task done was done by a Slurm job's worker\n" << ps.out;
  EXPECT_GE(done, 40u) << "mist's 40 pairs at least";

  // The queues drained: the scaler cancels its jobs, and Slurm lists none.
  EXPECT_TRUE(WaitFor([&] { return Jobs() == ""; }, 60000)) << "jobs left: " << Jobs();
}

}  // namespace
}  // namespace tessera::testing
