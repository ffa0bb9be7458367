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
  // One wake-up per round: the flag is cleared when the checkpoint starts.
  if (frames >= wake_frames_ && !pending_.exchange(true, std::memory_order_acq_rel)) {
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
    (void)sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    checkpoints_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
  }
}

}  // namespace sluice::dbos
