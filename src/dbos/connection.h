// Internal: one connection to a backend. Implementations: SqliteConnection, PgConnection.
// Not thread-safe; owned by a Session.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "dbos/sql_library.h"
#include "sluice/common/result.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {

// What the last failure means for a retry.
enum class ErrorKind {
  kNone,
  kConflict,        // SQLite busy/locked, PostgreSQL 40001 / 40P01: retry the transaction
  kConnectionLost,  // the server went away: reconnect, retry only idempotent work
  kOther,
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Dialect dialect() const = 0;

  virtual Status query(std::string_view sql, std::span<const Value> params, QueryResult* out) = 0;
  virtual Status execute_script(std::string_view sql) = 0;
  // A service procedure of the library with named inputs.
  virtual Status call(std::string_view procedure, std::span<const Arg> args, QueryResult* out) = 0;

  // write: the transaction will write (SQLite takes the write lock up front: BEGIN IMMEDIATE).
  virtual Status begin(bool write) = 0;
  virtual Status commit() = 0;
  virtual Status rollback() = 0;
  // For a single procedure call: PostgreSQL runs it as its own transaction (no BEGIN/COMMIT
  // round trips); SQLite needs an explicit one.
  virtual bool autocommit_calls_are_atomic() const = 0;

  virtual ErrorKind last_error_kind() const = 0;
  virtual Status reconnect() = 0;

  virtual Status listen(std::string_view channel) = 0;
  virtual Result<bool> wait_notification(int timeout_ms) = 0;
};

class Checkpointer;
class PayloadLog;

// `checkpointer`: the process's background checkpointer for this file (its WAL hook wakes it),
// or null for SQLite's inline checkpoints. `payloads`: the log of large IPC payloads beside the
// file, whose SQL functions the connection gets (the IPC procedures need them).
Result<std::unique_ptr<Connection>> open_sqlite_connection(const std::string& path,
                                                           const SqlLibrary* library,
                                                           Checkpointer* checkpointer = nullptr,
                                                           PayloadLog* payloads = nullptr);
// The background checkpointer when dbos.sqlite.checkpoint is background, else null.
Result<std::unique_ptr<Checkpointer>> start_sqlite_checkpointer(const std::string& path);
// `origin`: set as the session's `dbos.origin`, the payload of the notifications its sends make
// (the Database's token; empty for none).
Result<std::unique_ptr<Connection>> open_pg_connection(const std::string& conninfo,
                                                       const SqlLibrary* library,
                                                       const std::string& origin = {});

}  // namespace sluice::dbos
