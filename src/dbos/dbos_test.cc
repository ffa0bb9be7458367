// The shared dbos suite: schedulers, IPC semantics (crash recovery included) and bad input. The
// same tests run on SQLite (dbos_test, label unit) and on a PostgreSQL server the binary starts
// itself (dbos_pg_test, label server).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "dbos/connection.h"
#include "dbos/group_commit.h"
#include "dbos/notify_hub.h"
#include "dbos/wake.h"
#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/ipc.h"
#include "sluice/dbos/scheduler.h"
#include "sluice/dbos/testing/pg_server.h"

namespace sluice::dbos {
namespace {

namespace fs = std::filesystem;

// One server per test process (ctest runs each test in its own process).
testing::PgServer* pg_server() {
  static testing::PgServer* server = [] {
    auto* s = new testing::PgServer();
    Status st = s->start("fsync = off\nsynchronous_commit = off");
    if (!st.is_ok()) {
      ADD_FAILURE() << st.to_string();
    }
    return s;
  }();
  return server;
}

class DbosTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override {
    KnobRegistry::global().reset_for_testing();
    char tmpl[] = "/tmp/sluice-dbos-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (GetParam() == Dialect::kPostgres) {
      testing::PgServer* s = pg_server();
      ASSERT_TRUE(s->running());
      url_ = s->url();
      // A clean schema for every test.
      auto db = reset_pg();
      ASSERT_TRUE(db.is_ok()) << db.to_string();
    } else {
      url_ = "sqlite:" + dir_ + "/os.db";
    }
    auto db = Database::open(url_);
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    db_ = *db;
    auto s = db_->connect();
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    session_ = std::move(*s);
  }
  void TearDown() override {
    session_.reset();
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    KnobRegistry::global().reset_for_testing();
  }

  Status reset_pg() {
    // A bare connection: opening a Database would migrate (and refuse a future schema).
    SLUICE_ASSIGN_OR_RETURN(auto conn, open_pg_connection(url_, nullptr));
    return conn->execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
  }

  std::unique_ptr<Session> new_session() {
    auto s = db_->connect();
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return std::move(*s);
  }

  int64_t scalar(const std::string& sql) {
    auto r = session_->query(sql);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok() || r->rows.empty()) {
      return -1;
    }
    return value_to_int(r->rows[0][0]).value_or(-1);
  }

  std::string dir_;
  std::string url_;
  std::shared_ptr<Database> db_;
  std::unique_ptr<Session> session_;
};

// --- schema ---

TEST_P(DbosTest, OpenMigratesToTheLatestVersionAndReopenIsIdempotent) {
  // Version 3 keys Message by receiver on SQLite and records the listeners on PostgreSQL;
  // SQLite's version 4 keeps large payloads in the payload log.
  const int latest = db_->dialect() == Dialect::kSqlite ? 4 : 3;
  EXPECT_EQ(db_->schema_version(), latest);
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_schema"), latest);
  auto again = Database::open(url_);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ((*again)->schema_version(), latest);
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_schema"), latest);
  const std::vector<std::string> want = {"fifo", "least_loaded", "least_loaded_global", "locality"};
  EXPECT_EQ(db_->schedulers(), want);
}

TEST_P(DbosTest, AnOldSchemaIsMigratedForward) {
  // Back to version 1: version 2 made the views, PostgreSQL's version 3 the listeners' table,
  // SQLite's version 4 the view MessageData.
  ASSERT_TRUE(session_
                  ->execute_script("DROP VIEW TaskHistory; DROP VIEW WorkerLoad; DROP VIEW "
                                   "Mailbox; DELETE FROM dbos_schema WHERE version >= 2;")
                  .is_ok());
  if (db_->dialect() == Dialect::kSqlite) {
    ASSERT_TRUE(session_->execute_script("DROP VIEW MessageData").is_ok());
  }
  if (db_->dialect() == Dialect::kPostgres) {
    ASSERT_TRUE(session_->execute_script("DROP TABLE dbos_listener").is_ok());
  }
  auto again = Database::open(url_);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(scalar("SELECT max(version) FROM dbos_schema"), (*again)->schema_version());
  EXPECT_EQ(scalar("SELECT count(*) FROM WorkerLoad"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM Mailbox"), 0);
}

TEST_P(DbosTest, MessagesQueuedUnderVersionTwoArriveInOrderAfterTheMigration) {
  if (db_->dialect() != Dialect::kSqlite) {
    GTEST_SKIP() << "version 3 is SQLite's";
  }
  Ipc ipc(*session_);
  for (int64_t e : {1, 2, 3}) {
    ASSERT_TRUE(ipc.create_endpoint(e).is_ok());
  }
  // Put the table back as version 2 had it (rows by a global seq, a second B-tree by receiver)
  // with messages for two receivers interleaved, then open again.
  ASSERT_TRUE(session_
                  ->execute_script(
                      "DROP VIEW Mailbox; DROP VIEW MessageData; DROP TABLE Message;"
                      "CREATE TABLE Message (seq INTEGER PRIMARY KEY, receiver_id INTEGER NOT "
                      "NULL, sender_id INTEGER NOT NULL, message_id INTEGER NOT NULL, data BLOB "
                      "NOT NULL, sent_us INTEGER NOT NULL);"
                      "CREATE INDEX message_by_receiver ON Message (receiver_id, seq);"
                      "CREATE VIEW Mailbox AS SELECT receiver_id, count(*) AS messages, "
                      "sum(length(data)) AS bytes, min(sent_us) AS oldest_us FROM Message "
                      "GROUP BY receiver_id;"
                      "INSERT INTO Message VALUES (10, 2, 1, 1, x'61', 0), (11, 3, 1, 1, x'78', 0),"
                      " (12, 2, 1, 2, x'62', 0), (13, 2, 3, 1, x'63', 0), (14, 3, 1, 2, x'79', 0);"
                      "INSERT INTO Channel VALUES (1, 2, 2), (1, 3, 2), (3, 2, 1);"
                      "DELETE FROM dbos_schema WHERE version >= 3;")
                  .is_ok());
  auto again = Database::open(url_);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ((*again)->schema_version(), 4);
  auto s = (*again)->connect();
  ASSERT_TRUE(s.is_ok());
  Ipc after(**s);
  // New messages queue behind the old ones, one of them multicast to receiver 2 twice.
  ASSERT_TRUE(after.send(1, 2, "d").is_ok());
  const int64_t twice[] = {2, 3, 2};
  ASSERT_TRUE(after.multicast(3, twice, "e").is_ok());
  auto got = after.try_recv(2, 10);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  std::string order;
  for (const auto& m : *got) {
    order += m.data;
  }
  EXPECT_EQ(order, "abcdee");
  auto other = after.try_recv(3, 10);
  ASSERT_TRUE(other.is_ok());
  order.clear();
  for (const auto& m : *other) {
    order += m.data;
  }
  EXPECT_EQ(order, "xye");
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
}

// Transactions at their edges (on PostgreSQL BEGIN travels with the first statement): one that
// runs nothing commits; one whose first statement fails leaves nothing and the session works on;
// one whose second statement fails takes its first back with it; a script may open one.
TEST_P(DbosTest, TransactionsThatFailAtTheirFirstOrLaterStatementLeaveNothing) {
  ASSERT_TRUE(session_->execute_script("CREATE TABLE edge (k bigint PRIMARY KEY)").is_ok());
  EXPECT_TRUE(session_->transact([] { return Status{}; }).is_ok());
  Status first = session_->transact(
      [&]() -> Status { return session_->query("INSERT INTO no_such_table VALUES (1)").status(); });
  EXPECT_FALSE(first.is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM edge"), 0);
  Status second = session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(session_->query("INSERT INTO edge VALUES (1)").status());
    return session_->query("INSERT INTO edge VALUES (1)").status();  // the key again
  });
  EXPECT_EQ(second.code(), StatusCode::kAlreadyExists) << second.to_string();
  EXPECT_EQ(scalar("SELECT count(*) FROM edge"), 0);
  EXPECT_TRUE(session_
                  ->transact([&]() -> Status {
                    SLUICE_RETURN_IF_ERROR(session_->execute_script("INSERT INTO edge VALUES (2)"));
                    return session_->query("INSERT INTO edge VALUES (3)").status();
                  })
                  .is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM edge"), 2);
  Status late = session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(session_->query("INSERT INTO edge VALUES (4)").status());
    return invalid_argument("the caller changed its mind");
  });
  EXPECT_EQ(late.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(scalar("SELECT count(*) FROM edge"), 2);
}

TEST_P(DbosTest, ANewerSchemaIsRefused) {
  ASSERT_TRUE(session_->execute_script("INSERT INTO dbos_schema VALUES (99, 'future', 0)").is_ok());
  auto again = Database::open(url_);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("99"), std::string::npos);
}

// --- schedulers ---

