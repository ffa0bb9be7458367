// Internal: wake-ups without polling for SQLite receivers, across threads and processes.
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
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "sluice/common/result.h"

namespace sluice::dbos {

class WakeTable {
 public:
  static constexpr size_t kSlots = 4096;

  // Maps `path`, creating it (zero-filled) if needed.
  static Result<std::unique_ptr<WakeTable>> open(const std::string& path);
  ~WakeTable();
  WakeTable(const WakeTable&) = delete;
  WakeTable& operator=(const WakeTable&) = delete;

  uint32_t epoch(int64_t key) const;
  // After committing work for `key`.
  void notify(int64_t key);
  // Sleeps until epoch(key) != seen, a spurious wake-up, or timeout_ns. Returns false on timeout.
  bool wait(int64_t key, uint32_t seen, int64_t timeout_ns);

 private:
  struct Slot {
    std::atomic<uint32_t> epoch;
    std::atomic<uint32_t> waiters;
  };
  static_assert(sizeof(Slot) == 8);
  WakeTable(void* base, size_t bytes) : slots_(static_cast<Slot*>(base)), bytes_(bytes) {}
  Slot& slot(int64_t key) const;

  Slot* slots_;
  size_t bytes_;
};

}  // namespace sluice::dbos
