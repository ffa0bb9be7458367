#include "dbos/group_commit.h"

#include <thread>
#include <utility>

#include "dbos/connection.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {
namespace {

constexpr int kSpins = 32;

// Set on a thread while it runs a group: a member's function that starts a transaction on
// another session of the same process must not queue behind its own group.
thread_local bool t_leading = false;

Status statement(Connection& c, const char* sql) {
  QueryResult ignored;
  return c.query(sql, {}, &ignored);
}

}  // namespace

Status GroupCommit::run(Session& session, const std::function<Status()>& fn, bool idempotent,
                        bool* conflict) {
  // A transaction or two at a time go straight to SQLite's lock: their threads then build
  // statements and read results in parallel beside the one writer, and a thread can take the
  // lock again at once, which is worth more than the commit a group would save.
  struct Active {
    std::atomic<size_t>& n;
    ~Active() { n.fetch_sub(1, std::memory_order_relaxed); }
  } active{active_};
  if (active_.fetch_add(1, std::memory_order_relaxed) + 1 < min_group_ || t_leading) {
    *conflict = false;
    return session.transact_alone(fn, idempotent);
  }
  Waiter w{.session = &session, .fn = &fn, .idempotent = idempotent};
  std::unique_lock lock(mu_);
  queue_.push_back(&w);
  if (queue_.front() == &w) {
    w.leads.store(true, std::memory_order_relaxed);
  } else {
    // A group is in flight, and groups take tens of microseconds: yield a while before
    // sleeping, as SQLite's own lock waiters here do, since a sleep and wake-up cost as much.
    // Every waiter does, not only the next leader: one awake when its group finishes is released
    // without a futex wake-up, which for a group of 40 would be 39 system calls of the leader's.
    lock.unlock();
    for (int spin = 0; spin < kSpins && !w.done.load(std::memory_order_acquire) &&
                       !w.leads.load(std::memory_order_acquire);
         ++spin) {
      std::this_thread::yield();
    }
    lock.lock();
    w.cv.wait(lock, [&] {
      return w.done.load(std::memory_order_relaxed) || w.leads.load(std::memory_order_relaxed);
    });
  }
  if (!w.done.load(std::memory_order_relaxed)) {
    // The leader: everyone queued now joins this group; later arrivals wait for the next one.
    std::vector<Waiter*> batch(queue_.begin(), queue_.end());
    lock.unlock();
    t_leading = true;
    run_group(session, batch);
    t_leading = false;
    lock.lock();
    for (Waiter* x : batch) {
      queue_.pop_front();
      if (x != &w) {
        x->done.store(true, std::memory_order_release);
        x->cv.notify_one();
      }
    }
    if (!queue_.empty()) {
      queue_.front()->leads.store(true, std::memory_order_release);  // the next leader
      queue_.front()->cv.notify_one();
    }
  }
  *conflict = w.conflict;
  return std::move(w.result);
}

void GroupCommit::run_group(Session& leader, const std::vector<Waiter*>& batch) {
  if (batch.size() == 1) {
    // Alone: exactly the transaction it would be without grouping (batch[0] is the leader's).
    batch[0]->result = leader.transact_alone(*batch[0]->fn, batch[0]->idempotent);
    return;
  }
  Connection& c = leader.connection();
  // Every member that has not failed on its own gets `s`.
  auto fail_all = [&](const Status& s, bool conflict) {
    for (Waiter* w : batch) {
      if (!w->failed) {
        w->result = s;
        w->conflict = conflict;
      }
      w->session->after_commit_.clear();
    }
  };
  // Runs a member's function with its session on the group's connection.
  auto run_member = [&](Waiter& w) {
    Session& s = *w.session;
    s.after_commit_.clear();
    if (&s != &leader) {
      std::swap(s.conn_, leader.conn_);
    }
    ++s.txn_depth_;
    Status r = (*w.fn)();
    --s.txn_depth_;
    if (&s != &leader) {
      std::swap(s.conn_, leader.conn_);
    }
    return r;
  };
  auto failed = [&](Waiter& w, Status r) {
    w.result = std::move(r);
    w.conflict = c.last_error_kind() == ErrorKind::kConflict;
    w.failed = true;
    w.session->after_commit_.clear();
  };
  // First without savepoints: members rarely fail, and a savepoint and its release are two
  // statements more for each. When one fails, the whole transaction is rolled back, its error
  // stands, and the others run again in a new one, each in a savepoint.
  for (const bool savepoints : {false, true}) {
    // Waits for the write lock (other processes) with the connection's busy handler, then
    // with back-off; then every member is told to try again.
    Status begun = leader.run_with_retries([&] { return c.begin(true); }, false);
    if (!begun.is_ok()) {
      fail_all(begun, c.last_error_kind() == ErrorKind::kConflict);
      return;
    }
    bool again = false;
    for (size_t i = 0; i < batch.size() && !again; ++i) {
      Waiter& w = *batch[i];
      if (w.failed) {
        continue;
      }
      if (!savepoints) {
        Status r = run_member(w);
        if (!r.is_ok()) {
          failed(w, std::move(r));
          (void)c.rollback();
          again = true;
        }
        continue;
      }
      Status r = statement(c, "SAVEPOINT sluice_group");
      if (r.is_ok()) {
        r = run_member(w);
        if (r.is_ok()) {
          r = statement(c, "RELEASE sluice_group");
        }
      }
      if (r.is_ok()) {
        continue;
      }
      failed(w, std::move(r));
      Status undone = statement(c, "ROLLBACK TO sluice_group");
      if (undone.is_ok()) {
        undone = statement(c, "RELEASE sluice_group");
      }
      if (!undone.is_ok()) {
        // The error ended the whole transaction (SQLite rolls back on I/O errors, a full disk
        // and the like): nobody's work is in it any more; the rest try again.
        (void)c.rollback();
        fail_all(unavailable("a transaction grouped with this one failed and took the group "
                             "down; try again"),
                 true);
        return;
      }
    }
    if (again) {
      continue;
    }
    Status committed = c.commit();
    if (!committed.is_ok()) {
      const bool conflict = c.last_error_kind() == ErrorKind::kConflict;
      (void)c.rollback();
      fail_all(committed, conflict);
      return;
    }
    int64_t landed = 0;
    for (Waiter* w : batch) {
      landed += w->failed ? 0 : 1;
    }
    std::lock_guard lock(mu_);
    ++groups_;
    grouped_ += landed;
    return;
  }
}

int64_t GroupCommit::grouped_transactions() const {
  std::lock_guard lock(mu_);
  return grouped_;
}

int64_t GroupCommit::groups() const {
  std::lock_guard lock(mu_);
  return groups_;
}

size_t GroupCommit::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace sluice::dbos
