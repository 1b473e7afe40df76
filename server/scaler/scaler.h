// Scaler: asks a cluster's batch scheduler for stitching workers while the broker's queues hold
// work, and lets them go once the queues drain. It speaks to the scheduler through the
// scheduler's own command-line tools (Slurm's sbatch, squeue and scancel), so Tessera's workers
// run as any other job of the cluster: under its accounts, partitions, limits and accounting.
// Each job runs deploy/slurm/tessera-worker.sbatch (`tessera serve worker` with the credential
// and endpoints the scaler exports to it).
//
//   ScalerOptions o{.manager = "tcp://10.0.0.5:7400", .credential = "worker.credential",
//                   .script = "/opt/tessera/deploy/slurm/tessera-worker.sbatch"};
//   auto s = Scaler::Open(o);   // checks the script and that sbatch answers
//   (*s)->Run(stop);            // until stop; then cancels the jobs it submitted
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::scaler {

struct ScalerOptions {
  std::string manager;     ///< the slide manager: the broker's queues, and told to the workers
  std::string broker;      ///< the broker's endpoint for the workers (default: the manager's "broker")
  std::string credential;  ///< the workers' credential file (role worker), handed to each job
  std::string script;      ///< the batch script each job runs
  std::vector<std::string> submit_args;  ///< more sbatch options: --partition, --account, --time ...
  std::string job_name = "tessera-worker";
  uint32_t min_workers = 0;
  uint32_t max_workers = 4;
  uint32_t tasks_per_worker = 4;  ///< waiting or running tasks that call for one more worker
  int idle_ms = 30000;            ///< the queues empty this long: the jobs are let go
  int poll_ms = 1000;
  std::string sbatch = "sbatch", squeue = "squeue", scancel = "scancel";  ///< found on PATH
};

/// How many workers `tasks` waiting or running tasks call for, within [min, max].
uint32_t WantedWorkers(uint64_t tasks, const ScalerOptions& options);

class Scaler {
 public:
  /// INVALID_ARGUMENT for a missing script or credential, bounds out of order; UNAVAILABLE
  /// when the scheduler's tools do not answer (not on PATH, no controller).
  static Result<std::unique_ptr<Scaler>> Open(const ScalerOptions& options);
  ~Scaler();

  /// Polls the broker and the scheduler every poll_ms: submits jobs while the queues call for
  /// more workers than it has jobs, cancels them (down to min_workers) once the queues have been
  /// empty for idle_ms. A broker or scheduler that does not answer is waited out (logged).
  /// When `stop` becomes true, cancels every job it submitted and returns.
  Status Run(const std::atomic<bool>& stop);

 private:
  struct Impl;
  explicit Scaler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::scaler
