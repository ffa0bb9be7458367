// Background WAL checkpoints (dbos.sqlite.checkpoint = background): the checkpointer copies the
// WAL back on its own thread, the WAL stays under its cap, and IPC through it loses and
// duplicates nothing.
#include "dbos/checkpointer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/ipc.h"

namespace sluice::dbos {
namespace {

namespace fs = std::filesystem;

class CheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KnobRegistry::global().reset_for_testing();
    dir_ = fs::temp_directory_path() / ("sluice-ckpt-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    KnobRegistry::global().reset_for_testing();
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
}

int64_t count_rows(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, nullptr);
  int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close_v2(db);
  return n;
}

// A connection in WAL mode with an empty table t, that waits for the write lock as dbos's
// connections do: the thread's restart holds it for a moment.
sqlite3* open_writer(const std::string& path) {
  sqlite3* w = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &w), SQLITE_OK);
  sqlite3_busy_timeout(w, 5000);
  exec(w,
       "PRAGMA journal_mode=wal; PRAGMA synchronous=normal; "
       "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
  return w;
}

// The writer's commits wake `cp`, as dbos's WAL hook does.
void wake_on_commit(sqlite3* w, Checkpointer* cp) {
  sqlite3_wal_hook(
      w,
      [](void* p, sqlite3*, const char*, int frames) {
        EXPECT_FALSE(static_cast<Checkpointer*>(p)->on_commit(frames));
        return SQLITE_OK;
      },
      cp);
}

