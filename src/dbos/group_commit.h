// Internal: group commit for the SQLite sessions of one process.
//
// SQLite lets one writer in at a time, and each write transaction pays a commit (WAL frames
// written, locks taken and released) and, because another connection wrote last, a cold page
// cache. When several threads of a process want to write at once, the first to arrive becomes the
// leader: it opens one transaction on its own connection and runs every queued transaction
// function in it, then commits once. A function that fails gets its own error and the others
// commit: the group runs first without savepoints (two statements more for each member), and
// when a function fails the leader rolls back and runs the others again, each in a SAVEPOINT.
//
// A queued function runs on the leader's thread, with its own Session pointing at the leader's
// connection for the duration (the connections are swapped, and swapped back before the waiter
// is released), so statements, nested transact() calls and after_commit() hooks behave as they
// do in a transaction of its own; the hooks run on the caller's thread once the group commits.
// The caller is blocked meanwhile, so nothing else touches its Session (one Session per thread).
//
// Fewer than min_group transactions under way at once run one at a time, each its own transaction.
// Transactions across processes still serialize on SQLite's lock: grouping only spans the threads
// of one Database.
//
// With a process writer (dbos.sqlite.shared_writer), every write transaction of the process, alone
// or grouped, runs on that one connection, handed to the caller's Session for the transaction. A
// connection that finds the WAL written by another connection at the start of a transaction drops
// its whole page cache, and every SQLite connection keeps its own: with a connection per thread,
// the threads of a process that write in turn (the two ends of an IPC ping-pong) each began with
// a cold cache and read the B-tree pages again from the WAL. Writers serialize on SQLite's lock
// anyway; here they wait for the writer instead (yielding a while, then sleeping on its mutex)
// rather than polling SQLite's lock. Reads outside a write transaction stay on each Session's own
// connection and run in parallel.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "sluice/common/result.h"

namespace sluice::dbos {

class Connection;
class Session;

class GroupCommit {
 public:
  // Transactions group while at least `min_group` are under way at once; fewer run one at a
  // time, each its own transaction.
  // `writer`: the process writer every write transaction runs on, or null: each runs on its
  // Session's own connection.
  GroupCommit(size_t min_group, std::unique_ptr<Connection> writer);
  ~GroupCommit();

  // Runs `fn` as one transaction of `session` (whose transaction depth is 0), grouped with the
  // transactions other threads start meanwhile. `conflict` tells the caller that the failure
  // was a conflict (the database busy, or the group taken down by another member's error), so
  // the transaction may be tried again.
  Status run(Session& session, const std::function<Status()>& fn, bool idempotent, bool* conflict);

  // Transactions that committed in a group of more than one, and the groups; transactions
  // waiting or running now (for tests).
  int64_t grouped_transactions() const;
  int64_t groups() const;
  size_t queued() const;

 private:
  struct Waiter {
    Session* session;
    const std::function<Status()>* fn;
    bool idempotent;
    Status result;
    bool conflict = false;  // failed for a conflict: the caller tries again
    bool failed = false;    // its function failed: not run again, its own error stands
    // Set under mu_; read without it while the waiter spins before it sleeps.
    std::atomic<bool> done{false};
    std::atomic<bool> leads{false};  // at the front of the queue: runs the next group
    std::condition_variable cv;
  };

  // The leader's work: one transaction on `leader`'s connection for every waiter of `batch`.
  void run_group(Session& leader, const std::vector<Waiter*>& batch);
  // Runs `fn` with `session` on the process writer (when there is one), holding it.
  template <typename Fn>
  auto on_writer(Session& session, Fn&& fn);

  const size_t min_group_;
  const bool has_writer_;
  std::mutex writer_mu_;  // held while a transaction runs on the writer
  // The process writer, or null; while lent, the borrowing Session's own connection.
  std::unique_ptr<Connection> writer_;
  std::atomic<size_t> active_{0};  // transactions in run() now
  mutable std::mutex mu_;
  std::deque<Waiter*> queue_;  // front: the leader of the group in flight
  int64_t grouped_ = 0;
  int64_t groups_ = 0;
};

}  // namespace sluice::dbos
