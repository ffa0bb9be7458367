#include "sluice/dbos/database.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "dbos/checkpointer.h"
#include "dbos/connection.h"
#include "dbos/group_commit.h"
#include "dbos/notify_hub.h"
#include "dbos/payload_log.h"
#include "dbos/sql_library.h"
#include "dbos/wake.h"
#include "sluice/common/knobs.h"

namespace sluice::dbos {
namespace {

const StringKnob kDataDir({.name = "dbos.data_dir",
                           .default_value = "/var/tmp/sluice/dbos",
                           .stage = KnobStage::kStart,
                           .help = "directory of the default SQLite OS-state database (os.db)"});
const StringKnob kBackend({.name = "dbos.backend",
                           .default_value = "",
                           .stage = KnobStage::kStart,
                           .help = "OS-state database: sqlite:PATH or postgres://…; empty: "
                                   "sqlite:<dbos.data_dir>/os.db"});
const StringKnob kSchedulerDir({.name = "dbos.scheduler_dir",
                                .default_value = "",
                                .stage = KnobStage::kStart,
                                .help = "extra schedulers: <dir>/<dialect>/sched_<name>.sql files "
                                        "loaded beside the built-in ones"});
const BoolKnob kGroupCommit({.name = "dbos.sqlite.group_commit",
                             .default_value = true,
                             .stage = KnobStage::kStart,
                             .help = "SQLite: transactions that threads of one process start "
                                     "together run in one transaction of the first and "
                                     "commit once; a failing one is undone alone"});
const IntKnob kGroupMin({.name = "dbos.sqlite.group_commit_min",
                         .default_value = 3,
                         .min = 1,
                         .max = 1000,
                         .stage = KnobStage::kStart,
                         .help = "SQLite group commit: transactions under way at once in "
                                 "a process before they are grouped; fewer take SQLite's lock "
                                 "one by one (1: always group)"});
const BoolKnob kSharedWriter({.name = "dbos.sqlite.shared_writer",
                              .default_value = true,
                              .stage = KnobStage::kStart,
                              .help = "SQLite: the write transactions of every thread of a "
                                      "process run on one connection, one at a time, so its "
                                      "page cache stays warm; off: each on its thread's own"});
const EnumKnob kPgWakeups(
    {.name = "dbos.pg.wakeups",
     .default_value = "hub",
     .values = {"hub", "connection"},
     .stage = KnobStage::kStart,
     .help = "PostgreSQL receivers: hub, one LISTEN connection per process wakes its receivers "
             "through futexes (and senders in the process wake them directly); connection, "
             "each receiver LISTENs on its own connection (every NOTIFY then signals every "
             "listening backend)"});
const IntKnob kTxnRetries({.name = "dbos.txn_retries",
                           .default_value = 20,
                           .min = 0,
                           .max = 100000,
                           .stage = KnobStage::kRuntime,
                           .help = "times a transaction is retried after a conflict (SQLite "
                                   "busy, PostgreSQL serialization failure or deadlock)"});

// Before retrying after a conflict: a little, randomised, growing, so contending writers
// spread out.
void back_off(int64_t attempt, std::minstd_rand& rng) {
  const int64_t cap = std::min<int64_t>(1000 << std::min<int64_t>(attempt, 6), 50'000);
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % static_cast<unsigned>(cap)));
}

}  // namespace

std::string_view dialect_name(Dialect d) {
  return d == Dialect::kSqlite ? "sqlite" : "postgres";
}

std::string value_to_text(const Value& v) {
  switch (v.index()) {
    case 0: return "NULL";
    case 1: return std::to_string(std::get<1>(v));
    case 2: return fmt::format("{}", std::get<2>(v));
    case 3: return std::get<3>(v);
    case 4: {
      std::string out = "x'";
      for (char c : std::get<4>(v).bytes) {
        out += fmt::format("{:02x}", static_cast<unsigned char>(c));
      }
      return out + "'";
    }
    default: return "";
  }
}

std::optional<int64_t> value_to_int(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return *i;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    try {
      size_t used = 0;
      int64_t x = std::stoll(*s, &used);
      if (used == s->size()) {
        return x;
      }
    } catch (...) {
    }
  }
  return std::nullopt;
}

std::string default_backend_url() {
  std::string b = kBackend.get();
  if (!b.empty()) {
    return b;
  }
  return "sqlite:" + (std::filesystem::path(kDataDir.get()) / "os.db").string();
}

// --- Session ---

Session::Session(Database* db, std::unique_ptr<Connection> conn)
    : db_(db), conn_(std::move(conn)) {}
Session::~Session() = default;

Dialect Session::dialect() const {
  return conn_->dialect();
}

