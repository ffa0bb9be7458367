// QueueStats: a snapshot of one observable queue's counters, and the process-wide registry of
// live queues that `sluice oq stats` (and later the SQL layer) reads.
//
// Counters are kept per handle by the one thread that uses the handle (relaxed, single-writer,
// nothing shared is written just for counting) and summed when a snapshot is taken; a detached
// handle's counts are folded into the queue's totals. A snapshot taken under load is therefore
// not atomic across counters, only each counter is.
//
// Thread safety: QueueRegistry is safe from any thread. A stats callback runs with the registry
// lock held, so a queue cannot unregister (be destroyed) while its callback runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::oq {

struct QueueStats {
  std::string name;
  size_t capacity = 0;          // slots in the ring
  size_t history_capacity = 0;  // slots in the weak-observer history ring (0: none yet)

  // Handles attached right now.
  uint64_t producers = 0;
  uint64_t consumers = 0;
  uint64_t strong_observers = 0;
  uint64_t weak_observers = 0;

  uint64_t puts = 0;           // put/try_put/put_until calls that completed
  uint64_t captures = 0;       // messages stored (ring, history or both); 0 while unobserved
  uint64_t filtered = 0;       // puts skipped because no attached handle wanted the message
  uint64_t takes = 0;          // messages taken by consumers
  uint64_t observes = 0;       // messages returned to strong observers
  uint64_t history_reads = 0;  // history() calls by weak observers
  uint64_t drops = 0;          // messages lost: pending when the last consumer left, or a
                               // history slot skipped because another producer held it
  uint64_t waits = 0;          // blocking or timed calls that could not complete at once
  uint64_t depth = 0;          // messages waiting for a consumer (0 with no consumer)

  // Adds the counters (not the name, capacities or attach counts) of `other`.
  void add_counters(const QueueStats& other) {
    puts += other.puts;
    captures += other.captures;
    filtered += other.filtered;
    takes += other.takes;
    observes += other.observes;
    history_reads += other.history_reads;
    drops += other.drops;
    waits += other.waits;
  }
};

// The live queues of this process. Every OQueue adds itself when built and removes itself when
// destroyed.
class QueueRegistry {
 public:
  static QueueRegistry& global();

  // Adds a queue; returns the id remove() takes. `stats` must stay callable until remove().
  uint64_t add(std::string name, std::function<QueueStats()> stats);
  void remove(uint64_t id);

  // One snapshot per live queue, sorted by name (ties in creation order).
  std::vector<QueueStats> snapshot() const;
  size_t size() const;

  QueueRegistry(const QueueRegistry&) = delete;
  QueueRegistry& operator=(const QueueRegistry&) = delete;

 private:
  QueueRegistry() = default;
  struct Entry {
    uint64_t id;
    std::string name;
    std::function<QueueStats()> stats;
  };
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;        // guarded by mu_
  std::vector<Entry> entries_;  // guarded by mu_
};

}  // namespace sluice::oq
