// sluice::dbos — OS state kept as tables in a transactional DBMS (after DBOS, PVLDB 2021).
//
// A Database is a handle on one OS-state database: an SQLite file (the embedded default) or a
// PostgreSQL 15 server. Opening it migrates the schema forward (each version is a .sql file per
// dialect, compiled into the library) and installs the services (schedulers, IPC); a Session is one
// connection to it, used by one thread at a time. Services (Scheduler, Ipc) run on a Session.
//
//   SLUICE_ASSIGN_OR_RETURN(auto db, dbos::Database::open("sqlite:/var/tmp/os.db"));
//   SLUICE_ASSIGN_OR_RETURN(auto session, db->connect());
//   SLUICE_ASSIGN_OR_RETURN(auto result, session->query("SELECT count(*) FROM Task"));
//
// Backend URLs: `sqlite:PATH` (or a bare path), `postgres://user@host:port/db` or any libpq
// connection string starting with `postgresql://` or `host=`. An empty URL means an SQLite file
// `os.db` under the knob `dbos.data_dir`.
//
// Thread safety: a Database may be shared by any number of threads (and, for SQLite, processes
// opening the same file); a Session belongs to one thread at a time. A Database does not cross
// fork(): its threads (SQLite's checkpointer, PostgreSQL's notification thread) and connections
// stay with the parent, so a child process opens its own. Failures are Status values:
// `unavailable` for a locked database or an unreachable server (after the retries the knobs
// allow), `not_found` for unknown workers, receivers and schedulers, `invalid_argument` for bad
// SQL or input.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/common/status.h"

namespace sluice::dbos {

enum class Dialect { kSqlite, kPostgres };
std::string_view dialect_name(Dialect d);  // "sqlite", "postgres"

// Bytes that are not text (message payloads).
struct Blob {
  std::string bytes;
  friend bool operator==(const Blob&, const Blob&) = default;
};

// One SQL value. NULL is std::monostate.
using Value = std::variant<std::monostate, int64_t, double, std::string, Blob>;

// Text for display ("NULL", numbers, text; blobs as x'…' hex).
std::string value_to_text(const Value& v);
// The integer in `v`, or nullopt for NULL / non-integers (text holding an integer converts).
std::optional<int64_t> value_to_int(const Value& v);

using Row = std::vector<Value>;

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  int64_t rows_changed = 0;  // for statements that modify rows
};

// Named inputs of a service procedure (":receiver_id" in SQLite files, a named argument of a
// PL/pgSQL function in PostgreSQL files).
struct Arg {
  std::string_view name;
  Value value;
};

class Connection;  // internal: one backend connection
class Database;

// One connection. Not thread-safe: use one Session per thread.
class Session {
 public:
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Dialect dialect() const;
  Database& database() const { return *db_; }

  // Runs one SQL statement with positional parameters (`?1` in SQLite, `$1` in PostgreSQL).
  // The prepared statement is cached on this session.
  Result<QueryResult> query(std::string_view sql, std::span<const Value> params = {});
  // Runs a script of several statements without parameters (`sluice sql` with `;`).
  Status execute_script(std::string_view sql);

  // Runs `fn` in one transaction, retrying the whole transaction when the database reports a
  // conflict (SQLite busy, PostgreSQL 40001/40P01) up to `dbos.txn_retries` times. When
  // `idempotent` is true, a lost connection is re-opened and the transaction retried too.
  Status transact(const std::function<Status()>& fn, bool idempotent = false);
  bool in_transaction() const { return txn_depth_ > 0; }
  // Runs `fn` once the current transaction commits (dropped if it rolls back); at once when no
  // transaction is open. Wake-ups of receivers use it: a message is visible only after commit.
  void after_commit(std::function<void()> fn);

  // Calls the service procedure `name` of the loaded SQL library with named inputs; returns the
  // rows of its result. Runs inside the current transaction, or in a new one with retries.
  Result<QueryResult> call(std::string_view name, std::span<const Arg> args,
                           bool idempotent = false);

  // Calls a read-only procedure of a single statement without opening a write transaction
  // (SQLite readers in WAL mode never wait for the writer).
  Result<QueryResult> read(std::string_view name, std::span<const Arg> args);

