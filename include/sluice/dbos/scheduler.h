// sluice::dbos::Scheduler — task scheduling as SQL over the Worker and Task tables (DBOS §4.2).
//
// Each scheduler is one SQL file per dialect (src/dbos/sql/<dialect>/sched_<name>.sql, or a file
// in the directory of the knob `dbos.scheduler_dir`): a new policy needs no C++ change. On SQLite
// the file holds the whole transaction; on PostgreSQL only the choice of worker, a function
// dbos_pick_<name> (docs/dbos.md, "The services as SQL"). Shipped:
//   fifo                 the first worker of the partition with spare capacity (paper Figure 2)
//   locality             the same, but a task that finds no capacity in its home partition waits
//                        there unassigned until capacity frees (Figure 3: deferred assignment)
//   least_loaded         the worker of the partition with the most spare capacity (Figure 4)
//   least_loaded_global  the same over all partitions (Figure 4 without `p_key = P`)
//
// Every call is one transaction: several schedulers (threads or processes) may run at once and no
// worker's capacity is ever assigned twice. complete() frees the task's unit of capacity and, in
// the same transaction, hands it to the oldest deferred task of that partition.
//
// Thread safety: a Scheduler uses its Session and belongs to the same thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {

struct WorkerSpec {
  int64_t worker_id = 0;
  int64_t p_key = 0;     // the partition the worker belongs to
  int64_t capacity = 1;  // runnable tasks at once
};

struct TaskSpec {
  int64_t task_id = 0;  // 0: the database assigns one
  int64_t p_key = 0;    // the partition to try (the home partition for `locality`)
  int64_t priority = 0;
  std::string payload;  // opaque, kept with the task for provenance
};

struct Assignment {
  int64_t task_id = 0;
  int64_t p_key = 0;                 // the partition the task now lives in
  std::optional<int64_t> worker_id;  // nullopt: deferred, waiting for capacity in p_key
};

class Scheduler {
 public:
  explicit Scheduler(Session& session) : session_(&session) {}

  // Adds or resizes a worker. The capacity it brings goes to the deferred tasks of its partition
  // first, oldest first. A shrink below the tasks it runs is refused (failed precondition).
  Status add_worker(const WorkerSpec& worker);
  // Removes an idle worker; not found if unknown, failed precondition while it runs tasks.
  Status remove_worker(int64_t worker_id);

  // Schedules one task with the scheduler `name`. Errors: not found (unknown scheduler),
  // resource exhausted (no worker of the partition has capacity and the policy does not defer),
  // already exists (task_id taken).
  Result<Assignment> schedule(std::string_view name, const TaskSpec& task);
  // Schedules tasks in one transaction (one commit; on PostgreSQL one call, dbos_sched_batch).
  // The answers are in the order of `tasks`; a task that finds no capacity is returned without
  // worker and is not recorded, unless the policy defers it.
  Result<std::vector<Assignment>> schedule_batch(std::string_view name,
                                                 std::span<const TaskSpec> tasks);
  // `fifo` as the paper runs it: try partitions from `first` round-robin until one has capacity.
  Result<Assignment> schedule_any(std::string_view name, TaskSpec task, int64_t partitions);

  // Marks a running task done and frees its capacity; returns the deferred task that took the
  // freed unit, if any. Not found for an unknown task, failed precondition if it is not running.
  Result<std::optional<Assignment>> complete(int64_t task_id);
  Result<std::vector<std::optional<Assignment>>> complete_batch(std::span<const int64_t> ids);

 private:
  Session* session_;
};

}  // namespace sluice::dbos
