// Internal: wake-ups without polling for SQLite receivers, across threads and processes, and
// (WakeTable::in_process) for the PostgreSQL receivers of one process, which NotifyHub wakes.
//
// A small file beside the database (`<db>-wake`) is mapped shared by every process that opens the
// database. It holds kSlots slots; a receiver id hashes to one. Each slot has two 32-bit words:
//
//   epoch    bumped by a sender after it committed a message for a receiver of the slot; a
//            blocked receiver sleeps on it with FUTEX_WAIT (a shared futex: the kernel keys it by
//            the file page, so it works across processes)
//   waiters  receivers about to sleep on the slot; a sender issues FUTEX_WAKE only when it is > 0
//
// Invariants: a receiver reads epoch (E), then checks the table; if empty it increments waiters
// (seq_cst), re-reads epoch and sleeps only while it still equals E. A sender commits, increments
// epoch (seq_cst), then reads waiters. One of the two sees the other's increment, so a wake-up is
// never lost. A receiver killed while waiting leaves waiters > 0: senders then make a needless
// FUTEX_WAKE, nothing worse. Hash collisions only cause spurious wake-ups.
//
// Spinning first: a receiver may watch its epoch for a while before it registers as a waiter
// (SpinPolicy). A send that lands during the spin costs neither side a system call: the sender
// sees no waiter, and the receiver never sleeps. On a VM each futex hand-off is a cross-CPU
// interrupt and a context switch (20–50 µs on the 2-vCPU machines of docs/dbos.md), as much as
// the SQLite transaction on either side of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "sluice/common/result.h"

namespace sluice::dbos {

// How long one receiver spins before it sleeps, learnt from how long its recent waits lasted
// (the adaptive spin of folly's TurnSequencer and of glibc's adaptive mutexes): a receiver whose
// answers come back within about `max_ns` (a ping-pong partner's transaction) spins for twice its
// average wait, capped at `max_ns`; one whose waits are longer than `max_ns` sleeps at once. The
// average follows every wait, slept or spun, so a receiver that starts getting quick answers
// again spins again. Not thread-safe: one per receiver per Ipc (thread).
class SpinPolicy {
 public:
  explicit SpinPolicy(int64_t max_ns) : max_ns_(max_ns), average_ns_(max_ns / 2) {}
  // Nanoseconds to spin before the next sleep (0: sleep at once).
  int64_t budget_ns() const;
  // A wait that ended after `waited_ns` (spun or slept; a timeout counts as its full length).
  void record(int64_t waited_ns);
  int64_t average_ns() const { return average_ns_; }

 private:
  int64_t max_ns_;
  int64_t average_ns_;  // exponential moving average, weight 1/4
};

class WakeTable {
 public:
  static constexpr size_t kSlots = 4096;

  // Maps `path`, creating it (zero-filled) if needed.
  static Result<std::unique_ptr<WakeTable>> open(const std::string& path);
  // A table for the threads of this process only (PostgreSQL receivers: other processes reach
  // them through NOTIFY and the process's NotifyHub).
  static Result<std::unique_ptr<WakeTable>> in_process();
  ~WakeTable();
  WakeTable(const WakeTable&) = delete;
  WakeTable& operator=(const WakeTable&) = delete;

  uint32_t epoch(int64_t key) const;
  // After committing work for `key`.
  void notify(int64_t key);
  // Sleeps until epoch(key) != seen, a spurious wake-up, or timeout_ns. Returns false on timeout.
  // With a policy, first spins for its budget (when fewer threads of this process spin than
  // there are other CPUs) and records in it how long the wait lasted.
  bool wait(int64_t key, uint32_t seen, int64_t timeout_ns, SpinPolicy* policy = nullptr);

  // Times a wait ended during its spin and times a receiver went to sleep, in this process (for
  // tests and benchmarks).
  static uint64_t spin_wakeups();
  static uint64_t sleeps();

 private:
  struct Slot {
    std::atomic<uint32_t> epoch;
    std::atomic<uint32_t> waiters;
  };
  static_assert(sizeof(Slot) == 8);
  WakeTable(void* base, size_t bytes, bool shared)
      : slots_(static_cast<Slot*>(base)), bytes_(bytes), futex_flags_(shared ? 0 : kPrivate) {}
  Slot& slot(int64_t key) const;
  static const int kPrivate;

  Slot* slots_;
  size_t bytes_;
  int futex_flags_;  // FUTEX_PRIVATE_FLAG for an in-process table: the kernel skips the page key
};

}  // namespace sluice::dbos
