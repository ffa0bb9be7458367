#include "dbos/checkpointer.h"

#include <fmt/format.h>

namespace sluice::dbos {

Result<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::string& path,
                                                          int64_t wake_frames, int64_t cap_frames) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return unavailable(
        fmt::format("cannot open SQLite database {} for its checkpointer: {}", path, msg));
  }
  // Its own commits (none) would otherwise checkpoint inline too.
  sqlite3_wal_autocheckpoint(db, 0);
  // A connection learns that the file is in WAL mode, and opens the WAL, on its first read;
  // until then a checkpoint through it does nothing.
  char* err = nullptr;
  rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    sqlite3_close_v2(db);
    return unavailable(
        fmt::format("cannot read SQLite database {} for its checkpointer: {}", path, msg));
  }
  std::unique_ptr<Checkpointer> c(new Checkpointer(db, wake_frames, cap_frames));
  c->thread_ = std::thread([p = c.get()] { p->run(); });
  return c;
}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  sqlite3_close_v2(db_);
}

bool Checkpointer::on_commit(int64_t frames) {
  if (frames >= cap_frames_) {
    return true;
  }
  int64_t since = woken_at_frames_.load(std::memory_order_relaxed);
  if (frames < since) {
    since = 0;  // the WAL restarted: count from its start
  }
  if (frames - since < wake_frames_) {
    return false;
  }
  // One wake-up per round: the flag is cleared when the checkpoint starts. Two hooks that race
  // here both store a length the WAL had: the count only paces the passes, so either will do.
  woken_at_frames_.store(frames, std::memory_order_relaxed);
  if (!pending_.exchange(true, std::memory_order_acq_rel)) {
    std::lock_guard lock(mu_);
    cv_.notify_one();
  }
  return false;
}

void Checkpointer::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || pending_.load(std::memory_order_acquire); });
    if (stop_) {
      return;
    }
    lock.unlock();
    pending_.store(false, std::memory_order_release);
    // Busy (another process's checkpoint under way) or an I/O error: the next round retries.
    int frames = 0;
    int copied = 0;
    (void)sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
    checkpoints_.fetch_add(1, std::memory_order_relaxed);
    if (copied > 0) {
      sync_file(SQLITE_FCNTL_FILE_POINTER);
    }
    if (frames >= restart_frames_) {
      restart();
    }
    lock.lock();
  }
}

// SQLite syncs the database file only when a checkpoint copies the WAL to its end, which under
// writes that never pause only the restart does, with the write lock held: it would then flush
// every page the passes before it copied (tens of MiB, milliseconds for every writer). So the
// thread syncs after each pass, and before the restart runs one more pass and syncs both files:
// the restart's own copy and syncs are then of what the last moments wrote.
void Checkpointer::sync_file(int which) {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db_, "main", which, &file) == SQLITE_OK && file != nullptr &&
      file->pMethods != nullptr) {
    (void)file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
  }
}

void Checkpointer::restart() {
  int copied = 0;
  (void)sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, &copied);
  if (copied > 0) {
    sync_file(SQLITE_FCNTL_FILE_POINTER);
  }
  sync_file(SQLITE_FCNTL_JOURNAL_POINTER);
  busy_tries_ = 0;
  sqlite3_busy_handler(db_, &Checkpointer::on_busy, this);
  const int rc =
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
  sqlite3_busy_handler(db_, nullptr, nullptr);
  if (rc == SQLITE_OK) {
    restarts_.fetch_add(1, std::memory_order_relaxed);
  }
}

// While it waits for the write lock the restart holds up nobody; while it waits for readers it
// holds the write lock, and writers wait with it. So it yields a little and gives up: the next
// pass tries again.
int Checkpointer::on_busy(void* self, int /*count*/) {
  auto* c = static_cast<Checkpointer*>(self);
  if (++c->busy_tries_ > 64) {
    return 0;
  }
  std::this_thread::yield();
  return 1;
}

}  // namespace sluice::dbos