TEST_P(DbosTest, FifoFillsCapacityThenRefusesUntilATaskCompletes) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = 2}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 2, .p_key = 0, .capacity = 2}).is_ok());
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) {
    auto a = sched.schedule("fifo", {.p_key = 0});
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    ASSERT_TRUE(a->worker_id.has_value());
    ids.push_back(a->task_id);
  }
  auto full = sched.schedule("fifo", {.p_key = 0});
  ASSERT_FALSE(full.is_ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(scalar("SELECT sum(unused_capacity) FROM Worker"), 0);
  auto done = sched.complete(ids[0]);
  ASSERT_TRUE(done.is_ok()) << done.status().to_string();
  EXPECT_FALSE(done->has_value());
  EXPECT_EQ(scalar("SELECT sum(unused_capacity) FROM Worker"), 1);
  EXPECT_TRUE(sched.schedule("fifo", {.p_key = 0}).is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'done' AND finished_us IS NOT NULL"),
            1);
}

TEST_P(DbosTest, FifoTriesOtherPartitions) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = 1}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 2, .p_key = 2, .capacity = 1}).is_ok());
  auto a = sched.schedule_any("fifo", {.p_key = 0}, 3);
  auto b = sched.schedule_any("fifo", {.p_key = 0}, 3);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->p_key, 0);
  EXPECT_EQ(b->p_key, 2);
  EXPECT_EQ(sched.schedule_any("fifo", {.p_key = 1}, 3).status().code(),
            StatusCode::kResourceExhausted);
}

TEST_P(DbosTest, LocalityDefersAndAssignsWhenCapacityFrees) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 7, .p_key = 3, .capacity = 1}).is_ok());
  auto first = sched.schedule("locality", {.p_key = 3});
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(first->worker_id, 7);
  auto second = sched.schedule("locality", {.p_key = 3, .payload = "waits"});
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  EXPECT_FALSE(second->worker_id.has_value());
  auto third = sched.schedule("locality", {.p_key = 3});
  ASSERT_TRUE(third.is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'deferred'"), 2);
  auto freed = sched.complete(first->task_id);
  ASSERT_TRUE(freed.is_ok()) << freed.status().to_string();
  ASSERT_TRUE(freed->has_value());
  EXPECT_EQ((*freed)->task_id, second->task_id);  // the oldest deferred task goes first
  EXPECT_EQ((*freed)->worker_id, 7);
  EXPECT_EQ(scalar("SELECT unused_capacity FROM Worker WHERE worker_id = 7"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM TaskHistory WHERE wait_us IS NOT NULL"), 2);
}

// Capacity that appears, a new worker or a larger one, goes to the deferred tasks of its
// partition first, oldest first, as a completion's freed unit does.
TEST_P(DbosTest, AWorkerAddedOrGrownTakesTheDeferredTasksOfItsPartition) {
  Scheduler sched(*session_);
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto a = sched.schedule("locality", {.p_key = 4});  // no worker there yet: deferred
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_FALSE(a->worker_id.has_value());
    ids.push_back(a->task_id);
  }
  ASSERT_TRUE(sched.schedule("locality", {.p_key = 5}).is_ok());  // another partition's
  ASSERT_TRUE(sched.add_worker({.worker_id = 9, .p_key = 4, .capacity = 2}).is_ok());
  EXPECT_EQ(scalar(fmt::format("SELECT count(*) FROM Task WHERE state = 'running' AND "
                               "worker_id = 9 AND assigned_us IS NOT NULL AND task_id IN ({}, {})",
                               ids[0], ids[1])),
            2);
  EXPECT_EQ(scalar(fmt::format("SELECT count(*) FROM Task WHERE state = 'deferred' AND "
                               "task_id = {}",
                               ids[2])),
            1);
  EXPECT_EQ(scalar("SELECT unused_capacity FROM Worker WHERE worker_id = 9"), 0);
  ASSERT_TRUE(sched.add_worker({.worker_id = 9, .p_key = 4, .capacity = 4}).is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'running' AND worker_id = 9"), 3);
  EXPECT_EQ(scalar("SELECT unused_capacity FROM Worker WHERE worker_id = 9"), 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'deferred' AND p_key = 5"), 1);
  // A refused shrink hands nothing out and changes nothing.
  EXPECT_EQ(sched.add_worker({.worker_id = 9, .p_key = 4, .capacity = 1}).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(scalar("SELECT capacity FROM Worker WHERE worker_id = 9"), 4);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'running'"), 3);
}

// Partition keys are 64-bit on both engines: deferral, a worker's arrival and completion all
// work for a key beyond 32 bits.
TEST_P(DbosTest, PartitionKeysBeyondThirtyTwoBitsScheduleDeferAndComplete) {
  constexpr int64_t kBig = int64_t{5'000'000'000};
  Scheduler sched(*session_);
  auto waiting = sched.schedule("locality", {.p_key = kBig});
  ASSERT_TRUE(waiting.is_ok()) << waiting.status().to_string();
  EXPECT_FALSE(waiting->worker_id.has_value());
  Status added = sched.add_worker({.worker_id = 3, .p_key = kBig, .capacity = 1});
  ASSERT_TRUE(added.is_ok()) << added.to_string();
  EXPECT_EQ(scalar(fmt::format("SELECT worker_id FROM Task WHERE task_id = {}", waiting->task_id)),
            3);
  auto done = sched.complete(waiting->task_id);
  ASSERT_TRUE(done.is_ok()) << done.status().to_string();
  EXPECT_EQ(scalar("SELECT unused_capacity FROM Worker WHERE worker_id = 3"), 1);
}

TEST_P(DbosTest, LeastLoadedPicksTheWorkerWithMostUnusedCapacity) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = 2}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 2, .p_key = 0, .capacity = 5}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 3, .p_key = 1, .capacity = 9}).is_ok());
  auto a = sched.schedule("least_loaded", {.p_key = 0});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->worker_id, 2);
  auto g = sched.schedule("least_loaded_global", {.p_key = 0});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->worker_id, 3);
  EXPECT_EQ(g->p_key, 1);  // the task moved to the worker's partition
}

// A worker resized while its tasks complete and deferred tasks wait: every unit of capacity is
// either free or held by exactly one running task, and no task waits while a unit is free.
TEST_P(DbosTest, ResizesAndCompletionsAtOnceKeepTheCapacityAccountExact) {
  Scheduler setup(*session_);
  ASSERT_TRUE(setup.add_worker({.worker_id = 1, .p_key = 0, .capacity = 4}).is_ok());
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(setup.schedule("locality", {.p_key = 0}).is_ok());  // 4 run, 36 wait
  }
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::thread resizer([&] {
    auto s = db_->connect();
    if (!s.is_ok()) {
      ++errors;
      return;
    }
    Scheduler sched(**s);
    for (int64_t c = 5; !stop.load(); c = c == 8 ? 5 : c + 1) {
      Status st = sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = c});
      if (!st.is_ok() && st.code() != StatusCode::kFailedPrecondition) {  // a shrink refused
        ADD_FAILURE() << st.to_string();
        ++errors;
        return;
      }
    }
  });
  Scheduler sched(*session_);
  for (int done = 0; done < 30;) {
    auto running = scalar(
        "SELECT coalesce(min(task_id), 0) FROM Task WHERE state = 'running' AND worker_id = 1");
    if (errors.load() != 0) {
      break;  // the resizer failed; join it below
    }
    if (running == 0) {
      continue;  // every unit is between a resize and its deferred task
    }
    auto c = sched.complete(running);
    if (!c.is_ok()) {
      ADD_FAILURE() << c.status().to_string();
      break;
    }
    ++done;
  }
  stop = true;
  resizer.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'done'"), 30);
  EXPECT_EQ(scalar("SELECT capacity - unused_capacity FROM Worker WHERE worker_id = 1"),
            scalar("SELECT count(*) FROM Task WHERE state = 'running' AND worker_id = 1"));
  const bool waiting = scalar("SELECT count(*) FROM Task WHERE state = 'deferred'") > 0;
  const bool free = scalar("SELECT unused_capacity FROM Worker WHERE worker_id = 1") > 0;
  EXPECT_FALSE(waiting && free);
}

TEST_P(DbosTest, ConcurrentSchedulersNeverDoubleAssignCapacity) {
  Scheduler setup(*session_);
  int64_t total = 0;
  for (int w = 0; w < 8; ++w) {
    ASSERT_TRUE(setup.add_worker({.worker_id = w + 1, .p_key = w % 4, .capacity = 5}).is_ok());
    total += 5;
  }
  std::atomic<int64_t> assigned{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto s = db_->connect();
      if (!s.is_ok()) {
        ++errors;
        return;
      }
      Scheduler sched(**s);
      const char* names[] = {"fifo", "least_loaded", "fifo", "least_loaded_global"};
      for (;;) {
        auto a = sched.schedule_any(names[t], {.p_key = t}, 4);
        if (!a.is_ok()) {
          if (a.status().code() != StatusCode::kResourceExhausted) {
            ADD_FAILURE() << a.status().to_string();
            ++errors;
          }
          return;
        }
        ++assigned;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(assigned.load(), total);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'running'"), total);
  EXPECT_EQ(scalar("SELECT sum(unused_capacity) FROM Worker"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM Worker w WHERE capacity <> (SELECT count(*) FROM Task t "
                   "WHERE t.worker_id = w.worker_id AND t.state = 'running')"),
            0);
}

TEST_P(DbosTest, BatchSchedulingAndCompletionAreOneTransactionEach) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = 100}).is_ok());
  std::vector<TaskSpec> tasks(50, TaskSpec{.p_key = 0});
  auto r = sched.schedule_batch("fifo", tasks);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 50u);
  std::vector<int64_t> ids;
  for (const auto& a : *r) {
    ASSERT_TRUE(a.worker_id.has_value());
    ids.push_back(a.task_id);
  }
  auto c = sched.complete_batch(ids);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(scalar("SELECT unused_capacity FROM Worker"), 100);
}

