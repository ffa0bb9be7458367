// Internal: copies the SQLite WAL back into the database file on a thread of its own, so that no
// commit pays for it (dbos.sqlite.checkpoint = background).
//
// By default SQLite checkpoints inside the commit that crosses `wal_autocheckpoint` frames: that
// commit copies the WAL back and fsyncs the database file (~15 ms on the virtual disks of
// docs/dbos.md), and every transaction queued behind it waits. Here each connection's WAL hook
// wakes this thread instead, which runs a PASSIVE checkpoint (it waits for no reader or writer).
// Readers start at the first frame not yet copied back (SQLite's `minFrame`), so a WAL kept
// copied back does not slow them, however long it is.
//
// A PASSIVE checkpoint never restarts the WAL while writes keep coming, so the WAL grows under
// sustained load. Past `cap_frames` the committing connection restarts it itself (a RESTART
// checkpoint, which blocks writers while it copies the rest and syncs): a rare stall instead of
// one every `wake_frames`.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sluice/common/result.h"

namespace sluice::dbos {

class Checkpointer {
 public:
  // Opens a connection of its own to the database at `path` (already in WAL mode) and starts the
  // thread.
  static Result<std::unique_ptr<Checkpointer>> start(const std::string& path, int64_t wake_frames,
                                                     int64_t cap_frames);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // From a connection's WAL hook after each commit, with the frames now in the WAL. Returns true
  // when the WAL is past the cap: the caller restarts it itself.
  bool on_commit(int64_t frames);

  uint64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }

 private:
  Checkpointer(sqlite3* db, int64_t wake_frames, int64_t cap_frames)
      : db_(db), wake_frames_(wake_frames), cap_frames_(cap_frames) {}
  void run();

  sqlite3* db_;
  const int64_t wake_frames_;
  const int64_t cap_frames_;
  std::atomic<bool> pending_{false};
  std::atomic<uint64_t> checkpoints_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sluice::dbos
