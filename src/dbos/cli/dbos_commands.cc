// `sluice sql`, `sluice sched`, `sluice ipc` and the dbos step of `sluice demo`: the OS-state
// tables from the shell.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/table.h"
#include "sluice/cli/checks.h"
#include "sluice/cli/command.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/ipc.h"
#include "sluice/dbos/scheduler.h"

namespace sluice::dbos::cli {
namespace {

using sluice::cli::bind_action;
using sluice::cli::TextTable;

struct Opened {
  std::shared_ptr<Database> db;
  std::unique_ptr<Session> session;
};

Result<Opened> open_backend(const std::string& url) {
  SLUICE_ASSIGN_OR_RETURN(auto db, Database::open(url));
  SLUICE_ASSIGN_OR_RETURN(auto session, db->connect());
  return Opened{std::move(db), std::move(session)};
}

nlohmann::json to_json(const Value& v) {
  switch (v.index()) {
    case 0: return nullptr;
    case 1: return std::get<1>(v);
    case 2: return std::get<2>(v);
    case 3: return std::get<3>(v);
    default: return value_to_text(v);
  }
}

void print_result(const QueryResult& r, bool json) {
  if (json) {
    auto rows = nlohmann::json::array();
    for (const Row& row : r.rows) {
      nlohmann::json obj = nlohmann::json::object();
      for (size_t c = 0; c < r.columns.size(); ++c) {
        obj[r.columns[c]] = to_json(row[c]);
      }
      rows.push_back(std::move(obj));
    }
    std::printf("%s\n", rows.dump(2).c_str());
    return;
  }
  if (r.columns.empty()) {
    std::printf("ok (%lld rows changed)\n", static_cast<long long>(r.rows_changed));
    return;
  }
  TextTable table(r.columns);
  for (const Row& row : r.rows) {
    std::vector<std::string> cells;
    for (const Value& v : row) {
      cells.push_back(value_to_text(v));
    }
    table.add(std::move(cells));
  }
  table.print(stdout);
  std::printf("(%zu rows)\n", r.rows.size());
}

// True when `sql` holds more than one statement (a ';' followed by more than blanks).
bool is_script(const std::string& sql) {
  auto semi = sql.find(';');
  return semi != std::string::npos && sql.find_first_not_of(" \t\r\n;", semi) != std::string::npos;
}

// --- sluice sql ---

struct SqlOptions {
  std::string backend;
  std::string sql;
  bool json = false;
};

Status run_sql(const SqlOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  if (is_script(o.sql)) {
    // Several statements run as one script, in one transaction; a script returns no rows (run
    // a query alone to see them), and says so rather than print nothing.
    SLUICE_RETURN_IF_ERROR(op.session->execute_script(o.sql));
    if (o.json) {
      std::printf("{\"ok\": true, \"rows\": null}\n");
    } else {
      std::printf("ok (several statements run as a script; its rows are not shown)\n");
    }
    return {};
  }
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, op.session->query(o.sql));
  print_result(r, o.json);
  return {};
}

void setup_sql(CLI::App& cmd) {
  auto o = std::make_shared<SqlOptions>();
  cmd.add_option("sql", o->sql, "SQL over the OS-state tables (Task, Worker, Message, …)")
      ->required();
  cmd.add_flag("--json", o->json, "rows as a JSON array of objects");
  cmd.add_option("--backend", o->backend,
                 "sqlite:PATH or postgres://user@host:port/db (default: the knob dbos.backend, "
                 "else sqlite:<dbos.data_dir>/os.db)");
  bind_action(cmd, [o] { return run_sql(*o); });
}

// --- sluice sched ---

struct SchedOptions {
  std::string backend;
  std::string scheduler = "fifo";
  int64_t worker_id = 0;
  int64_t partition = 0;
  int64_t capacity = 1;
  int64_t count = 1;
  int64_t partitions = 0;
  std::string payload;
  std::vector<int64_t> tasks;
};

Status run_sched_list(const SchedOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  for (const auto& s : op.db->schedulers()) {
    std::printf("%s\n", s.c_str());
  }
  return {};
}

Status run_worker_add(const SchedOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Scheduler sched(*op.session);
  SLUICE_RETURN_IF_ERROR(
      sched.add_worker({.worker_id = o.worker_id, .p_key = o.partition, .capacity = o.capacity}));
  std::printf("worker %lld: partition %lld, capacity %lld\n", static_cast<long long>(o.worker_id),
              static_cast<long long>(o.partition), static_cast<long long>(o.capacity));
  return {};
}

Status run_worker_rm(const SchedOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Scheduler sched(*op.session);
  return sched.remove_worker(o.worker_id);
}

Status run_submit(const SchedOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Scheduler sched(*op.session);
  // All of them or none: a batch that fails half-way must not leave tasks running whose ids
  // were never printed.
  std::vector<Assignment> done;
  Status s = op.session->transact([&]() -> Status {
    done.clear();  // a retried transaction starts over
    for (int64_t i = 0; i < o.count; ++i) {
      TaskSpec t{.task_id = 0, .p_key = o.partition, .priority = 0, .payload = o.payload};
      Result<Assignment> a = o.partitions > 0 ? sched.schedule_any(o.scheduler, t, o.partitions)
                                              : sched.schedule(o.scheduler, t);
      SLUICE_RETURN_IF_ERROR(a.status());
      done.push_back(*a);
    }
    return {};
  });
  if (!s.is_ok() && o.count > 1) {
    return s.with_context(fmt::format("none of the {} tasks was submitted", o.count));
  }
  SLUICE_RETURN_IF_ERROR(s);
  TextTable table({"task", "partition", "worker"});
  for (const Assignment& a : done) {
    table.add({std::to_string(a.task_id), std::to_string(a.p_key),
               a.worker_id ? std::to_string(*a.worker_id) : "deferred"});
  }
  table.print(stdout);
  return {};
}

Status run_complete(const SchedOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Scheduler sched(*op.session);
  for (int64_t id : o.tasks) {
    SLUICE_ASSIGN_OR_RETURN(auto next, sched.complete(id));
    if (next) {
      std::printf("task %lld done; deferred task %lld now runs on worker %lld\n",
                  static_cast<long long>(id), static_cast<long long>(next->task_id),
                  static_cast<long long>(next->worker_id.value_or(0)));
    } else {
      std::printf("task %lld done\n", static_cast<long long>(id));
    }
  }
  return {};
}

Status run_sched_status(const SchedOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  SLUICE_ASSIGN_OR_RETURN(QueryResult r,
                          op.session->query("SELECT * FROM WorkerLoad ORDER BY p_key, worker_id"));
  print_result(r, false);
  return {};
}

void setup_sched(CLI::App& cmd) {
  auto o = std::make_shared<SchedOptions>();
  cmd.add_option("--backend", o->backend, "sqlite:PATH or postgres://… (default: dbos.backend)");
  cmd.require_subcommand(1);
  auto* list = cmd.add_subcommand("list", "The schedulers installed (one SQL file each)");
  bind_action(*list, [o] { return run_sched_list(*o); });
  auto* worker = cmd.add_subcommand("worker", "Add, resize or remove a worker");
  worker->require_subcommand(1);
  auto* add = worker->add_subcommand("add", "Add or resize a worker");
  add->add_option("id", o->worker_id, "worker id")->required();
  add->add_option("--partition,-p", o->partition, "its partition (p_key)");
  add->add_option("--capacity,-c", o->capacity, "runnable tasks at once")
      ->check(sluice::cli::at_least(0));
  bind_action(*add, [o] { return run_worker_add(*o); });
  auto* rm = worker->add_subcommand("rm", "Remove an idle worker");
  rm->add_option("id", o->worker_id, "worker id")->required();
  bind_action(*rm, [o] { return run_worker_rm(*o); });
  auto* submit = cmd.add_subcommand("submit", "Schedule tasks");
  submit->add_option("--scheduler,-s", o->scheduler, "scheduler (`sluice sched list`)");
  submit->add_option("--partition,-p", o->partition, "partition to try (home partition)");
  submit->add_option("--partitions", o->partitions,
                     "try partitions round-robin over this many until one has capacity");
  submit->add_option("--count,-n", o->count, "how many tasks (all or none are submitted)")
      ->check(sluice::cli::at_least(1));
  submit->add_option("--payload", o->payload, "kept with each task");
  bind_action(*submit, [o] { return run_submit(*o); });
  auto* complete = cmd.add_subcommand("complete", "Mark running tasks done");
  complete->add_option("tasks", o->tasks, "task ids")->required();
  bind_action(*complete, [o] { return run_complete(*o); });
  auto* status = cmd.add_subcommand("status", "Workers, their load and deferred tasks");
  bind_action(*status, [o] { return run_sched_status(*o); });
}

// --- sluice ipc ---

struct IpcOptions {
  std::string backend;
  int64_t id = 0;
  std::string name;
  int64_t from = 0;
  std::vector<int64_t> to;
  std::string message;
  int64_t message_id = 0;
  int max = 16;
  int64_t timeout_ms = 0;
  bool json = false;
};

Status run_endpoint(const IpcOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Ipc ipc(*op.session);
  return ipc.create_endpoint(o.id, o.name);
}

Status run_send(const IpcOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Ipc ipc(*op.session);
  if (o.to.size() > 1) {
    return ipc.multicast(o.from, o.to, o.message);
  }
  std::optional<int64_t> id;
  if (o.message_id > 0) {
    id = o.message_id;
  }
  SLUICE_ASSIGN_OR_RETURN(SendOutcome out, ipc.send(o.from, o.to.at(0), o.message, id));
  if (out == SendOutcome::kDuplicate) {
    std::printf("duplicate: message id %lld was already sent from %lld to %lld; dropped\n",
                static_cast<long long>(o.message_id), static_cast<long long>(o.from),
                static_cast<long long>(o.to[0]));
  }
  return {};
}

Status run_recv(const IpcOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Opened op, open_backend(o.backend));
  Ipc ipc(*op.session);
  Result<std::vector<Message>> got =
      o.timeout_ms > 0 ? ipc.recv(o.id, o.max, std::chrono::milliseconds(o.timeout_ms))
                       : ipc.try_recv(o.id, o.max);
  SLUICE_RETURN_IF_ERROR(got.status());
  QueryResult r;
  r.columns = {"sender_id", "message_id", "data"};
  for (const Message& m : *got) {
    r.rows.push_back({m.sender_id, m.message_id, m.data});
  }
  print_result(r, o.json);
  return {};
}