// Each element of a batch keeps its own id, priority and payload, and an element no worker could
// take comes back without a worker, in its place (PostgreSQL runs the batch as one call).
TEST_P(DbosTest, ABatchAnswersEveryElementInOrder) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 7, .p_key = 0, .capacity = 3}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 8, .p_key = 1, .capacity = 1}).is_ok());
  const std::string odd = "quote \" back\\slash {} [] ünï\n";
  std::vector<TaskSpec> tasks = {
      {.task_id = 9001, .p_key = 0, .priority = 5, .payload = odd},
      {.p_key = 1},
      {.p_key = 1},  // partition 1 is full by now
      {.p_key = 0},
      {.p_key = 0},
      {.p_key = 0},  // partition 0 too
  };
  auto r = sched.schedule_batch("fifo", tasks);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), tasks.size());
  const std::vector<std::optional<int64_t>> want = {7, 8, std::nullopt, 7, 7, std::nullopt};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*r)[i].worker_id, want[i]) << "element " << i;
    EXPECT_EQ((*r)[i].p_key, tasks[i].p_key) << "element " << i;
  }
  EXPECT_EQ((*r)[0].task_id, 9001);
  EXPECT_EQ(scalar("SELECT priority FROM Task WHERE task_id = 9001"), 5);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE task_id = 9001 AND payload = '" +
                   std::string("quote \" back\\slash {} [] ünï\n") + "'"),
            1);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task"), 4);
  EXPECT_EQ(scalar("SELECT sum(unused_capacity) FROM Worker"), 0);
  auto unknown = sched.schedule_batch("no_such", tasks);
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
}

// A batch records each task as its scheduler decided, in the batch's order: deferred in its own
// partition (locality), or moved to its worker's partition (global least-loaded).
TEST_P(DbosTest, ABatchDefersAndMovesTasksAsItsSchedulerSays) {
  Scheduler sched(*session_);
  ASSERT_TRUE(sched.add_worker({.worker_id = 7, .p_key = 0, .capacity = 1}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 8, .p_key = 1, .capacity = 2}).is_ok());
  std::vector<TaskSpec> local = {{.p_key = 0}, {.p_key = 0}, {.task_id = 5000, .p_key = 0}};
  auto r = sched.schedule_batch("locality", local);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].worker_id, 7);
  EXPECT_FALSE((*r)[1].worker_id.has_value());
  EXPECT_FALSE((*r)[2].worker_id.has_value());
  EXPECT_EQ((*r)[2].task_id, 5000);
  EXPECT_NE((*r)[1].task_id, 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE state = 'deferred' AND p_key = 0 AND "
                   "worker_id IS NULL AND assigned_us IS NULL"),
            2);
  auto freed = sched.complete((*r)[0].task_id);
  ASSERT_TRUE(freed.is_ok()) << freed.status().to_string();
  ASSERT_TRUE(freed->has_value());
  EXPECT_EQ((*freed)->task_id, (*r)[1].task_id);  // the batch's order is the tasks' age
  std::vector<TaskSpec> global = {{.p_key = 0}, {.p_key = 0}, {.p_key = 0}};
  auto g = sched.schedule_batch("least_loaded_global", global);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_EQ(g->size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*g)[i].worker_id, 8) << "element " << i;
    EXPECT_EQ((*g)[i].p_key, 1) << "element " << i;
  }
  EXPECT_FALSE((*g)[2].worker_id.has_value());  // refused, not deferred
  EXPECT_EQ(scalar("SELECT count(*) FROM Task WHERE worker_id = 8 AND p_key = 1 AND "
                   "state = 'running'"),
            2);
  EXPECT_EQ(scalar("SELECT count(*) FROM Task"), 5);
}

TEST_P(DbosTest, ANewSchedulerIsOneSqlFileAndNoRebuild) {
  const fs::path dir = fs::path(dir_) / "schedulers" / std::string(dialect_name(GetParam()));
  fs::create_directories(dir);
  std::ofstream f(dir / "sched_highest_id.sql");
  if (GetParam() == Dialect::kSqlite) {
    f << "SELECT worker_id FROM Worker WHERE p_key = :p_key AND unused_capacity > 0\n"
         "ORDER BY worker_id DESC LIMIT 1;\n"
         "UPDATE Worker SET unused_capacity = unused_capacity - 1 WHERE worker_id = :worker_id;\n"
         "INSERT INTO Task (task_id, p_key, worker_id, state, priority, scheduler, created_us)\n"
         "SELECT :task_id, :p_key, :worker_id, 'running', :priority, :scheduler, :now_us\n"
         "WHERE :worker_id IS NOT NULL RETURNING task_id, p_key, worker_id;\n";
  } else {
    f << "CREATE OR REPLACE FUNCTION dbos_pick_highest_id(want_p_key bigint, OUT worker_id "
         "bigint, OUT p_key bigint, OUT defer boolean) LANGUAGE plpgsql AS $$ BEGIN "
         "UPDATE worker w SET unused_capacity = w.unused_capacity - 1 WHERE w.worker_id = "
         "(SELECT w2.worker_id FROM worker w2 WHERE w2.p_key = want_p_key AND "
         "w2.unused_capacity > 0 ORDER BY w2.worker_id DESC LIMIT 1 FOR UPDATE) RETURNING "
         "w.worker_id, w.p_key INTO worker_id, p_key; defer := false; END $$;";
  }
  f.close();
  ASSERT_TRUE(KnobRegistry::global()
                  .set("dbos.scheduler_dir", (fs::path(dir_) / "schedulers").string())
                  .is_ok());
  auto db = Database::open(url_);
  ASSERT_TRUE(db.is_ok()) << db.status().to_string();
  auto s = (*db)->connect();
  ASSERT_TRUE(s.is_ok());
  Scheduler sched(**s);
  ASSERT_TRUE(sched.add_worker({.worker_id = 4, .p_key = 0, .capacity = 1}).is_ok());
  ASSERT_TRUE(sched.add_worker({.worker_id = 9, .p_key = 0, .capacity = 1}).is_ok());
  auto a = sched.schedule("highest_id", {.p_key = 0});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->worker_id, 9);
  // A batch goes through the same file, with no change elsewhere either.
  std::vector<TaskSpec> two(2, TaskSpec{.p_key = 0});
  auto b = sched.schedule_batch("highest_id", two);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].worker_id, 4);
  EXPECT_FALSE((*b)[1].worker_id.has_value());
}

TEST_P(DbosTest, UnknownWorkerTaskOrSchedulerIsAClearError) {
  Scheduler sched(*session_);
  EXPECT_EQ(sched.remove_worker(42).code(), StatusCode::kNotFound);
  EXPECT_EQ(sched.complete(12345).status().code(), StatusCode::kNotFound);
  auto bad = sched.schedule("no_such", {.p_key = 0});
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find("fifo"), std::string::npos);  // lists what exists
  ASSERT_TRUE(sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = 1}).is_ok());
  auto a = sched.schedule("fifo", {.p_key = 0});
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(sched.remove_worker(1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(sched.add_worker({.worker_id = 1, .p_key = 0, .capacity = 0}).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sched.complete(a->task_id).is_ok());
  EXPECT_EQ(sched.complete(a->task_id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sched.remove_worker(1).is_ok());
}

// --- IPC ---

TEST_P(DbosTest, MessagesArriveOnceAndInOrder) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1, "a").is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2, "b").is_ok());
  for (int i = 0; i < 20; ++i) {
    auto r = ipc.send(1, 2, fmt::format("m{}", i));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  std::vector<std::string> got;
  while (got.size() < 20) {
    auto r = ipc.try_recv(2, 7);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_FALSE(r->empty());
    for (const auto& m : *r) {
      EXPECT_EQ(m.sender_id, 1);
      EXPECT_EQ(m.message_id, static_cast<int64_t>(got.size() + 1));
      got.push_back(m.data);
    }
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(got[static_cast<size_t>(i)], fmt::format("m{}", i));
  }
  auto empty = ipc.try_recv(2, 5);
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
}

TEST_P(DbosTest, BinaryPayloadsSurviveUnchanged) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  std::string data;
  for (int i = 0; i < 8192; ++i) {
    data.push_back(static_cast<char>(i * 7));
  }
  ASSERT_TRUE(ipc.send(1, 1, data).is_ok());
  auto r = ipc.recv(1, 1, std::chrono::seconds(5));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].data, data);
}

