#include "sluice/dbos/scheduler.h"

#include <fmt/format.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "dbos/service_util.h"

namespace sluice::dbos {
namespace {

Status check_scheduler(const Database& db, std::string_view name) {
  const auto& all = db.schedulers();
  if (std::find(all.begin(), all.end(), name) == all.end()) {
    return not_found(fmt::format("no scheduler '{}'; installed: {}", name, fmt::join(all, ", ")));
  }
  return {};
}

// The procedure that schedules one task: SQLite runs the scheduler's own file, sched_<name>;
// PostgreSQL's dbos_sched calls the scheduler's pick, dbos_pick_<name>, and records the task.
std::string schedule_procedure(const Session& s, std::string_view name) {
  return s.dialect() == Dialect::kPostgres ? std::string("sched") : fmt::format("sched_{}", name);
}

// One task through the scheduler; nullopt when it refused the task (no worker had capacity).
Result<std::optional<Assignment>> schedule_one(Session& s, const std::string& proc,
                                               std::string_view name, const TaskSpec& t) {
  Arg args[] = {
      {"p_key", t.p_key},
      {"task_id", t.task_id == 0 ? Value{} : Value{t.task_id}},
      {"priority", t.priority},
      {"payload", t.payload.empty() ? Value{} : Value{t.payload}},
      {"scheduler", std::string(name)},
      {"now_us", now_us()},
  };
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, s.call(proc, args));
  if (r.rows.empty()) {
    return std::optional<Assignment>();
  }
  const Row& row = r.rows[0];
  if (row.size() < 3) {
    return internal_error(
        fmt::format("scheduler '{}' returned {} columns; a scheduler returns "
                    "(task_id, p_key, worker_id)",
                    name, row.size()));
  }
  Assignment a;
  a.task_id = value_to_int(row[0]).value_or(0);
  a.p_key = value_to_int(row[1]).value_or(t.p_key);
  a.worker_id = value_to_int(row[2]);
  return std::optional<Assignment>(a);
}

}  // namespace

