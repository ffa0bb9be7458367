// The SQLite backend: one sqlite3 connection in WAL mode with a cache of prepared statements.
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <unordered_map>

#include "dbos/checkpointer.h"
#include "dbos/connection.h"
#include "dbos/payload_log.h"
#include "sluice/common/knobs.h"

namespace sluice::dbos {
namespace {

const EnumKnob kSynchronous({.name = "dbos.sqlite.synchronous",
                             .default_value = "normal",
                             .values = {"off", "normal", "full"},
                             .stage = KnobStage::kStart,
                             .help = "SQLite PRAGMA synchronous: normal fsyncs the WAL at "
                                     "checkpoints only (a commit survives a process crash, not a "
                                     "power loss); full fsyncs every commit"});
const EnumKnob kJournalMode({.name = "dbos.sqlite.journal_mode",
                             .default_value = "wal",
                             .values = {"wal", "delete"},
                             .stage = KnobStage::kStart,
                             .help = "SQLite journal: wal lets readers run beside the writer"});
const IntKnob kBusyTimeoutMs({.name = "dbos.sqlite.busy_timeout_ms",
                              .default_value = 5000,
                              .min = 0,
                              .max = 600000,
                              .stage = KnobStage::kRuntime,
                              .help = "how long a statement waits for another connection's write "
                                      "lock before the transaction is retried or fails"});
const IntKnob kCacheMb({.name = "dbos.sqlite.cache_mb",
                        .default_value = 64,
                        .min = 1,
                        .max = 65536,
                        .stage = KnobStage::kStart,
                        .help = "SQLite page cache per connection, MiB"});
// Off by default: a connection that finds the database changed by another connection unmaps
// the whole window and maps it again on its next read, and each munmap in a threaded process is a
// TLB shoot-down across its CPUs. The OS-state tables are written by many connections in turn
// (IPC, schedulers, filesystems), so the window cost more than it saved (docs/dbos.md, "SQLite
// without the mmap window").
const IntKnob kMmapMb({.name = "dbos.sqlite.mmap_mb",
                       .default_value = 0,
                       .min = 0,
                       .max = 1 << 20,
                       .stage = KnobStage::kStart,
                       .help = "SQLite memory-mapped I/O window, MiB (0: off, the default: "
                               "connections that write in turn remap it on every transaction)"});
const IntKnob kWalAutocheckpoint({.name = "dbos.sqlite.wal_autocheckpoint",
                                  .default_value = 4000,
                                  .min = 0,
                                  .max = 1 << 24,
                                  .stage = KnobStage::kStart,
                                  .help = "WAL pages before a checkpoint: run by the commit that "
                                          "crosses it (checkpoint inline) or woken on the "
                                          "checkpointer thread (background); 0: never"});
const EnumKnob kCheckpoint({.name = "dbos.sqlite.checkpoint",
                            .default_value = "background",
                            .values = {"inline", "background"},
                            .stage = KnobStage::kStart,
                            .help = "where the WAL is copied back: background, on a thread of "
                                    "each process that also restarts the WAL every 4 x "
                                    "dbos.sqlite.wal_autocheckpoint pages (no commit waits for "
                                    "an fsync); or inline, in the commit that crosses "
                                    "dbos.sqlite.wal_autocheckpoint (SQLite's own way: that "
                                    "commit waits for the copy and an fsync)"});
const IntKnob kWalMaxMb({.name = "dbos.sqlite.wal_max_mb",
                         .default_value = 1024,
                         .min = 1,
                         .max = 1 << 20,
                         .stage = KnobStage::kStart,
                         .help = "checkpoint background: past this WAL size the committing "
                                 "connection restarts the WAL itself (a blocking checkpoint), "
                                 "for when the thread cannot"});

struct CachedStatement {
  sqlite3_stmt* stmt = nullptr;
  // For procedure statements: each parameter's variable name without the ':' (index i → param
  // i+1).
  std::vector<std::string> param_names;
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, const SqlLibrary* library, std::string path,
                   Checkpointer* checkpointer, PayloadLog* payloads)
      : db_(db), library_(library), path_(std::move(path)), checkpointer_(checkpointer) {
    spill_.log = payloads;
  }
  ~SqliteConnection() override {
    for (auto& [_, s] : cache_) {
      sqlite3_finalize(s.stmt);
    }
    for (auto& [_, list] : procedures_) {
      for (auto& s : list) {
        sqlite3_finalize(s.stmt);
      }
    }
    sqlite3_close_v2(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Status configure() {
    // SQLite's own busy handler sleeps 1, 2, 5, 10 … ms between tries: far longer than the
    // transactions here (tens of microseconds). Ours yields, then sleeps 10–500 us.
    sqlite3_busy_handler(db_, &SqliteConnection::on_busy, this);
    std::string pragmas = fmt::format(
        "PRAGMA journal_mode={}; PRAGMA synchronous={}; PRAGMA cache_size=-{}; "
        "PRAGMA mmap_size={}; PRAGMA wal_autocheckpoint={}; PRAGMA temp_store=memory; "
        "PRAGMA foreign_keys=off;",
        kJournalMode.get(), kSynchronous.get(), kCacheMb.get() * 1024, kMmapMb.get() * 1024 * 1024,
        kWalAutocheckpoint.get());
    SLUICE_RETURN_IF_ERROR(execute_script(pragmas));
    if (checkpointer_ != nullptr) {
      sqlite3_wal_hook(db_, &SqliteConnection::on_wal_commit, this);  // replaces autocheckpoint
    }
    if (spill_.log != nullptr) {
      SLUICE_RETURN_IF_ERROR(install_payload_functions(db_, &spill_));
      sync_payloads_ = kSynchronous.get() == "full";
      sqlite3_commit_hook(db_, &SqliteConnection::on_commit, this);
      sqlite3_rollback_hook(db_, &SqliteConnection::on_rollback, this);
    }
    return {};
  }

  Status query(std::string_view sql, std::span<const Value> params, QueryResult* out) override {
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, cached(sql));
    const int n = sqlite3_bind_parameter_count(stmt);
    if (static_cast<size_t>(n) != params.size()) {
      return invalid_argument(fmt::format(
          "the statement has {} parameters but {} values were given", n, params.size()));
    }
    for (int i = 0; i < n; ++i) {
      SLUICE_RETURN_IF_ERROR(bind(stmt, i + 1, params[static_cast<size_t>(i)]));
    }
    Status s = step_all(stmt, out, nullptr);
    reclaim_payloads_if_due();
    return s;
  }

  Status execute_script(std::string_view sql) override {
    std::string text(sql);
    const char* tail = text.c_str();
    while (tail != nullptr && *tail != '\0') {
      sqlite3_stmt* stmt = nullptr;
      const char* next = nullptr;
      int rc = sqlite3_prepare_v2(db_, tail, -1, &stmt, &next);
      if (rc != SQLITE_OK) {
        return error(rc, "cannot prepare");
      }
      tail = next;
      if (stmt == nullptr) {
        continue;  // whitespace or comment
      }
      QueryResult ignored;
      Status s = step_all(stmt, &ignored, nullptr);
      sqlite3_finalize(stmt);
      SLUICE_RETURN_IF_ERROR(s);
    }
    reclaim_payloads_if_due();
    return {};
  }

  Status call(std::string_view procedure, std::span<const Arg> args, QueryResult* out) override {
    SLUICE_ASSIGN_OR_RETURN(std::vector<CachedStatement> * steps, procedure_statements(procedure));
    // Variables: the inputs (by reference: a batch's payload is not copied), and the columns of
    // each statement's first row, which take the place of an input of the same name.
    vars_.clear();
    args_ = args;
    // The result is the rows of the last statement that yields columns (a SELECT, or a write
    // with RETURNING); the first row of each such statement also becomes variables.
    out->columns.clear();
    out->rows.clear();
    for (CachedStatement& cs : *steps) {
      for (size_t p = 0; p < cs.param_names.size(); ++p) {
        // By reference: text and blobs are bound without a copy (SQLITE_STATIC).
        static const Value kNull;
        const Value* v = lookup(cs.param_names[p]);
        SLUICE_RETURN_IF_ERROR(bind(cs.stmt, static_cast<int>(p + 1), v != nullptr ? *v : kNull));
      }
      if (sqlite3_column_count(cs.stmt) == 0) {
        QueryResult ignored;
        SLUICE_RETURN_IF_ERROR(step_all(cs.stmt, &ignored, nullptr));
        out->rows_changed = ignored.rows_changed;
        continue;
      }
      SLUICE_RETURN_IF_ERROR(step_all(cs.stmt, out, nullptr));
      if (!out->rows.empty()) {
        const Row& first = out->rows.front();
        for (size_t c = 0; c < out->columns.size(); ++c) {
          set_var(out->columns[c], first[c]);
        }
      }
    }
    reclaim_payloads_if_due();
    return {};
  }

  Status begin(bool write) override {
    QueryResult r;
    return query(write ? "BEGIN IMMEDIATE" : "BEGIN", {}, &r);
  }
  Status commit() override {
    QueryResult r;
    return query("COMMIT", {}, &r);  // reclaims payload segments after it, when due
  }
  Status rollback() override {
    if (sqlite3_get_autocommit(db_) != 0) {
      return {};
    }
    QueryResult r;
    return query("ROLLBACK", {}, &r);
  }
  bool autocommit_calls_are_atomic() const override { return false; }
  ErrorKind last_error_kind() const override { return last_kind_; }
  Status reconnect() override { return {}; }
  Status listen(std::string_view) override { return {}; }
  Result<bool> wait_notification(int) override {
    return unimplemented("SQLite has no notifications; receivers wait on the wake-up file");
  }

 private:
  // Before each commit: with synchronous = full the payloads the transaction wrote reach the disk
  // before the rows that refer to them. A failed sync turns the commit into a rollback.
  static int on_commit(void* self) {
    auto* c = static_cast<SqliteConnection*>(self);
    int veto = 0;
    if (c->sync_payloads_ && !c->spill_.written.empty()) {
      veto = c->spill_.log->sync(c->spill_.written).is_ok() ? 0 : 1;
    }
    c->spill_.written.clear();
    return veto;
  }
  static void on_rollback(void* self) {
    static_cast<SqliteConnection*>(self)->spill_.written.clear();
  }

  // Once the transaction that closed a segment of the payload log has ended, every writer into
  // that segment and the ones before it has: those no row refers to any more are deleted. Runs
  // outside any transaction, on a fresh snapshot; a failure leaves the files for the next time.
  void reclaim_payloads_if_due() {
    if (spill_.reclaim_limit < 0 || reclaiming_ || sqlite3_get_autocommit(db_) == 0) {
      return;
    }
    reclaiming_ = true;
    QueryResult live;
    if (query(PayloadLog::kLiveSegmentsSql, {}, &live).is_ok() &&
        spill_.log
            ->reclaim(static_cast<uint32_t>(spill_.reclaim_limit), PayloadLog::live_segments(live))
            .is_ok()) {
      spill_.reclaim_limit = -1;
    }
    reclaiming_ = false;
  }

  // After each commit in WAL mode, in place of SQLite's autocheckpoint.
  static int on_wal_commit(void* self, sqlite3* db, const char* /*schema*/, int frames) {
    auto* c = static_cast<SqliteConnection*>(self);
    if (c->checkpointer_->on_commit(frames)) {
      // Past the cap: copy the rest and make the next writer start the WAL over, waiting for
      // the others through the busy handler. While another connection checkpoints (the
      // background thread's pass) SQLite answers busy at once, without the busy handler: the
      // WAL then grew past the cap by whatever the commits during that pass wrote (7.5 MiB
      // over a 2 MiB cap on a loaded machine). So wait for that pass here, as the busy handler
      // waits for readers, up to the busy timeout; busy after that: the next commit tries again.
      const auto start = std::chrono::steady_clock::now();
      const auto limit = std::chrono::milliseconds(kBusyTimeoutMs.get());
      for (int attempt = 0;; ++attempt) {
        const int rc =
            sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
        if (rc != SQLITE_BUSY || std::chrono::steady_clock::now() - start > limit)
          break;
        if (attempt < 16)
          std::this_thread::yield();
        else
          std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    return SQLITE_OK;
  }

  static int on_busy(void* self, int count) {
    auto* c = static_cast<SqliteConnection*>(self);
    const auto now = std::chrono::steady_clock::now();
    if (count == 0) {
      c->busy_since_ = now;
    }
    if (now - c->busy_since_ > std::chrono::milliseconds(kBusyTimeoutMs.get())) {
      return 0;  // give up: SQLITE_BUSY
    }
    if (count < 16) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(std::min(10 * (count - 15), 500)));
    }
    return 1;
  }

  const Value* lookup(std::string_view name) const {
    for (const auto& [n, v] : vars_) {
      if (n == name) {
        return &v;
      }
    }
    for (const Arg& a : args_) {
      if (a.name == name) {
        return &a.value;
      }
    }
    return nullptr;
  }

  Status error(int rc, std::string_view what) {
    const int base = rc & 0xff;
    std::string msg = sqlite3_errmsg(db_);
    if (base == SQLITE_BUSY || base == SQLITE_LOCKED) {
      last_kind_ = ErrorKind::kConflict;
      return unavailable(fmt::format(
          "{} is locked: another connection held its write lock for more than {} ms ({}); "
          "retry later, or raise dbos.sqlite.busy_timeout_ms",
          path_, kBusyTimeoutMs.get(), msg));
    }
    last_kind_ = ErrorKind::kOther;
    if (base == SQLITE_CONSTRAINT) {
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return already_exists(fmt::format("{}: {}", what, msg));
      }
      return failed_precondition(fmt::format("{}: {}", what, msg));
    }
    if (base == SQLITE_ERROR || base == SQLITE_RANGE || base == SQLITE_MISMATCH ||
        base == SQLITE_TOOBIG) {
      return invalid_argument(fmt::format("{}: {}", what, msg));
    }
    if (base == SQLITE_READONLY || base == SQLITE_PERM || base == SQLITE_AUTH) {
      return permission_denied(fmt::format("{} {}: {}", what, path_, msg));
    }
    if (base == SQLITE_FULL) {
      return resource_exhausted(fmt::format("{} {}: {}", what, path_, msg));
    }
    if (base == SQLITE_CORRUPT || base == SQLITE_NOTADB) {
      return data_loss(fmt::format("{} {}: {}", what, path_, msg));
    }
    return io_error(fmt::format("{} {}: {}", what, path_, msg));
  }

