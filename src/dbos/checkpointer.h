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
// A PASSIVE checkpoint never restarts the WAL while writes keep coming: SQLite restarts it only
// when a writer begins while every frame is copied back, which under sustained writes never
// happens. A WAL that grows is written to new blocks of its file, which made an IPC round trip
// 1.4 × as long (docs/dbos.md). So once the WAL holds `restart_frames` (4 × `wake_frames`),
// the thread follows its pass with a RESTART checkpoint: it takes the write lock, copies what was
// written since its last pass, syncs, and the next writer starts the WAL over. The thread syncs
// the database file after every pass itself, outside the lock, so that the restart's sync is of
// the last moments' pages only (SQLite's own PASSIVE passes leave that sync to the first
// checkpoint that reaches the WAL's end). It gives up after a short wait for the lock or for
// readers and tries again at its next pass. Past `cap_frames` the committing connection
// restarts the WAL itself, whatever it waits for: the bound when the thread keeps failing.
#pragma once

#include <sqlite3.h>

#include <algorithm>
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

  // From a connection's WAL hook after each commit, with the frames now in the WAL. Wakes the
  // thread once `wake_frames` frames have been written since the last wake-up, as SQLite's
  // autocheckpoint would run: the WAL's length alone is no measure, since a WAL that the passes
  // never let restart stays past the threshold, and a pass (an fsync) per commit then cost IPC
  // two fifths of its rate. Returns true when the WAL is past the cap: the caller restarts it
  // itself.
  bool on_commit(int64_t frames);

  uint64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }
  uint64_t restarts() const { return restarts_.load(std::memory_order_relaxed); }

 private:
  Checkpointer(sqlite3* db, int64_t wake_frames, int64_t cap_frames)
      : db_(db),
        wake_frames_(wake_frames),
        cap_frames_(cap_frames),
        restart_frames_(std::min(cap_frames, 4 * wake_frames)) {}
  void run();
  void restart();
  void sync_file(int which);  // SQLITE_FCNTL_FILE_POINTER (database) or _JOURNAL_POINTER (WAL)
  static int on_busy(void* self, int count);

  sqlite3* db_;
  const int64_t wake_frames_;
  const int64_t cap_frames_;
  const int64_t restart_frames_;
  std::atomic<bool> pending_{false};
  // The WAL's length at the last wake-up; a shorter WAL has restarted since.
  std::atomic<int64_t> woken_at_frames_{0};
  std::atomic<uint64_t> checkpoints_{0};
  std::atomic<uint64_t> restarts_{0};
  int busy_tries_ = 0;  // the restart's current wait, on the thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace sluice::dbos
