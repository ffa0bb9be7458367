// Internal to sluice::oq: the pieces of waiting that OQueue<T> shares across all T — a pause
// instruction, a futex-backed event count, and the knobs a waiter reads. Not a public API; include
// "sluice/oqueue/oqueue.h" instead.
//
// Thread safety: every function here is safe from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sluice::oq::detail {

// Hot counters sit alone on 128 bytes: adjacent-line prefetchers pull cache lines in pairs.
inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kCursorAlign = 2 * kCacheLine;

// One CPU hint that this thread is busy-waiting (x86 PAUSE, Arm YIELD).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// sched_yield(); out of line so the header stays free of system headers.
void yield_cpu() noexcept;

// An event count in the style of folly's TurnSequencer: waiters announce themselves in
// `sleepers` and sleep on `epoch`; a notifier pays for a futex wake only when `sleepers` is
// non-zero. The two words share a line: both are touched only on the slow path.
struct alignas(kCursorAlign) EventCount {
  std::atomic<uint32_t> epoch{0};
  std::atomic<uint32_t> sleepers{0};
};
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "the futex word must be a plain 32-bit integer");

// Sleeps in the kernel while `word` still holds `expected`, until a wake-up, a signal or
// `deadline` (CLOCK_MONOTONIC, the clock std::chrono::steady_clock reads on Linux). Returns
// early and spuriously at will; callers re-check their condition.
void futex_wait_until(std::atomic<uint32_t>& word, uint32_t expected,
                      std::chrono::steady_clock::time_point deadline) noexcept;

// Wakes every thread sleeping on `word`.
void futex_wake_all(std::atomic<uint32_t>& word) noexcept;

// Bumps the epoch and wakes sleepers, if any announced themselves. The sleeper load is
// seq_cst: it pairs with the waiter's seq_cst `sleepers` increment (see oqueue.h, "Waiting").
inline void notify_if_sleeping(EventCount& ev) noexcept {
  if (ev.sleepers.load(std::memory_order_seq_cst) != 0) [[unlikely]] {
    ev.epoch.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(ev.epoch);
  }
}

// Wakes everyone unconditionally (used by detach, which may remove what a waiter waits for).
inline void notify_all(EventCount& ev) noexcept {
  ev.epoch.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(ev.epoch);
}

// Knob `oqueue.spin_before_sleep`: the most pause iterations a kBlock waiter spins before it
// yields and then sleeps in the kernel.
int64_t spin_before_sleep() noexcept;

// Knob `oqueue.yield_before_sleep_us`: how long a kBlock waiter whose spin ran out calls
// sched_yield() before it sleeps in the kernel.
std::chrono::nanoseconds yield_before_sleep() noexcept;

// A kBlock waiter's adaptive spin budget, kept per handle in `word` (UINT32_MAX: not yet set).
// A wait the spin ended gives the budget back an eighth (up to the knob); a spin that ran out
// halves it (down to kMinSpins). So it stays near the knob while fewer than about one wait in
// five outlasts it, and falls to a few pauses when spinning keeps failing, as when the thread
// being waited for cannot run until this one yields its CPU.
class SpinBudget {
 public:
  static constexpr uint32_t kMinSpins = 16;
  explicit SpinBudget(uint32_t& word) noexcept : word_(word) {
    const auto max = static_cast<uint32_t>(std::min<int64_t>(spin_before_sleep(), UINT32_MAX - 1));
    max_ = max;
    if (word_ > max_)
      word_ = max_;
  }
  uint32_t limit() const noexcept { return word_; }
  void spun_enough() noexcept { word_ = std::min(max_, word_ + word_ / 8 + 1); }
  void ran_out() noexcept { word_ = std::max(std::min(kMinSpins, max_), word_ / 2); }

 private:
  uint32_t& word_;
  uint32_t max_;
};

// Asymmetric barrier (single-producer / single-consumer queues; see oqueue.h, "Single-owner
// cursors"). The light side is a compiler-only barrier on the hot path; the heavy side is
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every thread of the process running at that time
// executes a full memory barrier before it returns, so each thread's instruction stream is split
// at a point before which its stores are visible to the caller and after which it sees
// everything the caller stored before the call.
inline void light_barrier() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
}
// The same compiler-only barrier narrowed to two objects: the store to `stored` is emitted before
// it and the load of `loaded` after it, while everything else the caller holds in registers
// (the message, the ring's address) stays there instead of being reloaded.
template <typename Stored, typename Loaded>
inline void light_barrier_between(const Stored& stored, Loaded& loaded) noexcept {
  asm volatile("" : "+m"(loaded) : "m"(stored));
}
// True when the kernel offers private expedited membarrier (registered once per process) and
// the knob `oqueue.membarrier` is true. Queues read it at construction; false makes them fall
// back to a locked read-modify-write on the hot path.
bool asymmetric_barrier_enabled() noexcept;
// The heavy side. REQUIRES: asymmetric_barrier_enabled() returned true in this process.
void heavy_barrier() noexcept;

// Knob `oqueue.default_capacity`: the ring capacity of a queue built with capacity 0.
size_t default_capacity() noexcept;

}  // namespace sluice::oq::detail