  Result<sqlite3_stmt*> cached(std::string_view sql) {
    auto it = cache_.find(std::string(sql));
    if (it != cache_.end()) {
      sqlite3_reset(it->second.stmt);
      return it->second.stmt;
    }
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (rc != SQLITE_OK) {
      return error(rc, "cannot prepare SQL");
    }
    if (stmt == nullptr) {
      return invalid_argument("empty SQL statement");
    }
    while (tail != nullptr && *tail != '\0' && std::strchr(" \t\r\n;", *tail) != nullptr) {
      ++tail;
    }
    if (tail != nullptr && tail < sql.data() + sql.size() && *tail != '\0') {
      sqlite3_finalize(stmt);
      return invalid_argument(
          "several statements in one query: separate them, or run them as a script");
    }
    cache_.emplace(std::string(sql), CachedStatement{stmt, {}});
    return stmt;
  }

  Result<std::vector<CachedStatement>*> procedure_statements(std::string_view name) {
    auto it = procedures_.find(std::string(name));
    if (it != procedures_.end()) {
      return &it->second;
    }
    auto src = library_->procedures().find(name);
    if (src == library_->procedures().end()) {
      return not_found(fmt::format("no SQL procedure '{}' in the sqlite library", name));
    }
    std::vector<CachedStatement> steps;
    const std::string& text = src->second;
    const char* tail = text.c_str();
    while (tail != nullptr && *tail != '\0') {
      sqlite3_stmt* stmt = nullptr;
      const char* next = nullptr;
      int rc = sqlite3_prepare_v3(db_, tail, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &next);
      if (rc != SQLITE_OK) {
        Status s = error(rc, fmt::format("cannot prepare procedure '{}'", name));
        for (auto& c : steps) {
          sqlite3_finalize(c.stmt);
        }
        return s;
      }
      tail = next;
      if (stmt == nullptr) {
        continue;
      }
      CachedStatement cs{stmt, {}};
      const int n = sqlite3_bind_parameter_count(stmt);
      for (int i = 1; i <= n; ++i) {
        const char* pname = sqlite3_bind_parameter_name(stmt, i);
        cs.param_names.emplace_back(pname != nullptr && pname[0] != '\0' ? pname + 1 : "");
      }
      steps.push_back(std::move(cs));
    }
    if (steps.empty()) {
      return internal_error(fmt::format("SQL procedure '{}' has no statements", name));
    }
    return &procedures_.emplace(std::string(name), std::move(steps)).first->second;
  }

