// The PostgreSQL backend: one libpq connection, statements prepared once per connection, the
// services called as PL/pgSQL functions with named arguments, LISTEN/NOTIFY for wake-ups.
#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <charconv>
#include <cstring>
#include <set>
#include <unordered_map>

#include "dbos/connection.h"
#include "sluice/common/knobs.h"

namespace sluice::dbos {
namespace {

const IntKnob kReconnectAttempts({.name = "dbos.pg.reconnect_attempts",
                                  .default_value = 20,
                                  .min = 1,
                                  .max = 100000,
                                  .stage = KnobStage::kRuntime,
                                  .help = "tries to re-open a lost PostgreSQL connection, 250 ms "
                                          "apart, before a call fails as unavailable"});

const IntKnob kLockTimeoutMs({.name = "dbos.pg.lock_timeout_ms",
                              .default_value = 5000,
                              .min = 0,
                              .max = 600000,
                              .stage = KnobStage::kRuntime,
                              .help = "how long a PostgreSQL statement waits for a lock another "
                                      "session holds before the transaction is retried or fails "
                                      "(0: forever)"});

const IntKnob kDeadlockTimeoutMs(
    {.name = "dbos.pg.deadlock_timeout_ms",
     .default_value = 20,
     .min = 1,
     .max = 600000,
     .stage = KnobStage::kRuntime,
     .help = "how long a PostgreSQL session waits on a lock before the server looks for a "
             "deadlock (its default is 1 s, a stall per deadlock); set per session when the "
             "role may (a superuser), else the server's setting stays"});

// Type OIDs (pg_type.h) the results decode.
constexpr Oid kBool = 16, kBytea = 17, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kFloat4 = 700,
              kFloat8 = 701;

struct Unhex {
  static int nibble(char c) {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  }
};

Value decode(const PGresult* res, int r, int c) {
  if (PQgetisnull(res, r, c) != 0) {
    return std::monostate{};
  }
  const char* p = PQgetvalue(res, r, c);
  const auto n = static_cast<size_t>(PQgetlength(res, r, c));
  switch (PQftype(res, c)) {
    case kInt8:
    case kInt4:
    case kInt2:
    case kOid: {
      int64_t v = 0;
      std::from_chars(p, p + n, v);
      return v;
    }
    case kFloat4:
    case kFloat8: return std::strtod(p, nullptr);
    case kBool: return static_cast<int64_t>(p[0] == 't' ? 1 : 0);
    case kBytea: {
      std::string out;
      if (n >= 2 && p[0] == '\\' && p[1] == 'x') {
        out.reserve((n - 2) / 2);
        for (size_t i = 2; i + 1 < n; i += 2) {
          out.push_back(static_cast<char>(Unhex::nibble(p[i]) * 16 + Unhex::nibble(p[i + 1])));
        }
      } else {
        size_t len = 0;
        unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(p), &len);
        if (raw != nullptr) {
          out.assign(reinterpret_cast<const char*>(raw), len);
          PQfreemem(raw);
        }
      }
      return Blob{std::move(out)};
    }
    default: return std::string(p, n);
  }
}

class PgConnection final : public Connection {
 public:
  PgConnection(std::string conninfo, const SqlLibrary* library, std::string origin)
      : conninfo_(std::move(conninfo)), library_(library), origin_(std::move(origin)) {}
  ~PgConnection() override {
    if (conn_ != nullptr) {
      if (!listener_token_.empty() && PQstatus(conn_) == CONNECTION_OK &&
          PQtransactionStatus(conn_) == PQTRANS_IDLE) {
        // Best effort, as in NotifyHub::leave.
        std::vector<Value> token{listener_token_};
        QueryResult r;
        (void)query("SELECT dbos_listener_leave($1)", token, &r);
      }
      PQfinish(conn_);
    }
  }

  Dialect dialect() const override { return Dialect::kPostgres; }

  Status connect_once() {
    if (conn_ != nullptr) {
      PQfinish(conn_);
    }
    prepared_.clear();
    begin_pending_ = false;
    listener_token_.clear();
    conn_ = PQconnectdb(conninfo_.c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(conn_);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
        msg.pop_back();
      }
      last_kind_ = ErrorKind::kConnectionLost;
      return unavailable(fmt::format(
          "cannot connect to PostgreSQL ({}): {}; is the server running and the URL right?",
          redacted(), msg));
    }
    std::string setup = fmt::format("SET client_min_messages = warning; SET lock_timeout = {}",
                                    kLockTimeoutMs.get());
    if (!origin_.empty()) {
      setup += fmt::format("; SET dbos.origin = '{}'", origin_);
    }
    PGresult* r = PQexec(conn_, setup.c_str());
    PQclear(r);
    // Two transactions that lock rows in opposite orders (a batch over files taken in a
    // random order) deadlock; each then stalls until the server's check runs, and one is retried.
    // Only a superuser may change the setting: for other roles it fails and the server's stays.
    const std::string deadlock = fmt::format("SET deadlock_timeout = {}", kDeadlockTimeoutMs.get());
    r = PQexec(conn_, deadlock.c_str());
    PQclear(r);
    for (const auto& ch : channels_) {
      SLUICE_RETURN_IF_ERROR(run_listen(ch));
    }
    return {};
  }

