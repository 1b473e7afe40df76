// Client: talks to a Tessera stack through its slide manager.
//
// Lists slides, reports a slide's state, file and tiles, and closes slides. Every
// call is one request-reply over ZeroMQ, answered within `timeout_ms` or failed with
// UNAVAILABLE naming the endpoint.
//
//   tessera::Client client("tcp://127.0.0.1:7400");
//   auto slides = client.List();
//   auto info = client.Info("s000001");
//   if (info.ok()) fmt::print("{} is {}\n", info->id, info->state);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/plan/scan_plan.h"
#include "common/status/status.h"

namespace tessera {

/// The default manager endpoint; TESSERA_SERVER overrides it (see DefaultServer()).
inline constexpr const char* kDefaultServer = "tcp://127.0.0.1:7400";
/// TESSERA_SERVER if set, else kDefaultServer.
std::string DefaultServer();

struct SlideSummary {
  std::string id;
  std::string name;
  std::string state;  ///< acquiring, acquired, failed
  std::string path;   ///< the slide's HDF5 file
  uint64_t frames_total = 0;
  uint64_t frames_written = 0;  ///< durable frames
  uint64_t bytes_stored = 0;
  int64_t created_unix_ms = 0;
  std::string proxy_endpoint;  ///< while acquiring
  int proxy_pid = 0, writer_pid = 0;
  std::string error;
  ScanPlan plan;
};

/// `tessera info --json`: id, name, state, path, counts, and `tiles`
/// [{index, name, x, y, z, width, height}] in level-0 pixels.
std::string SummaryToJson(const SlideSummary& s);

class Client {
 public:
  explicit Client(std::string server = DefaultServer(), int timeout_ms = 10000);

  /// Opens a slide for `plan`; the manager starts its proxy and writer.
  Result<SlideSummary> OpenSlide(const ScanPlan& plan);
  /// Stops the slide's proxy and writer once they have stored what they hold.
  Result<SlideSummary> CloseSlide(const std::string& id);
  /// NOT_FOUND for an id the catalog does not have.
  Result<SlideSummary> Info(const std::string& id);
  Result<std::vector<SlideSummary>> List();
  /// Every role of the stack and its endpoint ("manager", ...).
  Result<std::map<std::string, std::string>> Endpoints();

  const std::string& server() const { return server_; }

 private:
  std::string server_;
  int timeout_ms_;
};

}  // namespace tessera
