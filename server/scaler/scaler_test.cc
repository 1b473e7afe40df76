#include "server/scaler/scaler.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace tessera::scaler {
namespace {

TEST(ScalerTest, WorkersFollowTheTasksWithinTheirBounds) {
  ScalerOptions o{.min_workers = 1, .max_workers = 3, .tasks_per_worker = 4};
  EXPECT_EQ(WantedWorkers(0, o), 1u);   // the floor holds while the queues are empty
  EXPECT_EQ(WantedWorkers(1, o), 1u);
  EXPECT_EQ(WantedWorkers(4, o), 1u);
  EXPECT_EQ(WantedWorkers(5, o), 2u);   // one more worker per 4 tasks, rounded up
  EXPECT_EQ(WantedWorkers(9, o), 3u);
  EXPECT_EQ(WantedWorkers(1000000, o), 3u);  // never past the ceiling
  o.tasks_per_worker = 0;                    // taken as 1
  EXPECT_EQ(WantedWorkers(2, o), 2u);
  o.min_workers = 0;
  EXPECT_EQ(WantedWorkers(0, o), 0u);
}

TEST(ScalerTest, OpenSaysWhatIsMissing) {
  const auto dir = std::filesystem::temp_directory_path() / "scaler_test";
  std::filesystem::create_directories(dir);
  const auto script = (dir / "job.sbatch").string();
  const auto cred = (dir / "worker.credential").string();
  std::ofstream(script) << "#!/bin/sh\n";
  std::ofstream(cred) << "{}\n";
  auto no_script = Scaler::Open({.manager = "tcp://127.0.0.1:1", .credential = cred, .script = script + ".x"});
  ASSERT_FALSE(no_script.ok());
  EXPECT_EQ(no_script.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_script.status().message().find("is not a file"), std::string::npos);
  auto no_cred = Scaler::Open({.manager = "tcp://127.0.0.1:1", .credential = cred + ".x", .script = script});
  ASSERT_FALSE(no_cred.ok());
  EXPECT_NE(no_cred.status().message().find("tessera credential new --role worker"), std::string::npos);
  auto bounds = Scaler::Open({.credential = cred, .script = script, .min_workers = 3, .max_workers = 2});
  ASSERT_FALSE(bounds.ok());
  EXPECT_EQ(bounds.status().code(), StatusCode::kInvalidArgument);
  // A scheduler whose tools are not there: UNAVAILABLE, saying which tool.
  auto no_slurm = Scaler::Open({.credential = cred, .script = script, .squeue = "/nonexistent/squeue"});
  ASSERT_FALSE(no_slurm.ok());
  EXPECT_EQ(no_slurm.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(no_slurm.status().message().find("/nonexistent/squeue"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tessera::scaler