  Status query(std::string_view sql, std::span<const Value> params, QueryResult* out) override {
    SLUICE_ASSIGN_OR_RETURN(const std::string* name, prepare(std::string(sql)));
    return exec_prepared(
        *name, params.size(), [&](size_t i) -> const Value& { return params[i]; }, out);
  }

  Status execute_script(std::string_view sql) override {
    SLUICE_RETURN_IF_ERROR(flush_begin());
    PGresult* res = PQexec(conn_, std::string(sql).c_str());
    Status s = check(res, "SQL script failed");
    PQclear(res);
    return s;
  }

  Status call(std::string_view procedure, std::span<const Arg> args, QueryResult* out) override {
    call_key_.assign(procedure);
    for (const Arg& a : args) {
      call_key_.push_back(',');
      call_key_.append(a.name);
    }
    auto it = call_sql_.find(call_key_);
    if (it == call_sql_.end()) {
      std::string sql = fmt::format("SELECT * FROM dbos_{}(", procedure);
      for (size_t i = 0; i < args.size(); ++i) {
        sql += fmt::format("{}{} => ${}", i == 0 ? "" : ", ", args[i].name, i + 1);
      }
      sql += ")";
      it = call_sql_.emplace(call_key_, std::move(sql)).first;
    }
    // The inputs are passed where they are: a batch's payload is not copied on the way.
    SLUICE_ASSIGN_OR_RETURN(const std::string* name, prepare(it->second));
    return exec_prepared(
        *name, args.size(), [&](size_t i) -> const Value& { return args[i].value; }, out);
  }