  Status bind(sqlite3_stmt* stmt, int i, const Value& v) {
    int rc = SQLITE_OK;
    switch (v.index()) {
      case 0: rc = sqlite3_bind_null(stmt, i); break;
      case 1: rc = sqlite3_bind_int64(stmt, i, std::get<1>(v)); break;
      case 2: rc = sqlite3_bind_double(stmt, i, std::get<2>(v)); break;
      case 3: {
        const std::string& s = std::get<3>(v);
        rc = sqlite3_bind_text64(stmt, i, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
        break;
      }
      case 4: {
        const std::string& b = std::get<4>(v).bytes;
        rc = sqlite3_bind_blob64(stmt, i, b.data(), b.size(), SQLITE_STATIC);
        break;
      }
      default: break;
    }
    if (rc != SQLITE_OK) {
      return error(rc, fmt::format("cannot bind parameter {}", i));
    }
    return {};
  }

  // Steps `stmt` to the end, its rows into `out`, then resets it.
  Status step_all(sqlite3_stmt* stmt, QueryResult* out, void* /*unused*/) {
    const int ncol = sqlite3_column_count(stmt);
    out->columns.clear();
    out->rows.clear();
    for (int c = 0; c < ncol; ++c) {
      out->columns.emplace_back(sqlite3_column_name(stmt, c));
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      Row row;
      row.reserve(static_cast<size_t>(ncol));
      for (int c = 0; c < ncol; ++c) {
        row.push_back(column(stmt, c));
      }
      out->rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) {
      Status s = error(sqlite3_extended_errcode(db_), "SQL failed");
      sqlite3_reset(stmt);
      return s;
    }
    out->rows_changed = sqlite3_changes64(db_);
    sqlite3_reset(stmt);
    return {};
  }

  // Variables are bound SQLITE_STATIC: change them only between statements.
  void set_var(const std::string& name, const Value& v) {
    for (auto& [n, old] : vars_) {
      if (n == name) {
        old = v;
        return;
      }
    }
    vars_.emplace_back(name, v);
  }

  static Value column(sqlite3_stmt* stmt, int c) {
    switch (sqlite3_column_type(stmt, c)) {
      case SQLITE_INTEGER: return sqlite3_column_int64(stmt, c);
      case SQLITE_FLOAT: return sqlite3_column_double(stmt, c);
      case SQLITE_TEXT: {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
      }
      case SQLITE_BLOB: {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, c));
        const auto n = static_cast<size_t>(sqlite3_column_bytes(stmt, c));
        return Blob{p != nullptr ? std::string(p, n) : std::string()};
      }
      default: return std::monostate{};
    }
  }