void setup_ipc(CLI::App& cmd) {
  auto o = std::make_shared<IpcOptions>();
  cmd.add_option("--backend", o->backend, "sqlite:PATH or postgres://… (default: dbos.backend)");
  cmd.require_subcommand(1);
  auto* ep = cmd.add_subcommand("endpoint", "Create (or rename) an endpoint");
  ep->add_option("id", o->id, "endpoint id")->required();
  ep->add_option("--name", o->name, "a name for it");
  bind_action(*ep, [o] { return run_endpoint(*o); });
  auto* send = cmd.add_subcommand("send", "Send a message (to several receivers: multicast)");
  send->add_option("--from", o->from, "sender endpoint")->required();
  send->add_option("--to", o->to, "receiver endpoint(s)")->required()->delimiter(',');
  send->add_option("--id", o->message_id,
                   "message id (a repeated id is dropped as duplicate; 0: the pair's next)")
      ->check(sluice::cli::at_least(0));
  send->add_option("message", o->message, "the message")->required();
  bind_action(*send, [o] { return run_send(*o); });
  auto* recv = cmd.add_subcommand("recv", "Take messages (waits with --timeout-ms)");
  recv->add_option("id", o->id, "receiver endpoint")->required();
  recv->add_option("--max", o->max, "at most this many")->check(sluice::cli::at_least(1));
  recv->add_option("--timeout-ms", o->timeout_ms, "wait up to this long for a message")
      ->check(sluice::cli::at_least(0));
  recv->add_flag("--json", o->json, "as JSON");
  bind_action(*recv, [o] { return run_recv(*o); });
}

