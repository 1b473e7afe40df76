// The worker's services: what one task does (server/worker/worker.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/plan/scan_plan.h"
#include "common/status/status.h"
#include "proto/tessera.pb.h"

namespace tessera::worker::internal {

/// What tasks share within one worker: the client library's connection and the plans of
/// the slides seen (a plan never changes).
class TaskContext {
 public:
  explicit TaskContext(const std::string& manager) : client_(manager) {}
  Client& client() { return client_; }
  Result<const ScanPlan*> Plan(const std::string& slide);

 private:
  Client client_;
  std::map<std::string, ScanPlan> plans_;
};

/// What a task answers: the result's body (its status and ids are the caller's) and the
/// payload frames that go with it (a fused chunk).
struct TaskOutput {
  proto::TaskResult result;
  std::vector<std::vector<uint8_t>> payload;
};

Result<TaskOutput> RunTask(TaskContext& context, const proto::TaskRequest& request);

}  // namespace tessera::worker::internal