// Sizes on both sides of dbos.sqlite.spill_bytes (on SQLite the large ones live in the payload
// log), through a single send, a batch and a multicast, interleaved with small ones.
TEST_P(DbosTest, LargeAndSmallPayloadsArriveExactAndInOrderThroughEverySend) {
  Ipc ipc(*session_);
  for (int64_t e : {1, 2, 3}) {
    ASSERT_TRUE(ipc.create_endpoint(e).is_ok());
  }
  auto payload = [](size_t n, int salt) {
    std::string d(n, '\0');
    for (size_t i = 0; i < n; ++i) {
      d[i] = static_cast<char>((i * 131 + static_cast<size_t>(salt) * 17) >> 3);
    }
    return d;
  };
  std::vector<std::string> want;
  const size_t sizes[] = {0, 1, 1023, 1024, 1025, 8192, 70000, 64, 20000};
  int salt = 0;
  for (size_t n : sizes) {
    want.push_back(payload(n, ++salt));
    ASSERT_TRUE(ipc.send(1, 2, want.back()).is_ok());
  }
  std::vector<std::string> batch = {payload(5000, ++salt), payload(10, ++salt),
                                    payload(9000, ++salt)};
  ASSERT_TRUE(ipc.send_batch(1, 2, batch).is_ok());
  want.insert(want.end(), batch.begin(), batch.end());
  const int64_t both[] = {2, 3};
  want.push_back(payload(4096, ++salt));
  ASSERT_TRUE(ipc.multicast(1, both, want.back()).is_ok());
  auto got = ipc.try_recv(2, 100);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*got)[i].data, want[i]) << "message " << i << " of " << want[i].size() << " bytes";
  }
  auto other = ipc.try_recv(3, 10);
  ASSERT_TRUE(other.is_ok());
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ((*other)[0].data, want.back());
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
}

TEST_P(DbosTest, ARepeatedMessageIdIsDroppedAsADuplicate) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  EXPECT_EQ(*ipc.send(1, 2, "x", 5), SendOutcome::kSent);
  EXPECT_EQ(*ipc.send(1, 2, "x again", 5), SendOutcome::kDuplicate);
  EXPECT_EQ(*ipc.send(1, 2, "older", 3), SendOutcome::kDuplicate);
  EXPECT_EQ(*ipc.last_sent(1, 2), 5);
  // Automatic numbering continues after the highest id.
  ASSERT_TRUE(ipc.send(1, 2, "y").is_ok());
  auto r = ipc.try_recv(2, 10);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].message_id, 6);
}

TEST_P(DbosTest, UnknownReceiverAndOversizeMessagesAreRefused) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  auto r = ipc.send(1, 77, "hello");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("77"), std::string::npos);
  EXPECT_EQ(ipc.send(66, 1, "hello").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ipc.try_recv(77).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(KnobRegistry::global().set("dbos.max_message_bytes", "100").is_ok());
  auto big = ipc.send(1, 1, std::string(101, 'x'));
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("dbos.max_message_bytes"), std::string::npos);
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
  const int64_t to[] = {1, 77};
  EXPECT_EQ(ipc.multicast(1, to, "x").code(), StatusCode::kNotFound);
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);  // all or nothing
}

TEST_P(DbosTest, MulticastReachesEveryReceiver) {
  Ipc ipc(*session_);
  std::vector<int64_t> rx;
  ASSERT_TRUE(ipc.create_endpoint(100).is_ok());
  for (int64_t i = 1; i <= 10; ++i) {
    ASSERT_TRUE(ipc.create_endpoint(i).is_ok());
    rx.push_back(i);
  }
  ASSERT_TRUE(ipc.multicast(100, rx, "all").is_ok());
  ASSERT_TRUE(ipc.multicast(100, rx, "again").is_ok());
  for (int64_t i : rx) {
    auto r = ipc.try_recv(i, 5);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].data, "all");
    EXPECT_EQ((*r)[1].data, "again");
  }
}

TEST_P(DbosTest, ABatchArrivesWholeInOrderWithEveryPayloadExact) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  std::string binary;
  for (int i = 0; i < 5000; ++i) {
    binary.push_back(static_cast<char>(i * 13));
  }
  const std::vector<std::string> batch = {"first", "",      std::string("\0nul\0", 5),
                                          binary,  "'; --", "last"};
  ASSERT_TRUE(ipc.send(1, 2, "before").is_ok());
  ASSERT_TRUE(ipc.send_batch(1, 2, batch).is_ok());
  ASSERT_TRUE(ipc.send(1, 2, "after").is_ok());
  EXPECT_EQ(*ipc.last_sent(1, 2), 8);
  auto r = ipc.try_recv(2, 100);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 8u);
  EXPECT_EQ((*r)[0].data, "before");
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ((*r)[i + 1].data, batch[i]) << "message " << i + 1;
  }
  EXPECT_EQ((*r)[7].data, "after");
  for (size_t i = 0; i < r->size(); ++i) {
    EXPECT_EQ((*r)[i].message_id, static_cast<int64_t>(i + 1));
    EXPECT_EQ((*r)[i].sender_id, 1);
  }
  EXPECT_TRUE(ipc.send_batch(1, 2, {}).is_ok());  // nothing to send
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
}

TEST_P(DbosTest, ABatchOrMulticastThatIsRefusedWritesNothing) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  const std::vector<std::string> batch = {"a", "b"};
  auto unknown = ipc.send_batch(1, 77, batch);
  EXPECT_EQ(unknown.code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.message().find("77"), std::string::npos);
  EXPECT_EQ(ipc.send_batch(66, 2, batch).code(), StatusCode::kNotFound);
  const int64_t to[] = {2, 1, 88, 2};
  auto bad = ipc.multicast(1, to, "x");
  EXPECT_EQ(bad.code(), StatusCode::kNotFound);
  EXPECT_NE(bad.message().find("88"), std::string::npos) << bad.to_string();
  EXPECT_EQ(ipc.multicast(66, std::span(to, 2), "x").code(), StatusCode::kNotFound);
  ASSERT_TRUE(KnobRegistry::global().set("dbos.max_message_bytes", "100").is_ok());
  const std::vector<std::string> oversize = {"small", std::string(101, 'x')};
  EXPECT_EQ(ipc.send_batch(1, 2, oversize).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ipc.multicast(1, std::span(to, 2), std::string(101, 'x')).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
  // A batch inside a transaction that fails is undone with it, and the numbering goes on.
  Status s = session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(ipc.send_batch(1, 2, batch));
    SLUICE_RETURN_IF_ERROR(ipc.multicast(1, std::span(to, 2), "m"));
    return internal_error("the caller gives up");
  });
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
  ASSERT_TRUE(ipc.send_batch(1, 2, batch).is_ok());
  auto r = ipc.try_recv(2, 10);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_LT((*r)[0].message_id, (*r)[1].message_id);
}

TEST_P(DbosTest, ABatchAfterAnotherHandleSentTakesTheNumberingFromTheTable) {
  Ipc a(*session_);
  ASSERT_TRUE(a.create_endpoint(1).is_ok());
  ASSERT_TRUE(a.create_endpoint(2).is_ok());
  ASSERT_TRUE(a.create_endpoint(3).is_ok());
  ASSERT_TRUE(a.send(1, 2, "a1").is_ok());  // a numbers 1 → 2 from here on
  ASSERT_TRUE(a.send(1, 3, "a1").is_ok());  // and 1 → 3
  auto other = new_session();
  Ipc b(*other);
  ASSERT_TRUE(b.send(1, 2, "b").is_ok());  // takes id 2 behind a's back
  ASSERT_TRUE(b.send(1, 3, "b").is_ok());
  const std::vector<std::string> batch = {"a2", "a3"};
  ASSERT_TRUE(a.send_batch(1, 2, batch).is_ok());
  const int64_t to[] = {3, 2};
  ASSERT_TRUE(a.multicast(1, to, "m").is_ok());
  for (int64_t rx : {int64_t{2}, int64_t{3}}) {
    auto r = a.try_recv(rx, 10);
    ASSERT_TRUE(r.is_ok());
    std::vector<int64_t> ids;
    for (const auto& m : *r) {
      ids.push_back(m.message_id);
    }
    if (rx == 2) {
      EXPECT_EQ(ids, (std::vector<int64_t>{1, 2, 3, 4, 5})) << "receiver 2";
    } else {
      EXPECT_EQ(ids, (std::vector<int64_t>{1, 2, 3})) << "receiver 3";
    }
  }
}

TEST_P(DbosTest, AMulticastNamingAReceiverTwiceSendsItTwoMessagesInOrder) {
  Ipc ipc(*session_);
  for (int64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(ipc.create_endpoint(i).is_ok());
  }
  const int64_t to[] = {2, 3, 2};
  ASSERT_TRUE(ipc.multicast(1, to, "m").is_ok());
  ASSERT_TRUE(ipc.send(1, 2, "next").is_ok());
  auto r = ipc.try_recv(2, 10);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].message_id, 1);
  EXPECT_EQ((*r)[1].message_id, 2);
  EXPECT_EQ((*r)[2].message_id, 3);
  EXPECT_EQ((*r)[2].data, "next");
  EXPECT_EQ(*ipc.last_sent(1, 3), 1);
}

TEST_P(DbosTest, ATakeRolledBackWithItsTransactionIsSeenByTheNextRecv) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.send(1, 1, "kept").is_ok());
  Status s = session_->transact([&]() -> Status {
    auto r = ipc.try_recv(1, 5);
    EXPECT_TRUE(r.is_ok());
    EXPECT_EQ(r->size(), 1u);
    return internal_error("the caller gives up");
  });
  EXPECT_FALSE(s.is_ok());
  // No send comes to wake it: the receiver must look at its table, not wait for a wake-up.
  auto r = ipc.recv(1, 5, std::chrono::milliseconds(200));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].data, "kept");
}