Result<QueryResult> Session::query(std::string_view sql, std::span<const Value> params) {
  QueryResult out;
  Status s = conn_->query(sql, params, &out);
  if (!s.is_ok() && conn_->last_error_kind() == ErrorKind::kConnectionLost && txn_depth_ == 0) {
    // Reads and single statements outside a transaction: reconnect and report; the caller may
    // repeat the statement once it knows whether it is safe to.
    (void)conn_->reconnect();
  }
  SLUICE_RETURN_IF_ERROR(s);
  return out;
}

Status Session::execute_script(std::string_view sql) {
  return conn_->execute_script(sql);
}

Status Session::run_with_retries(const std::function<Status()>& fn, bool idempotent) {
  const int64_t retries = kTxnRetries.get();
  std::minstd_rand rng(static_cast<unsigned>(reinterpret_cast<uintptr_t>(this)));
  Status last;
  for (int64_t attempt = 0;; ++attempt) {
    last = fn();
    if (last.is_ok()) {
      return last;
    }
    const ErrorKind kind = conn_->last_error_kind();
    if (attempt >= retries) {
      break;
    }
    if (kind == ErrorKind::kConflict) {
      back_off(attempt, rng);
      continue;
    }
    if (kind == ErrorKind::kConnectionLost) {
      Status r = conn_->reconnect();
      if (!r.is_ok()) {
        return r;
      }
      if (idempotent) {
        continue;
      }
      return last.with_context(
          "the connection was lost mid-transaction and re-opened; the outcome is unknown and the "
          "operation is not safe to repeat automatically");
    }
    break;
  }
  return last;
}

void Session::after_commit(std::function<void()> fn) {
  if (txn_depth_ > 0) {
    after_commit_.push_back(std::move(fn));
  } else {
    fn();
  }
}

Status Session::transact(const std::function<Status()>& fn, bool idempotent) {
  if (txn_depth_ > 0) {
    return fn();
  }
  GroupCommit* group = db_->group_commit();
  if (group == nullptr) {
    return transact_alone(fn, idempotent);
  }
  std::minstd_rand rng(static_cast<unsigned>(reinterpret_cast<uintptr_t>(this)));
  for (int64_t attempt = 0;; ++attempt) {
    bool conflict = false;
    Status s = group->run(*this, fn, idempotent, &conflict);
    if (!conflict || attempt >= kTxnRetries.get()) {
      // A member of a group leaves its hooks here; a lone transaction ran its own.
      std::vector<std::function<void()>> hooks;
      hooks.swap(after_commit_);
      if (s.is_ok()) {
        for (auto& h : hooks) {
          h();
        }
      }
      return s;
    }
    after_commit_.clear();
    back_off(attempt, rng);
  }
}

Status Session::transact_alone(const std::function<Status()>& fn, bool idempotent, bool run_hooks) {
  after_commit_.clear();
  Status result = run_with_retries(
      [&]() -> Status {
        Status s = conn_->begin(true);
        if (!s.is_ok()) {
          return s;
        }
        ++txn_depth_;
        s = fn();
        --txn_depth_;
        if (s.is_ok()) {
          s = conn_->commit();
          if (s.is_ok()) {
            return s;
          }
        }
        (void)conn_->rollback();  // keeps the failure's kind, which decides the retry
        after_commit_.clear();    // a retry queues its own
        return s;
      },
      idempotent);
  if (!run_hooks) {
    if (!result.is_ok()) {
      after_commit_.clear();
    }
    return result;
  }
  std::vector<std::function<void()>> hooks;
  hooks.swap(after_commit_);
  if (result.is_ok()) {
    for (auto& h : hooks) {
      h();
    }
  }
  return result;
}

Result<QueryResult> Session::call(std::string_view name, std::span<const Arg> args,
                                  bool idempotent) {
  QueryResult out;
  if (txn_depth_ > 0) {
    SLUICE_RETURN_IF_ERROR(conn_->call(name, args, &out));
    return out;
  }
  if (conn_->autocommit_calls_are_atomic()) {
    SLUICE_RETURN_IF_ERROR(
        run_with_retries([&] { return conn_->call(name, args, &out); }, idempotent));
    return out;
  }
  SLUICE_RETURN_IF_ERROR(transact([&] { return conn_->call(name, args, &out); }, idempotent));
  return out;
}

Result<QueryResult> Session::read(std::string_view name, std::span<const Arg> args) {
  QueryResult out;
  SLUICE_RETURN_IF_ERROR(run_with_retries([&] { return conn_->call(name, args, &out); }, true));
  return out;
}

Status Session::listen(std::string_view channel) {
  return conn_->listen(channel);
}

Result<bool> Session::wait_notification(int timeout_ms) {
  return conn_->wait_notification(timeout_ms);
}