  sqlite3* db_;
  const SqlLibrary* library_;
  std::string path_;
  Checkpointer* checkpointer_;  // background checkpoints, or null
  PayloadLogSession spill_;     // its log is null without one
  bool sync_payloads_ = false;
  bool reclaiming_ = false;
  std::unordered_map<std::string, CachedStatement> cache_;
  std::unordered_map<std::string, std::vector<CachedStatement>> procedures_;
  std::vector<std::pair<std::string, Value>> vars_;  // the columns of first rows
  std::span<const Arg> args_;                        // the inputs of the running call
  ErrorKind last_kind_ = ErrorKind::kNone;
  std::chrono::steady_clock::time_point busy_since_;
};

}  // namespace

Result<std::unique_ptr<Checkpointer>> start_sqlite_checkpointer(const std::string& path) {
  if (kCheckpoint.get() != "background" || kWalAutocheckpoint.get() == 0) {
    return std::unique_ptr<Checkpointer>();
  }
  // A frame is a page and a 24-byte header; the pages are 4 KiB unless the file says otherwise.
  const int64_t cap_frames = kWalMaxMb.get() * (1 << 20) / (4096 + 24);
  return Checkpointer::start(path, kWalAutocheckpoint.get(), cap_frames);
}

Result<std::unique_ptr<Connection>> open_sqlite_connection(const std::string& path,
                                                           const SqlLibrary* library,
                                                           Checkpointer* checkpointer,
                                                           PayloadLog* payloads) {
  // No global memory statistics: they take a process-wide mutex on every allocation.
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)configured;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return unavailable(fmt::format("cannot open SQLite database {}: {}", path, msg));
  }
  sqlite3_extended_result_codes(db, 1);
  auto conn = std::make_unique<SqliteConnection>(db, library, path, checkpointer, payloads);
  SLUICE_RETURN_IF_ERROR(conn->configure().with_context(fmt::format("configuring {}", path)));
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace sluice::dbos