TEST_P(DbosTest, BlockingRecvWakesOnSendFromAnotherThread) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  std::thread sender([&] {
    auto s = new_session();
    Ipc tx(*s);
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(i % 5 == 0 ? 2 : 0));
      ASSERT_TRUE(tx.send(1, 2, std::to_string(i)).is_ok());
    }
  });
  int got = 0;
  while (got < 50) {
    auto r = ipc.recv(2, 10, std::chrono::seconds(30));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (const auto& m : *r) {
      EXPECT_EQ(m.data, std::to_string(got));
      ++got;
    }
  }
  sender.join();
}

TEST_P(DbosTest, ASendInsideATransactionWakesTheReceiverAfterCommit) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  std::thread sender([&] {
    auto s = new_session();
    Ipc tx(*s);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Status st = s->transact([&]() -> Status {
      SLUICE_RETURN_IF_ERROR(tx.send(1, 2, "in a transaction").status());
      return tx.send(1, 2, "and another").status();
    });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  });
  std::vector<std::string> got;
  while (got.size() < 2) {
    auto r = ipc.recv(2, 8, std::chrono::seconds(30));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (auto& m : *r)
      got.push_back(m.data);
  }
  sender.join();
  EXPECT_EQ(got[0], "in a transaction");
  EXPECT_EQ(got[1], "and another");
}

TEST_P(DbosTest, RecvTimesOutWhenNothingComes) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  auto r = ipc.recv(1, 1, std::chrono::milliseconds(50));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
}

// A timeout too long to add to the clock waits for the message instead of wrapping into the
// past and timing out at once.
TEST_P(DbosTest, RecvWithAnEndlessTimeoutWaitsForTheMessage) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  std::thread sender([&] {
    auto s = new_session();
    Ipc tx(*s);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(tx.send(1, 2, "late").is_ok());
  });
  auto r = ipc.recv(2, 1, std::chrono::milliseconds::max());
  sender.join();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].data, "late");
}

TEST_P(DbosTest, AFailedHandlerLeavesTheMessagesQueued) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.send(1, 1, "keep me").is_ok());
  auto r = ipc.recv_with(
      1, 10, [](Session&, std::span<const Message>) { return internal_error("handler failed"); });
  EXPECT_FALSE(r.is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 1);
  auto ok = ipc.recv_with(1, 10, [](Session&, std::span<const Message> m) {
    return m.size() == 1 && m[0].data == "keep me" ? Status() : internal_error("wrong");
  });
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
}

// A sender and a receiver process are killed with SIGKILL at random points and restarted until all
// messages went through; every message must be processed exactly once, in order.
TEST_P(DbosTest, KilledSendersAndReceiversLoseAndDuplicateNothing) {
  constexpr int64_t kMessages = 300;
  const bool pg = GetParam() == Dialect::kPostgres;
  ASSERT_TRUE(session_
                  ->execute_script(pg ? "CREATE TABLE received (n bigserial PRIMARY KEY, "
                                        "sender_id bigint, message_id bigint)"
                                      : "CREATE TABLE received (n INTEGER PRIMARY KEY, "
                                        "sender_id INTEGER, message_id INTEGER)")
                  .is_ok());
  {
    Ipc ipc(*session_);
    ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
    ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  }
  const std::string url = url_;
  // Every third message is large (on SQLite it lives in the payload log beside the file); the
  // receiver checks every payload.
  auto payload_of = [](int64_t i) {
    return i % 3 == 0
               ? std::string(3000 + static_cast<size_t>(i % 7), static_cast<char>('a' + i % 26)) +
                     std::to_string(i)
               : std::to_string(i);
  };
  // The first run of each child stops itself once midway (the receiver inside its transaction) so
  // that at least one kill lands mid-stream even on a machine fast enough to finish between two
  // random kills.
  auto run_sender = [url, payload_of](bool stop_midway) -> int {
    auto db = Database::open(url);
    if (!db.is_ok())
      return 3;
    auto s = (*db)->connect();
    if (!s.is_ok())
      return 3;
    Ipc ipc(**s);
    auto last = ipc.last_sent(1, 2);
    if (!last.is_ok())
      return 3;
    for (int64_t i = *last + 1; i <= kMessages; ++i) {
      // Resend the last id too: it may or may not have committed before the kill.
      if (!ipc.send(1, 2, payload_of(i), i).is_ok())
        return 4;
      if (stop_midway && i == kMessages / 3)
        ::raise(SIGSTOP);
    }
    return 0;
  };
  auto run_receiver = [url, pg, payload_of](bool stop_midway) -> int {
    auto db = Database::open(url);
    if (!db.is_ok())
      return 3;
    auto s = (*db)->connect();
    if (!s.is_ok())
      return 3;
    Ipc ipc(**s);
    const std::string insert = pg ? "INSERT INTO received (sender_id, message_id) VALUES ($1, $2)"
                                  : "INSERT INTO received (sender_id, message_id) VALUES (?1, ?2)";
    for (;;) {
      auto count = (*s)->query("SELECT count(*) FROM received");
      if (!count.is_ok())
        return 5;
      if (value_to_int(count->rows[0][0]).value_or(0) >= kMessages)
        return 0;
      auto r = ipc.recv_with(
          2, 8,
          [&](Session& sess, std::span<const Message> msgs) -> Status {
            for (const Message& m : msgs) {
              if (m.data != payload_of(m.message_id)) {
                return data_loss(fmt::format("message {} arrived changed", m.message_id));
              }
              std::vector<Value> p{m.sender_id, m.message_id};
              SLUICE_RETURN_IF_ERROR(sess.query(insert, p).status());
            }
            if (stop_midway && msgs.front().message_id > kMessages / 2)
              ::raise(SIGSTOP);
            return {};
          },
          std::chrono::seconds(2));
      if (!r.is_ok() && r.status().code() != StatusCode::kDeadlineExceeded)
        return 6;
    }
  };
  auto spawn = [](const std::function<int(bool)>& fn, bool stop_midway) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::_exit(fn(stop_midway));
    }
    return pid;
  };
  std::mt19937 rng(12345);
  pid_t sender = spawn(run_sender, true);
  pid_t receiver = spawn(run_receiver, true);
  bool sender_done = false;
  bool receiver_done = false;
  int kills = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while ((!sender_done || !receiver_done) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 40));
    for (pid_t* who : {&sender, &receiver}) {
      bool& done = who == &sender ? sender_done : receiver_done;
      if (done)
        continue;
      int status = 0;
      pid_t w = ::waitpid(*who, &status, WNOHANG | WUNTRACED);
      const bool stopped = w == *who && WIFSTOPPED(status);
      if (w == *who && !stopped) {
        ASSERT_TRUE(WIFEXITED(status)) << "child died unexpectedly";
        ASSERT_EQ(WEXITSTATUS(status), 0) << (who == &sender ? "sender" : "receiver") << " failed";
        done = true;
      } else if (stopped || (kills < 30 && rng() % 3 == 0)) {
        ::kill(*who, SIGKILL);
        ::waitpid(*who, &status, 0);
        ++kills;
        *who = spawn(who == &sender ? std::function<int(bool)>(run_sender)
                                    : std::function<int(bool)>(run_receiver),
                     false);
      }
    }
  }
  ASSERT_TRUE(sender_done && receiver_done) << "timed out";
  EXPECT_GE(kills, 2);
  auto r = session_->query("SELECT message_id FROM received ORDER BY n");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->rows.size(), static_cast<size_t>(kMessages));
  for (size_t i = 0; i < r->rows.size(); ++i) {
    ASSERT_EQ(value_to_int(r->rows[i][0]), static_cast<int64_t>(i + 1)) << "at " << i;
  }
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
}

// --- group commit (SQLite, threads of one process) ---

