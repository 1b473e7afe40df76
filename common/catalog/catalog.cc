#include "common/catalog/catalog.h"

#include <sqlite3.h>

#include <fmt/format.h>

namespace tessera::catalog {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS slides (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT UNIQUE,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  path TEXT NOT NULL,
  plan_json TEXT NOT NULL,
  proxy_endpoint TEXT NOT NULL DEFAULT '',
  writer_endpoint TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  created_unix_ms INTEGER NOT NULL,
  frames_total INTEGER NOT NULL DEFAULT 0,
  frames_written INTEGER NOT NULL DEFAULT 0,
  bytes_stored INTEGER NOT NULL DEFAULT 0
);
)sql";

constexpr const char* kColumns =
    "id, name, state, path, plan_json, proxy_endpoint, writer_endpoint, error, created_unix_ms, "
    "frames_total, frames_written, bytes_stored";

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() const { return stmt_; }
  void Text(int i, const std::string& s) { sqlite3_bind_text(stmt_, i, s.c_str(), -1, SQLITE_TRANSIENT); }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

std::string Column(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
}

SlideRecord Read(sqlite3_stmt* s) {
  SlideRecord r;
  r.id = Column(s, 0);
  r.name = Column(s, 1);
  r.state = Column(s, 2);
  r.path = Column(s, 3);
  r.plan_json = Column(s, 4);
  r.proxy_endpoint = Column(s, 5);
  r.writer_endpoint = Column(s, 6);
  r.error = Column(s, 7);
  r.created_unix_ms = sqlite3_column_int64(s, 8);
  r.frames_total = static_cast<uint64_t>(sqlite3_column_int64(s, 9));
  r.frames_written = static_cast<uint64_t>(sqlite3_column_int64(s, 10));
  r.bytes_stored = static_cast<uint64_t>(sqlite3_column_int64(s, 11));
  return r;
}

// Binds the fields after id, from parameter `first` on, in kColumns order.
void BindFields(Statement& st, int first, const SlideRecord& r) {
  st.Text(first, r.name);
  st.Text(first + 1, r.state);
  st.Text(first + 2, r.path);
  st.Text(first + 3, r.plan_json);
  st.Text(first + 4, r.proxy_endpoint);
  st.Text(first + 5, r.writer_endpoint);
  st.Text(first + 6, r.error);
  st.Int(first + 7, r.created_unix_ms);
  st.Int(first + 8, static_cast<int64_t>(r.frames_total));
  st.Int(first + 9, static_cast<int64_t>(r.frames_written));
  st.Int(first + 10, static_cast<int64_t>(r.bytes_stored));
}

}  // namespace

struct Catalog::Impl {
  sqlite3* db = nullptr;
  std::string path;

  Status Fail(const char* what) const {
    return Error(StatusCode::kInternal, "catalog {}: {} failed: {}", path, what, sqlite3_errmsg(db));
  }
};

Catalog::Catalog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catalog::~Catalog() { sqlite3_close(impl_->db); }

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  if (sqlite3_open(path.c_str(), &impl->db) != SQLITE_OK) {
    Status s = Error(StatusCode::kUnavailable, "cannot open catalog {}: {}", path,
                     sqlite3_errmsg(impl->db));
    sqlite3_close(impl->db);
    return s;
  }
  sqlite3_busy_timeout(impl->db, 5000);
  for (const char* sql : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", kSchema}) {
    if (sqlite3_exec(impl->db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      Status s = Error(StatusCode::kUnavailable, "cannot initialise catalog {}: {}", path,
                       sqlite3_errmsg(impl->db));
      sqlite3_close(impl->db);
      return s;
    }
  }
  return std::unique_ptr<Catalog>(new Catalog(std::move(impl)));
}

Result<std::string> Catalog::Insert(const SlideRecord& record) {
  sqlite3* db = impl_->db;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE;", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return impl_->Fail("begin");
  }
  Statement st(db, fmt::format("INSERT INTO slides ({}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?)",
                               kColumns).c_str());
  BindFields(st, 1, record);
  if (sqlite3_step(st.get()) != SQLITE_DONE) {
    sqlite3_exec(db, "ROLLBACK;", nullptr, nullptr, nullptr);
    return impl_->Fail("insert");
  }
  const int64_t seq = sqlite3_last_insert_rowid(db);
  std::string id = fmt::format("s{:06}", seq);
  Statement upd(db, "UPDATE slides SET id=? WHERE seq=?");
  upd.Text(1, id);
  upd.Int(2, seq);
  if (sqlite3_step(upd.get()) != SQLITE_DONE ||
      sqlite3_exec(db, "COMMIT;", nullptr, nullptr, nullptr) != SQLITE_OK) {
    sqlite3_exec(db, "ROLLBACK;", nullptr, nullptr, nullptr);
    return impl_->Fail("insert");
  }
  return id;
}

Status Catalog::Update(const SlideRecord& r) {
  Statement st(impl_->db,
               "UPDATE slides SET name=?, state=?, path=?, plan_json=?, proxy_endpoint=?, "
               "writer_endpoint=?, error=?, created_unix_ms=?, frames_total=?, frames_written=?, "
               "bytes_stored=? WHERE id=?");
  BindFields(st, 1, r);
  st.Text(12, r.id);
  if (sqlite3_step(st.get()) != SQLITE_DONE) return impl_->Fail("update");
  if (sqlite3_changes(impl_->db) == 0) {
    return Error(StatusCode::kNotFound, "slide {} is not in the catalog", r.id);
  }
  return OkStatus();
}

Result<SlideRecord> Catalog::Get(const std::string& id) const {
  Statement st(impl_->db, fmt::format("SELECT {} FROM slides WHERE id=?", kColumns).c_str());
  st.Text(1, id);
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_ROW) return Read(st.get());
  if (rc == SQLITE_DONE) {
    return Error(StatusCode::kNotFound, "slide {} is not in the catalog (see `tessera ls`)", id);
  }
  return impl_->Fail("select");
}

Result<std::vector<SlideRecord>> Catalog::List() const {
  Statement st(impl_->db, fmt::format("SELECT {} FROM slides ORDER BY seq", kColumns).c_str());
  std::vector<SlideRecord> out;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.push_back(Read(st.get()));
  if (rc != SQLITE_DONE) return impl_->Fail("list");
  return out;
}

Status Catalog::ReserveIds(uint64_t through) {
  // AUTOINCREMENT never hands out a seq at or below sqlite_sequence's: raise it past `through`.
  Statement st(impl_->db,
               "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'slides'");
  st.Int(1, static_cast<int64_t>(through));
  if (sqlite3_step(st.get()) != SQLITE_DONE) return impl_->Fail("reserve ids");
  if (sqlite3_changes(impl_->db) == 0) {  // no slide was ever inserted: no row yet
    Statement ins(impl_->db, "INSERT INTO sqlite_sequence (name, seq) VALUES ('slides', ?)");
    ins.Int(1, static_cast<int64_t>(through));
    if (sqlite3_step(ins.get()) != SQLITE_DONE) return impl_->Fail("reserve ids");
  }
  return OkStatus();
}

}  // namespace tessera::catalog