// --- Database ---

Database::~Database() = default;

Status Database::watch_receiver(int64_t receiver) {
  if (wake_ == nullptr || dialect_ != Dialect::kPostgres) {
    return {};
  }
  NotifyHub* hub = nullptr;
  {
    std::lock_guard lock(hub_mu_);
    if (hub_ == nullptr) {
      SLUICE_ASSIGN_OR_RETURN(hub_, NotifyHub::start(target_, wake_.get(), origin_));
    }
    hub = hub_.get();
  }
  return hub->listen(receiver);
}

namespace {

struct ParsedUrl {
  Dialect dialect;
  std::string target;
};

Result<ParsedUrl> parse_url(std::string_view url) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://") ||
      url.starts_with("host=") || url.starts_with("dbname=") || url.starts_with("port=")) {
    return ParsedUrl{Dialect::kPostgres, std::string(url)};
  }
  if (url.starts_with("sqlite:")) {
    url.remove_prefix(7);
    if (url.starts_with("//")) {
      url.remove_prefix(2);
    }
  } else if (url.find("://") != std::string_view::npos) {
    return invalid_argument(
        fmt::format("unknown backend '{}': use sqlite:PATH or postgres://user@host:port/db", url));
  }
  if (url.empty()) {
    return invalid_argument("the SQLite backend needs a path: sqlite:PATH");
  }
  if (url == ":memory:") {
    return invalid_argument(
        "sqlite::memory: cannot be shared between sessions or processes; use a file path");
  }
  return ParsedUrl{Dialect::kSqlite, std::string(url)};
}

// Deletes the payload segments no message refers to (those a process left when it died, or that
// no commit has reclaimed yet). The write lock, taken and given back, waits out every transaction
// that may still be writing below the head it reads; the segments read afterwards are all that
// rows refer to below it.
Status reclaim_payloads(Connection& conn, PayloadLog& log) {
  SLUICE_RETURN_IF_ERROR(conn.begin(true));
  const uint32_t limit = log.head_segment();
  SLUICE_RETURN_IF_ERROR(conn.commit());
  QueryResult live;
  SLUICE_RETURN_IF_ERROR(conn.query(PayloadLog::kLiveSegmentsSql, {}, &live));
  return log.reclaim(limit, PayloadLog::live_segments(live));
}

Status migrate(Connection& conn, const SqlLibrary& lib, int* version) {
  const bool pg = conn.dialect() == Dialect::kPostgres;
  SLUICE_RETURN_IF_ERROR(conn.begin(true));
  auto fail = [&](Status s) {
    (void)conn.rollback();
    return s;
  };
  QueryResult r;
  if (pg) {
    // One migrator at a time across every client of the server.
    Status s = conn.query("SELECT pg_advisory_xact_lock(7300)", {}, &r);
    if (!s.is_ok()) {
      return fail(s);
    }
  }
  Status s = conn.execute_script(
      "CREATE TABLE IF NOT EXISTS dbos_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "applied_us BIGINT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS dbos_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);");
  if (!s.is_ok()) {
    return fail(s);
  }
  s = conn.query("SELECT coalesce(max(version), 0) FROM dbos_schema", {}, &r);
  if (!s.is_ok()) {
    return fail(s);
  }
  const int current = static_cast<int>(value_to_int(r.rows.at(0).at(0)).value_or(0));
  const int known = static_cast<int>(lib.migrations().size());
  if (current > known) {
    return fail(failed_precondition(fmt::format(
        "the OS-state database is at schema version {} but this program knows only up to {}: "
        "use a newer sluice",
        current, known)));
  }
  const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  for (const Migration& m : lib.migrations()) {
    if (m.version <= current) {
      continue;
    }
    s = conn.execute_script(m.sql);
    if (!s.is_ok()) {
      return fail(
          s.with_context(fmt::format("migrating to schema version {} ({})", m.version, m.name)));
    }
    std::vector<Value> params{static_cast<int64_t>(m.version), m.name, now_us};
    s = conn.query(pg ? "INSERT INTO dbos_schema VALUES ($1, $2, $3)"
                      : "INSERT INTO dbos_schema VALUES (?1, ?2, ?3)",
                   params, &r);
    if (!s.is_ok()) {
      return fail(s);
    }
  }
  if (pg) {
    // The functions are re-created only when the scripts changed.
    const std::string digest = lib.install_digest();
    std::vector<Value> key{std::string("install_digest")};
    s = conn.query("SELECT value FROM dbos_meta WHERE key = $1", key, &r);
    if (!s.is_ok()) {
      return fail(s);
    }
    const bool same = !r.rows.empty() && value_to_text(r.rows[0][0]) == digest;
    if (!same) {
      for (const std::string& script : lib.install_scripts()) {
        s = conn.execute_script(script);
        if (!s.is_ok()) {
          return fail(s.with_context("installing the PostgreSQL service functions"));
        }
      }
      std::vector<Value> kv{std::string("install_digest"), digest};
      s = conn.query(
          "INSERT INTO dbos_meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2", kv,
          &r);
      if (!s.is_ok()) {
        return fail(s);
      }
    }
  }
  SLUICE_RETURN_IF_ERROR(conn.commit());
  *version = known;
  return {};
}

}  // namespace