  // Backend wake-up channel (PostgreSQL LISTEN). No-op on SQLite.
  Status listen(std::string_view channel);
  // Waits up to timeout_ms for a notification on a channel this session listens to.
  // Returns true when one arrived (all pending ones are consumed).
  Result<bool> wait_notification(int timeout_ms);

  Connection& connection() { return *conn_; }

 private:
  friend class Database;
  friend class GroupCommit;
  Session(Database* db, std::unique_ptr<Connection> conn);
  Status run_with_retries(const std::function<Status()>& fn, bool idempotent);
  // One transaction on this session's connection, with retries. Without `run_hooks` the
  // after_commit hooks are left for the caller.
  Status transact_alone(const std::function<Status()>& fn, bool idempotent, bool run_hooks = true);

  Database* db_;
  std::unique_ptr<Connection> conn_;
  int txn_depth_ = 0;
  std::vector<std::function<void()>> after_commit_;
};

class WakeTable;     // internal: futexes in a shared file, one per receiver slot
class SqlLibrary;    // internal: the SQL files of the dialect
class GroupCommit;   // internal: one commit for the concurrent SQLite transactions of a process
class Checkpointer;  // internal: SQLite WAL checkpoints on a thread of their own
class PayloadLog;    // internal: large SQLite IPC payloads in files beside the database
class NotifyHub;     // internal: the process's one PostgreSQL LISTEN connection
class Ipc;

class Database : public std::enable_shared_from_this<Database> {
 public:
  // Opens (creating if needed) the database at `url`, migrates its schema forward and installs
  // the services. Errors: invalid argument (bad URL), unavailable (server unreachable, file
  // locked), failed precondition (a schema newer than this program knows).
  static Result<std::shared_ptr<Database>> open(std::string_view url = {});

  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Result<std::unique_ptr<Session>> connect();

  Dialect dialect() const { return dialect_; }
  const std::string& url() const { return url_; }  // normalised
  int schema_version() const { return schema_version_; }
  // Names of the schedulers installed (one SQL file each), sorted.
  const std::vector<std::string>& schedulers() const { return schedulers_; }

  // Futex-based wake-ups of receivers: on SQLite shared by every process that opens the same
  // file; on PostgreSQL (dbos.pg.wakeups hub) for this process's threads, bumped by its senders
  // and by the notification thread. Null on PostgreSQL with dbos.pg.wakeups connection.
  WakeTable* wake_table() { return wake_.get(); }
  // SQLite with dbos.sqlite.group_commit or dbos.sqlite.shared_writer on: the transactions of
  // this Database's sessions that start together commit together, on the process writer when
  // there is one. Null otherwise (PostgreSQL, or both knobs off).
  GroupCommit* group_commit() { return group_.get(); }
  // SQLite: the log beside the file (<file>-payloads/) that keeps IPC payloads of at least
  // dbos.sqlite.spill_bytes out of the rows. Null on PostgreSQL.
  PayloadLog* payload_log() { return payloads_.get(); }

  const SqlLibrary& library() const { return *library_; }

 private:
  friend class Ipc;
  Database() = default;
  Status init();
  // PostgreSQL with a wake table: notifications on `receiver`'s channel bump its word from now
  // on (the process's NotifyHub, started on first use).
  Status watch_receiver(int64_t receiver);

  Dialect dialect_ = Dialect::kSqlite;
  std::string url_;
  std::string target_;  // file path or libpq conninfo
  std::string origin_;  // PostgreSQL with a wake table: the payload of this handle's NOTIFYs
  int schema_version_ = 0;
  std::vector<std::string> schedulers_;
  std::unique_ptr<WakeTable> wake_;
  std::unique_ptr<PayloadLog> payloads_;  // SQLite; before the connections, which use it
  std::mutex hub_mu_;
  std::unique_ptr<NotifyHub> hub_;              // after wake_, so it stops before the table goes
  std::unique_ptr<Checkpointer> checkpointer_;  // SQLite, dbos.sqlite.checkpoint background
  std::unique_ptr<SqlLibrary> library_;
  // Last, so it goes first: its process writer uses the library and the checkpointer.
  std::unique_ptr<GroupCommit> group_;
};

// The default URL: sqlite:<dbos.data_dir>/os.db, or the knob `dbos.backend` when set.
std::string default_backend_url();

}  // namespace sluice::dbos