TEST_P(DbosTest, TransactionsStartedTogetherCommitTogetherAndFailAlone) {
  if (db_->group_commit() == nullptr) {
    GTEST_SKIP() << "group commit is SQLite's, within one process";
  }
  // Every transaction takes the group path (by default one or two at a time go alone).
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.group_commit_min", "1").is_ok());
  auto opened = Database::open(url_);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::shared_ptr<Database> db = *opened;
  GroupCommit* g = db->group_commit();
  auto new_session = [&]() -> std::unique_ptr<Session> {
    auto s = db->connect();
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return std::move(*s);
  };
  ASSERT_TRUE(session_->execute_script("CREATE TABLE t (k INTEGER PRIMARY KEY, who TEXT)").is_ok());
  std::atomic<bool> release{false};
  std::thread holder([&] {
    auto s = new_session();
    Status st = s->transact([&]() -> Status {
      SLUICE_RETURN_IF_ERROR(s->query("INSERT INTO t VALUES (1, 'holder')").status());
      while (!release) {
        std::this_thread::yield();
      }
      return {};
    });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  });
  while (g->queued() < 1) {
    std::this_thread::yield();
  }
  std::atomic<int> hooks_run{0};
  std::vector<Status> results(4);
  std::vector<std::thread> members;
  for (int i = 0; i < 4; ++i) {
    members.emplace_back([&, i] {
      auto s = new_session();
      results[static_cast<size_t>(i)] = s->transact([&]() -> Status {
        SLUICE_RETURN_IF_ERROR(
            s->query(fmt::format("INSERT INTO t VALUES ({}, 'member')", 10 + i)).status());
        // A nested transaction is part of this one.
        SLUICE_RETURN_IF_ERROR(s->transact([&] {
          return s->query(fmt::format("INSERT INTO t VALUES ({}, 'nested')", 20 + i)).status();
        }));
        s->after_commit([&] { hooks_run.fetch_add(1); });
        if (i == 2) {
          return internal_error("member 2 gives up");
        }
        return {};
      });
    });
  }
  // The holder's group is in flight; release it once all four wait behind it, so they form the
  // next group together.
  while (g->queued() < 5) {
    std::this_thread::yield();
  }
  release = true;
  holder.join();
  for (auto& m : members) {
    m.join();
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(results[static_cast<size_t>(i)].is_ok(), i != 2) << "member " << i;
  }
  EXPECT_EQ(results[2].message(), "member 2 gives up");
  EXPECT_EQ(hooks_run.load(), 3);  // the failed member's hook is dropped
  EXPECT_EQ(scalar("SELECT count(*) FROM t"), 1 + 3 * 2);
  EXPECT_EQ(scalar("SELECT count(*) FROM t WHERE k IN (12, 22)"), 0);
  EXPECT_GE(g->groups(), 1);
  EXPECT_EQ(g->grouped_transactions(), 3);  // the four queued together; three committed
}

TEST_P(DbosTest, AGroupedTransactionThatWritesThroughAnotherSessionFailsInsteadOfHanging) {
  if (db_->group_commit() == nullptr) {
    GTEST_SKIP() << "group commit is SQLite's, within one process";
  }
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.group_commit_min", "1").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.busy_timeout_ms", "50").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("dbos.txn_retries", "0").is_ok());
  auto opened = Database::open(url_);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::shared_ptr<Database> db = *opened;
  auto outer_session = db->connect();
  auto other_session = db->connect();
  ASSERT_TRUE(outer_session.is_ok() && other_session.is_ok());
  std::unique_ptr<Session> outer = std::move(*outer_session);
  std::unique_ptr<Session> other = std::move(*other_session);
  ASSERT_TRUE(outer->execute_script("CREATE TABLE t (k INTEGER PRIMARY KEY)").is_ok());
  Status inner;
  Status st = outer->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(outer->query("INSERT INTO t VALUES (1)").status());
    // SQLite's one write lock is this transaction's: the other session waits for it, as it
    // would without grouping, and gives up; it must not queue behind its own group.
    inner = other->transact([&] { return other->query("INSERT INTO t VALUES (2)").status(); });
    return Status();
  });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(inner.code(), StatusCode::kUnavailable) << inner.to_string();
  EXPECT_EQ(scalar("SELECT count(*) FROM t"), 1);
}

TEST_P(DbosTest, ManyThreadsOfIpcLoseAndDuplicateNothing) {
  // Eight senders to one receiver each send 200 numbered messages, one transaction each; the
  // receiver takes them as they come. Each pair's messages arrive once and in order: on SQLite
  // through group commit and the process writer, on PostgreSQL through concurrent sessions.
  constexpr int kSenders = 8;
  constexpr int kEach = 200;
  Ipc setup(*session_);
  for (int i = 0; i <= kSenders; ++i) {
    ASSERT_TRUE(setup.create_endpoint(i).is_ok());
  }
  std::vector<std::thread> senders;
  for (int i = 1; i <= kSenders; ++i) {
    senders.emplace_back([&, i] {
      auto s = new_session();
      Ipc ipc(*s);
      for (int n = 1; n <= kEach; ++n) {
        auto r = ipc.send(i, 0, std::to_string(n));
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      }
    });
  }
  std::map<int64_t, int> last;
  int got = 0;
  Ipc rx(*session_);
  while (got < kSenders * kEach) {
    auto r = rx.recv(0, 64, std::chrono::seconds(10));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (const auto& m : *r) {
      EXPECT_EQ(std::stoi(m.data), last[m.sender_id] + 1) << "sender " << m.sender_id;
      last[m.sender_id] = std::stoi(m.data);
      ++got;
    }
  }
  for (auto& t : senders) {
    t.join();
  }
  EXPECT_EQ(scalar("SELECT count(*) FROM Message"), 0);
  for (int i = 1; i <= kSenders; ++i) {
    EXPECT_EQ(last[i], kEach);
  }
}

// --- the process writer (SQLite): write transactions of every thread on one connection ---

TEST_P(DbosTest, WriteTransactionsOfAProcessRunOnOneConnection) {
  if (db_->group_commit() == nullptr) {
    GTEST_SKIP() << "the process writer is SQLite's";
  }
  auto other = db_->connect();
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  // A TEMP table lives on the connection that created it: the second session's transaction sees
  // the first one's only when both ran on the same connection.
  ASSERT_TRUE(session_
                  ->transact([&] {
                    return session_->query("CREATE TEMP TABLE probe (x INTEGER)").status();
                  })
                  .is_ok());
  Status seen = (*other)->transact(
      [&] { return (*other)->query("INSERT INTO temp.probe VALUES (1)").status(); });
  EXPECT_TRUE(seen.is_ok()) << seen.to_string();
  // Outside a transaction each session reads on its own connection, which has no such table,
  // and still sees what the writer committed.
  EXPECT_FALSE((*other)->query("SELECT count(*) FROM temp.probe").is_ok());
  ASSERT_TRUE(session_->execute_script("CREATE TABLE t (k INTEGER PRIMARY KEY)").is_ok());
  ASSERT_TRUE((*other)
                  ->transact([&] { return (*other)->query("INSERT INTO t VALUES (7)").status(); })
                  .is_ok());
  auto r = (*other)->query("SELECT count(*) FROM t WHERE k = 7");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(value_to_int(r->rows[0][0]), 1);

  // Switched off, each session writes on its own connection again.
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.shared_writer", "false").is_ok());
  auto opened = Database::open(url_);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  auto a = (*opened)->connect();
  auto b = (*opened)->connect();
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_TRUE(
      (*a)->transact([&] { return (*a)->query("CREATE TEMP TABLE own (x INTEGER)").status(); })
          .is_ok());
  EXPECT_FALSE(
      (*b)->transact([&] { return (*b)->query("INSERT INTO temp.own VALUES (1)").status(); })
          .is_ok());
}