SLUICE_REGISTER_COMMAND(sql, {.name = "sql",
                              .help = "Run SQL over the OS-state tables (table or --json)",
                              .order = 40,
                              .setup = setup_sql});
SLUICE_REGISTER_COMMAND(sched, {.name = "sched",
                                .help = "Schedulers as SQL: workers, tasks, completion",
                                .order = 41,
                                .setup = setup_sched});
SLUICE_REGISTER_COMMAND(ipc, {.name = "ipc",
                              .help = "IPC through the Message table: endpoints, send, recv",
                              .order = 42,
                              .setup = setup_ipc});

// --- sluice demo ---

Status run_demo(sluice::cli::DemoContext& ctx) {
  char tmpl[] = "/tmp/sluice-dbos-demo-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return errno_status(errno, "mkdtemp for the dbos demo");
  }
  const std::string dir = tmpl;
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  } cleanup{dir};
  SLUICE_ASSIGN_OR_RETURN(auto db, Database::open("sqlite:" + dir + "/os.db"));
  SLUICE_ASSIGN_OR_RETURN(auto session, db->connect());
  std::fprintf(ctx.out, "   schema v%d on %s; schedulers: %s\n", db->schema_version(),
               db->url().c_str(), fmt::format("{}", fmt::join(db->schedulers(), ", ")).c_str());
  Scheduler sched(*session);
  for (int64_t w = 0; w < 4; ++w) {
    SLUICE_RETURN_IF_ERROR(sched.add_worker({.worker_id = w + 1, .p_key = w % 2, .capacity = 2}));
  }
  const int n = ctx.quick ? 6 : 12;
  std::vector<int64_t> running;
  int deferred = 0;
  for (int i = 0; i < n; ++i) {
    SLUICE_ASSIGN_OR_RETURN(Assignment a, sched.schedule("locality", {.p_key = i % 2}));
    if (a.worker_id) {
      running.push_back(a.task_id);
    } else {
      ++deferred;
    }
  }
  std::fprintf(ctx.out, "   locality scheduler: %zu tasks on 4 workers (capacity 8), %d deferred\n",
               running.size(), deferred);
  int handed = 0;
  for (int64_t id : running) {
    SLUICE_ASSIGN_OR_RETURN(auto next, sched.complete(id));
    handed += next ? 1 : 0;
  }
  std::fprintf(ctx.out, "   completing them handed %d freed slots to deferred tasks\n", handed);

  // IPC: a receiver thread blocks in recv (a futex, no polling) and echoes every message back.
  Ipc ipc(*session);
  SLUICE_RETURN_IF_ERROR(ipc.create_endpoint(1, "client"));
  SLUICE_RETURN_IF_ERROR(ipc.create_endpoint(2, "echo"));
  Status echo_status;
  const int rounds = ctx.quick ? 50 : 200;
  std::thread echo([&] {
    auto s = db->connect();
    if (!s.is_ok()) {
      echo_status = s.status();
      return;
    }
    Ipc rx(**s);
    for (int i = 0; i < rounds; ++i) {
      auto m = rx.recv(2, 1, std::chrono::seconds(10));
      if (!m.is_ok()) {
        echo_status = m.status();
        return;
      }
      auto sent = rx.send(2, 1, (*m)[0].data);
      if (!sent.is_ok()) {
        echo_status = sent.status();
        return;
      }
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  Status ping_status;
  for (int i = 0; i < rounds && ping_status.is_ok(); ++i) {
    auto sent = ipc.send(1, 2, fmt::format("ping {}", i));
    if (!sent.is_ok()) {
      ping_status = sent.status();
      break;
    }
    auto back = ipc.recv(1, 1, std::chrono::seconds(10));
    if (!back.is_ok()) {
      ping_status = back.status();
    } else if ((*back)[0].data != fmt::format("ping {}", i)) {
      ping_status = data_loss("the echo came back out of order");
    }
  }
  echo.join();
  SLUICE_RETURN_IF_ERROR(ping_status);
  SLUICE_RETURN_IF_ERROR(echo_status);
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      rounds;
  std::fprintf(ctx.out, "   IPC ping-pong through the Message table: %d rounds, %.1f us a round\n",
               rounds, us);
  SLUICE_ASSIGN_OR_RETURN(
      QueryResult r,
      session->query("SELECT state, count(*) AS tasks, max(wait_us) AS max_wait_us FROM "
                     "TaskHistory GROUP BY state ORDER BY state"));
  std::fprintf(ctx.out, "   the task history is a table (sluice sql):\n");
  for (const Row& row : r.rows) {
    std::fprintf(ctx.out, "     %-8s %4s tasks, longest wait %s us\n",
                 value_to_text(row[0]).c_str(), value_to_text(row[1]).c_str(),
                 value_to_text(row[2]).c_str());
  }
  return {};
}

SLUICE_REGISTER_DEMO_STEP(dbos, {.name = "dbos",
                                 .summary = "OS state as tables: SQL schedulers and IPC on SQLite",
                                 .order = 40,
                                 .run = run_demo});

}  // namespace
}  // namespace sluice::dbos::cli
