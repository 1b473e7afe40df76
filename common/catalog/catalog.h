// Catalog: the slide manager's record of every slide, in SQLite (WAL mode, synchronous FULL:
// a committed change survives a power cut).
//
// Owned by the manager alone (one writer); survives restarts of the manager, so a
// slide that was acquiring when the manager stopped is found again.
//
//   auto catalog = Catalog::Open("data/catalog.sqlite");
//   SlideRecord r{.name = "liver-3", .state = "acquiring", ...};
//   auto id = (*catalog)->Insert(r);          // "s000001"
//   auto got = (*catalog)->Get(*id);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::catalog {

struct SlideRecord {
  std::string id;
  std::string name;
  std::string state;  ///< acquiring, acquired, failed
  std::string path;   ///< the slide's HDF5 file
  std::string plan_json;
  std::string proxy_endpoint;
  std::string writer_endpoint;
  std::string error;
  int64_t created_unix_ms = 0;
  uint64_t frames_total = 0;
  uint64_t frames_written = 0;
  uint64_t bytes_stored = 0;
};

class Catalog {
 public:
  /// Opens or creates the catalog at `path`. UNAVAILABLE if it cannot be opened.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path);
  ~Catalog();

  /// Inserts a new slide and returns its id (assigned here; `record.id` is ignored).
  Result<std::string> Insert(const SlideRecord& record);
  /// Replaces the record with the same id. NOT_FOUND if there is none.
  Status Update(const SlideRecord& record);
  /// NOT_FOUND naming the id when it is not in the catalog.
  Result<SlideRecord> Get(const std::string& id) const;
  /// Makes sure no later Insert returns an id numbered `through` or lower (e.g. ids whose
  /// files exist on disk, after a catalog lost its last rows).
  Status ReserveIds(uint64_t through);
  /// Every slide, oldest first.
  Result<std::vector<SlideRecord>> List() const;

 private:
  struct Impl;
  explicit Catalog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::catalog