Result<std::shared_ptr<Database>> Database::open(std::string_view url) {
  std::string u = url.empty() ? default_backend_url() : std::string(url);
  SLUICE_ASSIGN_OR_RETURN(ParsedUrl parsed, parse_url(u));
  std::shared_ptr<Database> db(new Database());
  db->dialect_ = parsed.dialect;
  db->target_ = parsed.target;
  db->url_ = parsed.dialect == Dialect::kSqlite ? "sqlite:" + parsed.target : parsed.target;
  SLUICE_RETURN_IF_ERROR(db->init());
  return db;
}

Status Database::init() {
  SLUICE_ASSIGN_OR_RETURN(SqlLibrary lib, SqlLibrary::load(dialect_, kSchedulerDir.get()));
  library_ = std::make_unique<SqlLibrary>(std::move(lib));
  schedulers_ = library_->schedulers();
  if (dialect_ == Dialect::kSqlite) {
    std::filesystem::path p(target_);
    if (p.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(p.parent_path(), ec);
      if (ec) {
        return errno_status(ec.value(), fmt::format("cannot create the directory of {} "
                                                    "(set dbos.data_dir or --backend)",
                                                    target_));
      }
    }
  }
  if (dialect_ == Dialect::kSqlite) {
    SLUICE_ASSIGN_OR_RETURN(payloads_, PayloadLog::open_with_knobs(target_ + "-payloads"));
  }
  SLUICE_ASSIGN_OR_RETURN(auto session, connect());
  Connection& conn = session->connection();
  // A busy database at open is retried like any transaction.
  Status s;
  for (int attempt = 0; attempt < 50; ++attempt) {
    s = migrate(conn, *library_, &schema_version_);
    if (s.is_ok() || conn.last_error_kind() != ErrorKind::kConflict) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + attempt));
  }
  SLUICE_RETURN_IF_ERROR(s.with_context(fmt::format("opening {}", url_)));
  if (payloads_ != nullptr) {
    SLUICE_RETURN_IF_ERROR(
        reclaim_payloads(conn, *payloads_)
            .with_context(fmt::format("cleaning the payload log {}", payloads_->dir())));
  }
  if (dialect_ == Dialect::kPostgres && kPgWakeups.get() == "hub") {
    SLUICE_ASSIGN_OR_RETURN(wake_, WakeTable::in_process());
    // Names this handle's notifications (see NotifyHub::start); the sessions opened from now on
    // carry it.
    std::random_device rd;
    origin_ = fmt::format("p{}x{:08x}{:08x}", ::getpid(), rd(), rd());
  }
  if (dialect_ == Dialect::kSqlite) {
    SLUICE_ASSIGN_OR_RETURN(wake_, WakeTable::open(target_ + "-wake"));
    SLUICE_ASSIGN_OR_RETURN(checkpointer_, start_sqlite_checkpointer(target_));
    if (kGroupCommit.get() || kSharedWriter.get()) {
      std::unique_ptr<Connection> writer;
      if (kSharedWriter.get()) {
        SLUICE_ASSIGN_OR_RETURN(
            writer,
            open_sqlite_connection(target_, library_.get(), checkpointer_.get(), payloads_.get()));
      }
      // Without group commit nothing groups: every transaction runs alone, on the writer.
      const size_t min_group = kGroupCommit.get() ? static_cast<size_t>(kGroupMin.get()) : SIZE_MAX;
      group_ = std::make_unique<GroupCommit>(min_group, std::move(writer));
    }
  }
  return {};
}

Result<std::unique_ptr<Session>> Database::connect() {
  std::unique_ptr<Connection> conn;
  if (dialect_ == Dialect::kSqlite) {
    SLUICE_ASSIGN_OR_RETURN(conn, open_sqlite_connection(target_, library_.get(),
                                                         checkpointer_.get(), payloads_.get()));
  } else {
    SLUICE_ASSIGN_OR_RETURN(conn, open_pg_connection(target_, library_.get(), origin_));
  }
  return std::unique_ptr<Session>(new Session(this, std::move(conn)));
}

}  // namespace sluice::dbos