  // BEGIN travels with the transaction's first statement, in one pipeline (exec_prepared): a
  // round trip fewer per transaction. A transaction that runs nothing sends nothing.
  Status begin(bool) override {
    begin_pending_ = true;
    return {};
  }
  Status commit() override {
    if (begin_pending_) {
      begin_pending_ = false;
      return {};
    }
    return simple("COMMIT");
  }
  Status rollback() override {
    if (begin_pending_) {
      begin_pending_ = false;
      return {};
    }
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK ||
        PQtransactionStatus(conn_) == PQTRANS_IDLE) {
      return {};
    }
    const ErrorKind kind = last_kind_;  // the failure that caused the rollback decides retries
    Status s = simple("ROLLBACK");
    last_kind_ = kind;
    return s;
  }
  bool autocommit_calls_are_atomic() const override { return true; }
  ErrorKind last_error_kind() const override { return last_kind_; }

  Status reconnect() override {
    Status s;
    for (int64_t i = 0; i < kReconnectAttempts.get(); ++i) {
      s = connect_once();
      if (s.is_ok()) {
        return s;
      }
      ::poll(nullptr, 0, 250);
    }
    return s;
  }

  Status listen(std::string_view channel) override {
    std::string ch(channel);
    if (!channels_.insert(ch).second) {
      return {};
    }
    return run_listen(ch);
  }

  Result<bool> wait_notification(int timeout_ms) override {
    if (drain()) {
      return true;
    }
    struct pollfd pfd {};
    pfd.fd = PQsocket(conn_);
    pfd.events = POLLIN;
    if (pfd.fd < 0) {
      last_kind_ = ErrorKind::kConnectionLost;
      return unavailable("the PostgreSQL connection is closed");
    }
    int rc = ::poll(&pfd, 1, timeout_ms);
    if (rc < 0) {
      return errno_status(errno, "poll on the PostgreSQL socket");
    }
    if (rc == 0) {
      return false;
    }
    if (PQconsumeInput(conn_) == 0) {
      last_kind_ = ErrorKind::kConnectionLost;
      return unavailable(fmt::format("lost the PostgreSQL connection: {}", PQerrorMessage(conn_)));
    }
    return drain();
  }

 private:
  bool drain() {
    if (PQconsumeInput(conn_) == 0) {
      return false;
    }
    bool any = false;
    while (PGnotify* n = PQnotifies(conn_)) {
      any = true;
      PQfreemem(n);
    }
    return any;
  }

  std::string redacted() const {
    // The connection string without a password.
    std::string s = conninfo_;
    auto at = s.find('@');
    auto scheme = s.find("://");
    if (at != std::string::npos && scheme != std::string::npos && at > scheme) {
      auto colon = s.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) {
        s.replace(colon, at - colon, ":***");
      }
    }
    return s;
  }

  Status run_listen(const std::string& ch) {
    char* ident = PQescapeIdentifier(conn_, ch.c_str(), ch.size());
    if (ident == nullptr) {
      return invalid_argument(fmt::format("bad channel name '{}'", ch));
    }
    std::string sql = fmt::format("LISTEN {}", ident);
    PQfreemem(ident);
    if (listener_token_.empty()) {
      // The connection's first LISTEN joins the listeners in its transaction (NotifyHub does the
      // same). Its token differs from the handle's origin, so that every send notifies it, its
      // own handle's included: a receiver that listens on its own connection is woken by
      // nothing else.
      std::string token = fmt::format("{}/{}", origin_, PQbackendPID(conn_));
      char* literal = PQescapeLiteral(conn_, token.c_str(), token.size());
      if (literal == nullptr) {
        return internal_error("cannot quote the listener token");
      }
      sql = fmt::format("SELECT dbos_listener_join({}); {}", literal, sql);
      PQfreemem(literal);
      SLUICE_RETURN_IF_ERROR(simple(sql.c_str()));
      listener_token_ = std::move(token);
      return {};
    }
    return simple(sql.c_str());
  }

  Status simple(const char* sql) {
    SLUICE_RETURN_IF_ERROR(flush_begin());
    PGresult* res = PQexec(conn_, sql);
    Status s = check(res, sql);
    PQclear(res);
    return s;
  }

  // A BEGIN that has not gone out yet goes out on its own, before a statement that is sent by
  // itself (a script, LISTEN).
  Status flush_begin() {
    if (!begin_pending_) {
      return {};
    }
    begin_pending_ = false;
    PGresult* res = PQexec(conn_, "BEGIN");
    Status s = check(res, "BEGIN");
    PQclear(res);
    return s;
  }

  // BEGIN and the prepared statement in one pipeline, one round trip. Returns the statement's
  // result, or BEGIN's when BEGIN failed (the statement is then not run).
  PGresult* exec_prepared_after_begin(const std::string& name, int n) {
    begin_pending_ = false;
    if (PQenterPipelineMode(conn_) != 1) {
      PGresult* res = PQexec(conn_, "BEGIN");
      if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        return res;
      }
      PQclear(res);
      return PQexecPrepared(conn_, name.c_str(), n, values_.data(), lengths_.data(),
                            formats_.data(), 0);
    }
    const bool sent =
        PQsendQueryParams(conn_, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1 &&
        PQsendQueryPrepared(conn_, name.c_str(), n, values_.data(), lengths_.data(),
                            formats_.data(), 0) == 1 &&
        PQpipelineSync(conn_) == 1;
    PGresult* begin_res = nullptr;
    PGresult* res = nullptr;
    if (sent) {
      // Each query's results end with a NULL; then comes the sync point.
      begin_res = first_result_of_query();
      res = first_result_of_query();
      while (PGresult* r = PQgetResult(conn_)) {
        const bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync) {
          break;
        }
      }
    }
    if (PQexitPipelineMode(conn_) != 1) {
      // Results still pending: the connection's state is unknown. Drop it; the next statement
      // finds it lost and the session reconnects and retries where that is safe.
      PQclear(begin_res);
      PQclear(res);
      PQfinish(conn_);
      conn_ = nullptr;
      return nullptr;
    }
    if (begin_res == nullptr || PQresultStatus(begin_res) != PGRES_COMMAND_OK) {
      PQclear(res);
      return begin_res;
    }
    PQclear(begin_res);
    return res;
  }

  // In a pipeline: the first result of the next query, the rest of its results read and freed.
  PGresult* first_result_of_query() {
    PGresult* first = PQgetResult(conn_);
    if (first == nullptr) {
      return nullptr;
    }
    while (PGresult* more = PQgetResult(conn_)) {
      PQclear(more);
    }
    return first;
  }

  Result<const std::string*> prepare(const std::string& sql) {
    auto it = prepared_.find(sql);
    if (it != prepared_.end()) {
      return &it->second;
    }
    std::string name = fmt::format("s{}", next_stmt_++);
    PGresult* res = PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr);
    Status s = check(res, "cannot prepare SQL");
    PQclear(res);
    SLUICE_RETURN_IF_ERROR(s);
    return &prepared_.emplace(sql, std::move(name)).first->second;
  }

  // `param(i)`: the i-th parameter's value, for i < n.
  template <typename Param>
  Status exec_prepared(const std::string& name, size_t n, Param&& param, QueryResult* out) {
    texts_.resize(n);
    values_.resize(n);
    lengths_.resize(n);
    formats_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const Value& v = param(i);
      formats_[i] = 0;
      switch (v.index()) {
        case 0:
          values_[i] = nullptr;
          lengths_[i] = 0;
          continue;
        case 1: texts_[i] = std::to_string(std::get<1>(v)); break;
        case 2: texts_[i] = fmt::format("{}", std::get<2>(v)); break;
        case 3: texts_[i] = std::get<3>(v); break;
        case 4: {
          const std::string& b = std::get<4>(v).bytes;
          values_[i] = b.data();
          lengths_[i] = static_cast<int>(b.size());
          formats_[i] = 1;
          continue;
        }
        default: break;
      }
      values_[i] = texts_[i].c_str();
      lengths_[i] = static_cast<int>(texts_[i].size());
    }
    PGresult* res = begin_pending_
                        ? exec_prepared_after_begin(name, static_cast<int>(n))
                        : PQexecPrepared(conn_, name.c_str(), static_cast<int>(n), values_.data(),
                                         lengths_.data(), formats_.data(), 0);
    Status s = check(res, "SQL failed");
    if (s.is_ok()) {
      out->columns.clear();
      out->rows.clear();
      const int nf = PQnfields(res);
      const int nt = PQntuples(res);
      for (int c = 0; c < nf; ++c) {
        out->columns.emplace_back(PQfname(res, c));
      }
      out->rows.reserve(static_cast<size_t>(nt));
      for (int r = 0; r < nt; ++r) {
        Row row;
        row.reserve(static_cast<size_t>(nf));
        for (int c = 0; c < nf; ++c) {
          row.push_back(decode(res, r, c));
        }
        out->rows.push_back(std::move(row));
      }
      const char* changed = PQcmdTuples(res);
      out->rows_changed = changed != nullptr && changed[0] != '\0' ? std::atoll(changed) : 0;
    }
    PQclear(res);
    return s;
  }

  Status check(PGresult* res, std::string_view what) {
    ExecStatusType st = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
      last_kind_ = ErrorKind::kNone;
      return {};
    }
    const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string code = state != nullptr ? state : "";
    std::string msg = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    if (msg.empty()) {
      msg = PQerrorMessage(conn_);
    }
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
      msg.pop_back();
    }
    if (PQstatus(conn_) != CONNECTION_OK || code.starts_with("08") || code == "57P01" ||
        code == "57P02" || code == "57P03") {
      last_kind_ = ErrorKind::kConnectionLost;
      return unavailable(fmt::format("lost the PostgreSQL connection ({}): {}", redacted(), msg));
    }
    if (code == "40001" || code == "40P01" || code == "55P03") {
      last_kind_ = ErrorKind::kConflict;
      return unavailable(fmt::format("{}: transaction conflict ({}): {}", what, code, msg));
    }
    last_kind_ = ErrorKind::kOther;
    if (code == "P0001") {
      // RAISE in a service function: its message is the error; the CONTEXT lines that follow
      // it in the full message name PL/pgSQL internals.
      const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
      return failed_precondition(
          fmt::format("{}: {}", what, primary != nullptr ? std::string(primary) : msg));
    }
    if (code == "23505") {
      return already_exists(fmt::format("{}: {}", what, msg));
    }
    if (code.starts_with("23")) {
      return failed_precondition(fmt::format("{}: {}", what, msg));
    }
    if (code.starts_with("42") || code.starts_with("22")) {
      return invalid_argument(fmt::format("{}: {}", what, msg));
    }
    if (code == "53100" || code == "53200") {
      return resource_exhausted(fmt::format("{}: {}", what, msg));
    }
    return internal_error(fmt::format("{}: {} (SQLSTATE {})", what, msg, code));
  }

  std::string conninfo_;
  const SqlLibrary* library_;
  std::string origin_;  // letters and digits only
  PGconn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;
  std::unordered_map<std::string, std::string> call_sql_;
  std::set<std::string> channels_;
  std::string call_key_;
  std::vector<std::string> texts_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  int next_stmt_ = 0;
  bool begin_pending_ = false;  // begin() ran; BEGIN goes out with the next statement
  std::string listener_token_;  // this connection's row in dbos_listener, once it LISTENs
  ErrorKind last_kind_ = ErrorKind::kNone;
};

}  // namespace

Result<std::unique_ptr<Connection>> open_pg_connection(const std::string& conninfo,
                                                       const SqlLibrary* library,
                                                       const std::string& origin) {
  auto conn = std::make_unique<PgConnection>(conninfo, library, origin);
  SLUICE_RETURN_IF_ERROR(conn->connect_once());
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace sluice::dbos