Status Scheduler::add_worker(const WorkerSpec& w) {
  if (w.capacity < 0) {
    return invalid_argument(
        fmt::format("worker {}: capacity {} is negative", w.worker_id, w.capacity));
  }
  Arg args[] = {{"worker_id", w.worker_id},
                {"p_key", w.p_key},
                {"capacity", w.capacity},
                {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->call("worker_upsert", args, true));
  if (!r.rows.empty()) {
    auto busy = value_to_int(r.rows[0][0]);
    if (busy && *busy > w.capacity) {
      return failed_precondition(
          fmt::format("worker {} runs {} tasks; it cannot shrink to capacity {}", w.worker_id,
                      *busy, w.capacity));
    }
  }
  return {};
}

Status Scheduler::remove_worker(int64_t worker_id) {
  Arg args[] = {{"worker_id", worker_id}, {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, session_->call("worker_remove", args, true));
  auto busy = r.rows.empty() ? std::nullopt : value_to_int(r.rows[0][0]);
  if (!busy) {
    return not_found(fmt::format("no worker {}", worker_id));
  }
  if (*busy > 0) {
    return failed_precondition(fmt::format(
        "worker {} still runs {} tasks; complete them before removing it", worker_id, *busy));
  }
  return {};
}

Result<Assignment> Scheduler::schedule(std::string_view name, const TaskSpec& task) {
  SLUICE_RETURN_IF_ERROR(check_scheduler(session_->database(), name));
  const std::string proc = schedule_procedure(*session_, name);
  // Idempotent only with a caller-chosen task id: a retry then hits the primary key.
  SLUICE_ASSIGN_OR_RETURN(std::optional<Assignment> a, schedule_one(*session_, proc, name, task));
  if (!a) {
    return resource_exhausted(
        fmt::format("no worker in partition {} has unused capacity", task.p_key));
  }
  return *a;
}

namespace {

// PostgreSQL: the whole batch in one call of dbos_sched_batch (one round trip, where a loop of
// calls is one per task). SQLite runs in-process, so the loop below costs no round trips there.
Result<std::vector<Assignment>> schedule_batch_in_one_call(Session& s, std::string_view name,
                                                           std::span<const TaskSpec> tasks) {
  nlohmann::json batch = nlohmann::json::array();
  for (const TaskSpec& t : tasks) {
    nlohmann::json e = {{"p_key", t.p_key}, {"priority", t.priority}};
    e["task_id"] = t.task_id == 0 ? nlohmann::json() : nlohmann::json(t.task_id);
    e["payload"] = t.payload.empty() ? nlohmann::json() : nlohmann::json(t.payload);
    batch.push_back(std::move(e));
  }
  Arg args[] = {{"scheduler", std::string(name)}, {"tasks", batch.dump()}, {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, s.call("sched_batch", args));
  std::vector<Assignment> out;
  out.reserve(tasks.size());
  for (const TaskSpec& t : tasks)
    out.push_back(Assignment{.task_id = t.task_id, .p_key = t.p_key, .worker_id = {}});
  for (const Row& row : r.rows) {
    if (row.size() < 4) {
      return internal_error(
          fmt::format("scheduler '{}' returned {} columns in a batch; a "
                      "scheduler returns (task_id, p_key, worker_id)",
                      name, row.size() - 1));
    }
    const int64_t pos = value_to_int(row[0]).value_or(0);
    if (pos < 1 || static_cast<size_t>(pos) > out.size()) {
      return internal_error(fmt::format("batch answer for element {} of {}", pos, out.size()));
    }
    Assignment& a = out[static_cast<size_t>(pos - 1)];
    a.task_id = value_to_int(row[1]).value_or(0);
    a.p_key = value_to_int(row[2]).value_or(a.p_key);
    a.worker_id = value_to_int(row[3]);
  }
  return out;
}

}  // namespace

Result<std::vector<Assignment>> Scheduler::schedule_batch(std::string_view name,
                                                          std::span<const TaskSpec> tasks) {
  SLUICE_RETURN_IF_ERROR(check_scheduler(session_->database(), name));
  if (session_->dialect() == Dialect::kPostgres) {
    return schedule_batch_in_one_call(*session_, name, tasks);
  }
  const std::string proc = schedule_procedure(*session_, name);
  std::vector<Assignment> out;
  SLUICE_RETURN_IF_ERROR(session_->transact([&]() -> Status {
    out.clear();
    out.reserve(tasks.size());
    for (const TaskSpec& t : tasks) {
      SLUICE_ASSIGN_OR_RETURN(std::optional<Assignment> a, schedule_one(*session_, proc, name, t));
      if (a) {
        out.push_back(*a);
      } else {
        out.push_back(Assignment{.task_id = t.task_id, .p_key = t.p_key, .worker_id = {}});
      }
    }
    return {};
  }));
  return out;
}

Result<Assignment> Scheduler::schedule_any(std::string_view name, TaskSpec task,
                                           int64_t partitions) {
  if (partitions <= 0) {
    return invalid_argument("schedule_any needs at least one partition");
  }
  const int64_t first = task.p_key;
  for (int64_t i = 0; i < partitions; ++i) {
    task.p_key = (first + i) % partitions;
    Result<Assignment> a = schedule(name, task);
    if (a.is_ok() || a.status().code() != StatusCode::kResourceExhausted) {
      return a;
    }
  }
  return resource_exhausted(
      fmt::format("no worker in any of the {} partitions has unused capacity", partitions));
}

namespace {

Result<std::optional<Assignment>> complete_one(Session& s, int64_t task_id) {
  Arg args[] = {{"task_id", task_id}, {"now_us", now_us()}};
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, s.call("task_complete", args));
  if (r.rows.empty() || std::holds_alternative<std::monostate>(r.rows[0][0])) {
    return not_found(fmt::format("no task {}", task_id));
  }
  const Row& row = r.rows[0];
  const std::string state = value_to_text(row[0]);
  if (state != "running") {
    return failed_precondition(
        fmt::format("task {} is {}, not running: only a running task completes", task_id, state));
  }
  auto next = value_to_int(row[1]);
  if (!next) {
    return std::optional<Assignment>();
  }
  return std::optional<Assignment>(Assignment{.task_id = *next,
                                              .p_key = value_to_int(row[3]).value_or(0),
                                              .worker_id = value_to_int(row[2])});
}

}  // namespace

Result<std::optional<Assignment>> Scheduler::complete(int64_t task_id) {
  return complete_one(*session_, task_id);
}

Result<std::vector<std::optional<Assignment>>> Scheduler::complete_batch(
    std::span<const int64_t> ids) {
  std::vector<std::optional<Assignment>> out;
  SLUICE_RETURN_IF_ERROR(session_->transact([&]() -> Status {
    out.clear();
    for (int64_t id : ids) {
      SLUICE_ASSIGN_OR_RETURN(auto a, complete_one(*session_, id));
      out.push_back(a);
    }
    return {};
  }));
  return out;
}

}  // namespace sluice::dbos