TEST_P(DbosTest, AFailedTransactionOnTheProcessWriterLeavesItCleanAndHooksRunAfterIt) {
  if (db_->group_commit() == nullptr) {
    GTEST_SKIP() << "the process writer is SQLite's";
  }
  ASSERT_TRUE(session_->execute_script("CREATE TABLE t (k INTEGER PRIMARY KEY)").is_ok());
  auto other = db_->connect();
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  int hooks = 0;
  Status failed = session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(session_->query("INSERT INTO t VALUES (1)").status());
    session_->after_commit([&] { ++hooks; });
    return internal_error("gives up");
  });
  EXPECT_EQ(failed.message(), "gives up");
  EXPECT_EQ(hooks, 0);
  // The next transaction on the writer, from another session, starts clean: the row is gone.
  Status next = (*other)->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR((*other)->query("INSERT INTO t VALUES (2)").status());
    // A hook runs once the writer is free again, so it may write itself.
    (*other)->after_commit([&] {
      ++hooks;
      Status inner =
          (*other)->transact([&] { return (*other)->query("INSERT INTO t VALUES (3)").status(); });
      EXPECT_TRUE(inner.is_ok()) << inner.to_string();
    });
    return {};
  });
  EXPECT_TRUE(next.is_ok()) << next.to_string();
  EXPECT_EQ(hooks, 1);
  EXPECT_EQ(scalar("SELECT count(*) FROM t WHERE k = 1"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM t WHERE k IN (2, 3)"), 2);
}

TEST_P(DbosTest, ThreadsWritingThroughTheProcessWriterLoseNothing) {
  if (db_->group_commit() == nullptr) {
    GTEST_SKIP() << "the process writer is SQLite's";
  }
  // Without grouping every transaction waits for the writer alone; with it, groups run on it.
  for (const char* min_group : {"1000", "1"}) {
    ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.group_commit_min", min_group).is_ok());
    auto opened = Database::open(url_);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    std::shared_ptr<Database> db = *opened;
    auto setup = db->connect();
    ASSERT_TRUE(setup.is_ok());
    ASSERT_TRUE((*setup)
                    ->execute_script("DROP TABLE IF EXISTS counter; "
                                     "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER); "
                                     "INSERT INTO counter VALUES (1, 0)")
                    .is_ok());
    constexpr int kThreads = 4;
    constexpr int kEach = 150;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        auto s = db->connect();
        ASSERT_TRUE(s.is_ok());
        for (int i = 0; i < kEach; ++i) {
          // Read, then write what was read plus one: a lost update shows as a short count.
          Status st = (*s)->transact([&]() -> Status {
            SLUICE_ASSIGN_OR_RETURN(QueryResult r,
                                    (*s)->query("SELECT n FROM counter WHERE id = 1"));
            return (*s)
                ->query("UPDATE counter SET n = ?1 WHERE id = 1",
                        std::vector<Value>{Value(value_to_int(r.rows[0][0]).value_or(0) + 1)})
                .status();
          });
          if (!st.is_ok()) {
            failures.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    EXPECT_EQ(failures.load(), 0) << "group_commit_min " << min_group;
    EXPECT_EQ(scalar("SELECT n FROM counter WHERE id = 1"), kThreads * kEach)
        << "group_commit_min " << min_group;
  }
}

// --- bad input: backend specific ---

TEST_P(DbosTest, TwoTransactionsLockingRowsInOppositeOrdersBothCommit) {
  // Each takes one worker row, then the other's: a deadlock, which the server breaks after
  // dbos.pg.deadlock_timeout_ms (set per session; its own default is 1 s) and Session retries.
  if (GetParam() != Dialect::kPostgres) {
    GTEST_SKIP() << "SQLite has one writer at a time: no row locks to deadlock on";
  }
  auto shown = session_->query("SHOW deadlock_timeout");
  ASSERT_TRUE(shown.is_ok()) << shown.status().to_string();
  EXPECT_EQ(value_to_text(shown->rows.at(0).at(0)), "20ms");
  ASSERT_TRUE(KnobRegistry::global().set("dbos.pg.deadlock_timeout_ms", "35").is_ok());
  auto later = new_session();
  EXPECT_EQ(value_to_text(later->query("SHOW deadlock_timeout")->rows.at(0).at(0)), "35ms");
  ASSERT_TRUE(session_
                  ->execute_script("INSERT INTO Worker (worker_id, p_key, capacity, "
                                   "unused_capacity, created_us) VALUES (1, 0, 100, 100, 0), "
                                   "(2, 0, 100, 100, 0)")
                  .is_ok());
  std::atomic<int> ready{0};
  auto bump = [&](int64_t first, int64_t second) {
    auto s = new_session();
    bool waited = false;
    Status st = s->transact([&]() -> Status {
      const std::string sql =
          "UPDATE Worker SET unused_capacity = unused_capacity - 1 "
          "WHERE worker_id = ";
      SLUICE_RETURN_IF_ERROR(s->query(sql + std::to_string(first)).status());
      if (!waited) {  // both hold their first row before either asks for its second
        waited = true;
        ready.fetch_add(1);
        while (ready.load() < 2) {
          std::this_thread::yield();
        }
      }
      return s->query(sql + std::to_string(second)).status();
    });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
  };
  std::thread a(bump, 1, 2);
  std::thread b(bump, 2, 1);
  a.join();
  b.join();
  EXPECT_EQ(scalar("SELECT sum(unused_capacity) FROM Worker"), 196);
}

TEST_P(DbosTest, ALockedDatabaseIsAClearErrorAndRecovers) {
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("dbos.sqlite.busy_timeout_ms", "20").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("dbos.pg.lock_timeout_ms", "20").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("dbos.txn_retries", "2").is_ok());
  // Another session holds the lock (new sessions read the shorter timeouts).
  auto holder = new_session();
  ASSERT_TRUE(holder
                  ->execute_script(GetParam() == Dialect::kSqlite
                                       ? "BEGIN EXCLUSIVE"
                                       : "BEGIN; LOCK TABLE channel IN ACCESS EXCLUSIVE MODE")
                  .is_ok());
  auto s2 = db_->connect();
  ASSERT_TRUE(s2.is_ok());
  Ipc ipc2(**s2);
  auto r = ipc2.send(1, 1, "x", 1);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("lock"), std::string::npos) << r.status().to_string();
  ASSERT_TRUE(holder->execute_script("COMMIT").is_ok());
  EXPECT_TRUE(ipc2.send(1, 1, "x", 1).is_ok());
  auto got = ipc2.try_recv(1, 5);
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(got->size(), 1u);  // the failed tries left nothing behind
}

TEST_P(DbosTest, AnUnreachableServerIsAClearError) {
  if (GetParam() != Dialect::kPostgres) {
    // The SQLite analogue: a path that cannot be created.
    auto db = Database::open("sqlite:/proc/self/no/such/dir/os.db");
    ASSERT_FALSE(db.is_ok());
    return;
  }
  // A port nobody listens on (the server's port + 1 is very likely free; connect fails fast).
  auto db = Database::open(fmt::format(
      "postgresql://postgres@127.0.0.1:{}/postgres?connect_timeout=2", pg_server()->port() + 1));
  ASSERT_FALSE(db.is_ok());
  EXPECT_EQ(db.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(db.status().message().find("cannot connect"), std::string::npos)
      << db.status().to_string();
  auto bad = Database::open("mysql://x");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_P(DbosTest, AServerRestartMidRunLosesAndDuplicatesNothing) {
  if (GetParam() != Dialect::kPostgres) {
    GTEST_SKIP() << "a PostgreSQL server restart";
  }
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  for (int i = 1; i <= 30; ++i) {
    ASSERT_TRUE(ipc.send(1, 2, std::to_string(i)).is_ok());
  }
  ASSERT_TRUE(pg_server()->restart().is_ok());
  for (int i = 31; i <= 60; ++i) {
    auto r = ipc.send(1, 2, std::to_string(i));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  std::vector<std::string> got;
  while (got.size() < 60) {
    auto r = ipc.recv(2, 16, std::chrono::seconds(10));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (auto& m : *r) {
      got.push_back(m.data);
    }
  }
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(got[static_cast<size_t>(i)], std::to_string(i + 1));
  }
}

// A receiver blocked in recv wakes on a send made through another Database handle, as from
// another process: nothing of the sender's reaches it but what the database and the OS carry
// (SQLite: the shared wake-up file; PostgreSQL: NOTIFY, to the process's notification thread or,
// with dbos.pg.wakeups connection, to the receiver's own LISTEN). The recheck is set beyond the
// receive timeout, so a lost wake-up fails the test instead of arriving a second late.
TEST_P(DbosTest, ABlockedReceiverWakesOnASendThroughAnotherDatabaseHandle) {
  // (receiver's, sender's) dbos.pg.wakeups: every pairing of the two ways.
  std::vector<std::pair<std::string, std::string>> pairs = {{"", ""}};
  if (GetParam() == Dialect::kPostgres) {
    pairs = {
        {"hub", "hub"}, {"connection", "connection"}, {"connection", "hub"}, {"hub", "connection"}};
  }
  ASSERT_TRUE(KnobRegistry::global().set("dbos.recv_recheck_ms", "600000").is_ok());
  for (const auto& [rx_mode, tx_mode] : pairs) {
    const std::string mode = rx_mode + "-" + tx_mode;
    SCOPED_TRACE(mode);
    auto open_as = [&](const std::string& m) {
      if (!m.empty()) {
        EXPECT_TRUE(KnobRegistry::global().set("dbos.pg.wakeups", m).is_ok());
      }
      return Database::open(url_);
    };
    auto rx_db = open_as(rx_mode);
    auto tx_db = open_as(tx_mode);
    ASSERT_TRUE(rx_db.is_ok() && tx_db.is_ok());
    EXPECT_EQ((*rx_db)->wake_table() != nullptr, rx_mode != "connection");
    auto rx_session = (*rx_db)->connect();
    auto tx_session = (*tx_db)->connect();
    ASSERT_TRUE(rx_session.is_ok() && tx_session.is_ok());
    Ipc rx(**rx_session);
    Ipc tx(**tx_session);
    ASSERT_TRUE(rx.create_endpoint(1).is_ok());
    ASSERT_TRUE(rx.create_endpoint(2).is_ok());
    std::vector<std::string> got;
    std::thread receiver([&] {
      while (got.size() < 5) {
        auto r = rx.recv(2, 8, std::chrono::seconds(60));
        ASSERT_TRUE(r.is_ok()) << r.status().to_string();
        for (auto& m : *r) {
          got.push_back(m.data);
        }
      }
    });
    for (int i = 0; i < 5; ++i) {
      // Gives the receiver time to go to sleep between sends.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ASSERT_TRUE(tx.send(1, 2, fmt::format("{}-{}", mode, i)).is_ok());
    }
    receiver.join();
    ASSERT_EQ(got.size(), 5u);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(got[static_cast<size_t>(i)], fmt::format("{}-{}", mode, i));
    }
  }
}

TEST_P(DbosTest, TheNotificationThreadListensAgainAfterItsConnectionDiesAndWakesEveryReceiver) {
  if (GetParam() != Dialect::kPostgres) {
    GTEST_SKIP() << "PostgreSQL's notification thread";
  }
  auto wake = WakeTable::in_process();
  ASSERT_TRUE(wake.is_ok());
  auto hub = NotifyHub::start(url_, wake->get(), "ours");
  ASSERT_TRUE(hub.is_ok()) << hub.status().to_string();
  ASSERT_TRUE((*hub)->listen(5).is_ok());
  ASSERT_TRUE((*hub)->listen(6).is_ok());
  ASSERT_TRUE((*hub)->listen(5).is_ok());  // idempotent
  auto wait_for_change = [&](int64_t key, uint32_t seen) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((*wake)->epoch(key) == seen && std::chrono::steady_clock::now() < deadline) {
      (*wake)->wait(key, seen, 100'000'000);
    }
    return (*wake)->epoch(key) != seen;
  };

  // A notification on a channel it listens to bumps that receiver's word, and only that one's.
  uint32_t e5 = (*wake)->epoch(5);
  uint32_t e7 = (*wake)->epoch(7);
  ASSERT_TRUE(session_->query("SELECT pg_notify('dbos_rx_5', '')").is_ok());
  ASSERT_TRUE(session_->query("SELECT pg_notify('dbos_rx_7', '')").is_ok());
  EXPECT_TRUE(wait_for_change(5, e5));
  EXPECT_EQ((*wake)->epoch(7), e7);

  // One with its own origin as payload is skipped: the sender woke its receivers itself.
  // Notifications arrive in commit order, so once 5 moved, 6's has been read.
  e5 = (*wake)->epoch(5);
  uint32_t e6 = (*wake)->epoch(6);
  ASSERT_TRUE(session_->query("SELECT pg_notify('dbos_rx_6', 'ours')").is_ok());
  ASSERT_TRUE(session_->query("SELECT pg_notify('dbos_rx_5', 'theirs')").is_ok());
  EXPECT_TRUE(wait_for_change(5, e5));
  EXPECT_EQ((*wake)->epoch(6), e6);

  // Its backend killed: it reconnects, listens again, and wakes every receiver it serves, since a
  // send in the gap notified nobody.
  e5 = (*wake)->epoch(5);
  e6 = (*wake)->epoch(6);
  EXPECT_EQ(
      scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice-notify'"), 1);
  ASSERT_TRUE(session_
                  ->query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'sluice-notify'")
                  .is_ok());
  EXPECT_TRUE(wait_for_change(5, e5));
  EXPECT_TRUE(wait_for_change(6, e6));
  EXPECT_EQ((*hub)->reconnects(), 1u);

  // And it listens again: a later notification still arrives.
  e5 = (*wake)->epoch(5);
  ASSERT_TRUE(session_->query("SELECT pg_notify('dbos_rx_5', '')").is_ok());
  EXPECT_TRUE(wait_for_change(5, e5));
  EXPECT_GE((*hub)->notifications(), 2u);
}

// A send makes a NOTIFY only while a listener other than its own Database handle is registered
// (dbos_listener): a process alone with its database wakes its receivers itself. A listener that
// joins while a send is uncommitted waits for that commit, so its receivers' first look finds the
// message; one that leaves is no longer notified; a row whose connection is gone is removed by
// the next listener to join.
TEST_P(DbosTest, SendsNotifyOnlyWhileAnotherHandleListens) {
  if (GetParam() != Dialect::kPostgres) {
    GTEST_SKIP() << "PostgreSQL's NOTIFY";
  }
  Ipc ipc(*session_);
  ASSERT_TRUE(ipc.create_endpoint(1).is_ok());
  ASSERT_TRUE(ipc.create_endpoint(2).is_ok());
  auto origin = session_->query("SELECT current_setting('dbos.origin')");
  ASSERT_TRUE(origin.is_ok());
  const std::string ours = value_to_text(origin->rows[0][0]);
  ASSERT_FALSE(ours.empty());
  auto wake = WakeTable::in_process();
  ASSERT_TRUE(wake.is_ok());
  // Stands for this handle's own notification thread: registered under its origin.
  auto own = NotifyHub::start(url_, wake->get(), ours);
  ASSERT_TRUE(own.is_ok()) << own.status().to_string();
  ASSERT_TRUE((*own)->listen(2).is_ok());
  ASSERT_TRUE((*own)->listen(3).is_ok());  // the markers' channel
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_listener"), 1);
  // How many notifications reached `own` since `base`, the marker's aside: every one committed
  // before the marker has arrived once the marker has (they arrive in commit order), and the
  // marker's arrival shows as receiver 3's wake word moving.
  auto settled = [&](uint64_t base) -> int64_t {
    const uint32_t seen = (*wake)->epoch(3);
    EXPECT_TRUE(session_->query("SELECT pg_notify('dbos_rx_3', 'marker')").is_ok());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((*wake)->epoch(3) == seen && std::chrono::steady_clock::now() < deadline) {
      (*wake)->wait(3, seen, 100'000'000);
    }
    EXPECT_NE((*wake)->epoch(3), seen) << "the marker did not arrive";
    return static_cast<int64_t>((*own)->notifications() - base) - 1;
  };

  uint64_t base = (*own)->notifications();
  ASSERT_TRUE(ipc.send(1, 2, "alone").is_ok());
  EXPECT_EQ(settled(base), 0);

  // Another handle listens: sends notify again. It joins only once the send in flight commits.
  auto other = NotifyHub::start(url_, wake->get(), "another process");
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  std::atomic<bool> joined{false};
  std::thread joiner;
  Status sent = session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(ipc.send(1, 2, "in flight").status());
    joiner = std::thread([&] {
      EXPECT_TRUE((*other)->listen(2).is_ok());
      joined = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(joined.load()) << "joined while a send that did not notify was uncommitted";
    return {};
  });
  ASSERT_TRUE(sent.is_ok()) << sent.to_string();
  joiner.join();
  EXPECT_TRUE(joined.load());
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_listener"), 2);
  base = (*own)->notifications();
  ASSERT_TRUE(ipc.send(1, 2, "watched").is_ok());
  EXPECT_EQ(settled(base), 1);

  // It leaves: alone again.
  other->reset();
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_listener"), 1);
  base = (*own)->notifications();
  ASSERT_TRUE(ipc.send(1, 2, "alone again").is_ok());
  EXPECT_EQ(settled(base), 0);

  // A row whose connection is gone (a process killed) makes sends notify until the next
  // listener joins and removes it.
  ASSERT_TRUE(session_->execute_script("INSERT INTO dbos_listener VALUES ('killed', 2147483647, 0)")
                  .is_ok());
  base = (*own)->notifications();
  ASSERT_TRUE(ipc.send(1, 2, "to a dead listener").is_ok());
  EXPECT_EQ(settled(base), 1);
  auto late = NotifyHub::start(url_, wake->get(), "late");
  ASSERT_TRUE(late.is_ok());
  ASSERT_TRUE((*late)->listen(2).is_ok());
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_listener WHERE origin = 'killed'"), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM dbos_listener"), 2);

  auto got = ipc.recv(2, 10, std::chrono::seconds(5));
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(got->size(), 5u);
}

