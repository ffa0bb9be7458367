#include "dbos/group_commit.h"

#include <chrono>
#include <thread>
#include <utility>

#include "dbos/connection.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {
namespace {

constexpr int kSpins = 32;
constexpr auto kWriterYieldFor = std::chrono::microseconds(200);

// Set on a thread while it runs a group or holds the process writer: a function that starts a
// transaction on another session of the same process must not queue behind its own group or
// wait for the writer it holds (it gets SQLite's busy error instead, as without grouping).
thread_local bool t_inside = false;

Status statement(Connection& c, const char* sql) {
  QueryResult ignored;
  return c.query(sql, {}, &ignored);
}

}  // namespace

GroupCommit::GroupCommit(size_t min_group, std::unique_ptr<Connection> writer)
    : min_group_(min_group < 1 ? 1 : min_group),
      has_writer_(writer != nullptr),
      writer_(std::move(writer)) {}

GroupCommit::~GroupCommit() = default;

template <typename Fn>
auto GroupCommit::on_writer(Session& session, Fn&& fn) {
  struct Inside {
    Inside() { t_inside = true; }
    ~Inside() { t_inside = false; }
  };
  if (!has_writer_) {
    Inside inside;
    return fn();
  }
  // Transactions hold the writer for tens of microseconds: yield a while before sleeping, as
  // SQLite's busy handler here does, so that releasing it costs no futex wake-up while the
  // other waiters are still awake (two threads writing in turn lost a third of their rate when
  // the waiter slept at once).
  std::unique_lock hold(writer_mu_, std::try_to_lock);
  if (!hold.owns_lock()) {
    const auto until = std::chrono::steady_clock::now() + kWriterYieldFor;
    do {
      std::this_thread::yield();
    } while (!hold.try_lock() && std::chrono::steady_clock::now() < until);
    if (!hold.owns_lock()) {
      hold.lock();
    }
  }
  struct Lent {
    Session& s;
    std::unique_ptr<Connection>& w;
    Lent(Session& session, std::unique_ptr<Connection>& writer) : s(session), w(writer) {
      std::swap(s.conn_, w);
    }
    ~Lent() { std::swap(s.conn_, w); }
  } lent(session, writer_);
  Inside inside;
  return fn();
}

Status GroupCommit::run(Session& session, const std::function<Status()>& fn, bool idempotent,
                        bool* conflict) {
  if (t_inside) {
    *conflict = false;
    return session.transact_alone(fn, idempotent);
  }
  // A transaction or two at a time run one by one: a thread can take the writer again at once,
  // which is worth more than the commit a group would save.
  struct Active {
    std::atomic<size_t>& n;
    ~Active() { n.fetch_sub(1, std::memory_order_relaxed); }
  } active{active_};
  if (active_.fetch_add(1, std::memory_order_relaxed) + 1 < min_group_) {
    *conflict = false;
    // Its hooks run once the writer is released (Session::transact runs what is left).
    return on_writer(session, [&] { return session.transact_alone(fn, idempotent, false); });
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
    on_writer(session, [&] { run_group(session, batch); });
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
    batch[0]->result = leader.transact_alone(*batch[0]->fn, batch[0]->idempotent, false);
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