// The class alone: a writer's commits past `wake_frames` wake the thread, which copies the WAL
// back into the database file while the writer goes on.
TEST_F(CheckpointerTest, CommitsPastTheThresholdAreCopiedBackOnTheThread) {
  const std::string path = (dir_ / "t.db").string();
  sqlite3* w = open_writer(path);
  auto c = Checkpointer::start(path, 50, 1'000'000);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  Checkpointer* cp = c->get();
  wake_on_commit(w, cp);
  const auto db_size_before = fs::file_size(path);
  for (int i = 0; i < 2000; ++i) {
    exec(w, "INSERT INTO t(v) VALUES (randomblob(200))");
  }
  for (int i = 0; i < 200 && (cp->checkpoints() == 0 || fs::file_size(path) == db_size_before);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(cp->checkpoints(), 0u);
  // The rows reached the database file itself, not only the WAL.
  EXPECT_GT(fs::file_size(path), db_size_before + 100'000);
  c->reset();
  EXPECT_EQ(count_rows(path), 2000);
  sqlite3_close_v2(w);
}

// A WAL that cannot restart (a reader holds an old snapshot) stays past the threshold: the thread
// still runs one pass per `wake_frames` frames written, as SQLite's autocheckpoint would, not one
// per commit (each pass costs two fsyncs when it has frames to copy).
TEST_F(CheckpointerTest, AWalPastTheThresholdWakesTheThreadOncePerThresholdOfNewFrames) {
  const std::string path = (dir_ / "t.db").string();
  sqlite3* w = open_writer(path);
  exec(w, "INSERT INTO t(v) VALUES (1)");
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &reader), SQLITE_OK);
  exec(reader, "BEGIN; SELECT count(*) FROM t");  // pins the WAL: it cannot restart
  constexpr int64_t kWake = 50;
  auto c = Checkpointer::start(path, kWake, 1'000'000);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  struct Hook {
    Checkpointer* cp;
    int64_t last = 0;
    int64_t written = 0;  // frames appended to the WAL across restarts
  } hook{c->get()};
  sqlite3_wal_hook(
      w,
      [](void* p, sqlite3*, const char*, int frames) {
        auto* h = static_cast<Hook*>(p);
        h->written += frames >= h->last ? frames - h->last : frames;
        h->last = frames;
        EXPECT_FALSE(h->cp->on_commit(frames));
        return SQLITE_OK;
      },
      &hook);
  for (int i = 0; i < 600; ++i) {
    exec(w, "INSERT INTO t(v) VALUES (randomblob(100))");
    // Time for the thread to run between commits, as it has between IPC messages.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  for (int i = 0; i < 100 && hook.cp->checkpoints() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(hook.written, 3 * kWake);
  EXPECT_GT(hook.cp->checkpoints(), 0u);
  EXPECT_LE(hook.cp->checkpoints(), static_cast<uint64_t>(hook.written / kWake + 1))
      << hook.written << " frames written";
  exec(reader, "COMMIT");
  c->reset();
  sqlite3_close_v2(reader);
  sqlite3_close_v2(w);
}

// Under writes that never pause, SQLite itself never restarts the WAL (a writer would have to
// begin while every frame is copied back): the thread does, so the WAL file stays near
// 4 × wake_frames instead of holding every frame written.
TEST_F(CheckpointerTest, UnderWritesThatNeverPauseTheThreadRestartsTheWal) {
  const std::string path = (dir_ / "t.db").string();
  sqlite3* w = open_writer(path);
  constexpr int64_t kWake = 50;
  auto c = Checkpointer::start(path, kWake, 1'000'000);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  Checkpointer* cp = c->get();
  wake_on_commit(w, cp);
  uintmax_t largest_wal = 0;
  constexpr int kCommits = 3000;
  for (int i = 0; i < kCommits; ++i) {
    exec(w, "INSERT INTO t(v) VALUES (randomblob(200))");
    std::error_code ec;
    largest_wal = std::max(largest_wal, fs::file_size(path + "-wal", ec));
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  EXPECT_GT(cp->restarts(), 0u);
  // Every commit appends at least one 4 KiB frame: kept whole, the WAL would reach 12 MiB.
  EXPECT_LT(largest_wal, uintmax_t{4} << 20);
  c->reset();
  EXPECT_EQ(count_rows(path), kCommits);
  sqlite3_close_v2(w);
}

// Through dbos: the knob turns it on, IPC stays exactly once and in order, and the WAL never grows
// far past dbos.sqlite.wal_max_mb though the writes never pause.
TEST_F(CheckpointerTest, IpcWithBackgroundCheckpointsKeepsTheWalUnderItsCap) {
  auto& knobs = KnobRegistry::global();
  ASSERT_TRUE(knobs.set("dbos.sqlite.checkpoint", "background").is_ok());
  ASSERT_TRUE(knobs.set("dbos.sqlite.wal_autocheckpoint", "100").is_ok());
  ASSERT_TRUE(knobs.set("dbos.sqlite.wal_max_mb", "2").is_ok());
  const std::string path = (dir_ / "os.db").string();
  auto db = Database::open("sqlite:" + path);
  ASSERT_TRUE(db.is_ok()) << db.status().to_string();
  auto sender_session = (*db)->connect();
  ASSERT_TRUE(sender_session.is_ok());
  Ipc sender(**sender_session);
  ASSERT_TRUE(sender.create_endpoint(1).is_ok());
  ASSERT_TRUE(sender.create_endpoint(2).is_ok());
  constexpr int kMessages = 3000;
  std::thread receiver([&] {
    auto s = (*db)->connect();
    ASSERT_TRUE(s.is_ok());
    Ipc rx(**s);
    int next = 0;
    while (next < kMessages) {
      auto got = rx.recv(2, 64, std::chrono::seconds(30));
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      for (const Message& m : *got) {
        ASSERT_EQ(m.data, std::string(1000, static_cast<char>('a' + next % 26)));
        ++next;
      }
    }
  });
  uintmax_t largest_wal = 0;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(sender.send(1, 2, std::string(1000, static_cast<char>('a' + i % 26))).is_ok());
    std::error_code ec;
    largest_wal = std::max(largest_wal, fs::file_size(path + "-wal", ec));
  }
  receiver.join();
  // Without the cap the WAL would hold every frame of 3000 sends and takes (≥ 6000 pages, 24 MiB).
  EXPECT_LT(largest_wal, uintmax_t{6} << 20);
}

}  // namespace
}  // namespace sluice::dbos