// With many receivers in one process, PostgreSQL has one listening backend to signal per NOTIFY,
// not one per receiver: the receivers sleep on the process's wake table.
TEST_P(DbosTest, ManyReceiversOfAProcessShareOneListeningConnection) {
  if (GetParam() != Dialect::kPostgres) {
    GTEST_SKIP() << "PostgreSQL's LISTEN";
  }
  Ipc ipc(*session_);
  constexpr int kReceivers = 8;
  for (int i = 0; i <= kReceivers; ++i) {
    ASSERT_TRUE(ipc.create_endpoint(i).is_ok());
  }
  std::atomic<int> waiting{0};
  std::vector<std::thread> threads;
  for (int i = 1; i <= kReceivers; ++i) {
    threads.emplace_back([&, i] {
      auto s = new_session();
      Ipc rx(*s);
      waiting.fetch_add(1);
      auto r = rx.recv(i, 1, std::chrono::seconds(60));
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      ASSERT_EQ(r->size(), 1u);
      EXPECT_EQ((*r)[0].data, "to all");
      // The receiver's own connection listens to nothing.
      auto channels = s->query("SELECT count(*) FROM pg_listening_channels()");
      ASSERT_TRUE(channels.is_ok());
      EXPECT_EQ(value_to_int(channels->rows[0][0]), 0);
    });
  }
  while (waiting.load() < kReceivers) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<int64_t> all;
  for (int i = 1; i <= kReceivers; ++i) {
    all.push_back(i);
  }
  ASSERT_TRUE(ipc.multicast(0, all, "to all").is_ok());
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(
      scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice-notify'"), 1);
}

#ifdef SLUICE_DBOS_TEST_POSTGRES
// A RAISE in a PL/pgSQL function reads as its own message: not the server's "ERROR:" prefix nor
// the CONTEXT lines that name PL/pgSQL internals.
TEST_P(DbosTest, ARaiseInAFunctionIsItsMessage) {
  ASSERT_TRUE(session_
                  ->execute_script("CREATE FUNCTION dbos_test_raise(n bigint) RETURNS void "
                                   "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'EIO: no %', n; "
                                   "END $$")
                  .is_ok());
  const std::vector<Value> one = {int64_t{7}};
  auto r = session_->query("SELECT dbos_test_raise($1)", one);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "SQL failed: EIO: no 7");
}

INSTANTIATE_TEST_SUITE_P(Postgres, DbosTest, ::testing::Values(Dialect::kPostgres),
                         [](const auto&) { return std::string("postgres"); });
#else
INSTANTIATE_TEST_SUITE_P(Sqlite, DbosTest, ::testing::Values(Dialect::kSqlite),
                         [](const auto&) { return std::string("sqlite"); });
#endif

}  // namespace
}  // namespace sluice::dbos
