// Futex sleeping and the knobs of sluice::oq (see include/sluice/oqueue/detail/wait.h).
#include "sluice/oqueue/detail/wait.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "sluice/common/knobs.h"

namespace sluice::oq::detail {
namespace {

const IntKnob kSpinBeforeSleep(
    {.name = "oqueue.spin_before_sleep",
     .default_value = 2000,
     .min = 0,
     .max = 10'000'000,
     .stage = KnobStage::kRuntime,
     .help = "most pause iterations a kBlock queue waiter spins before it yields and sleeps "
             "(each handle adapts below it when spins keep running out)",
     .build_flag = {}});

const IntKnob kYieldBeforeSleepUs(
    {.name = "oqueue.yield_before_sleep_us",
     .default_value = 50,
     .min = 0,
     .max = 1'000'000,
     .stage = KnobStage::kRuntime,
     .help = "microseconds a kBlock queue waiter whose spin ran out calls sched_yield() before "
             "it sleeps in the kernel (hands the CPU to a thread it may be waiting for)",
     .build_flag = {}});

const IntKnob kDefaultCapacity(
    {.name = "oqueue.default_capacity",
     .default_value = 1024,
     .min = 2,
     .max = int64_t{1} << 30,
     .stage = KnobStage::kRuntime,
     .help = "ring slots of an observable queue built without an explicit capacity (rounded up "
             "to a power of two)",
     .build_flag = {}});

const BoolKnob kMembarrier(
    {.name = "oqueue.membarrier",
     .default_value = true,
     .stage = KnobStage::kRuntime,
     .help = "single-producer/consumer queues built while true pair their hot path with "
             "membarrier(2) on attach; false (or a kernel without it) uses a locked instruction "
             "per operation instead",
     .build_flag = {}});

// Queries and registers private expedited membarrier once per process.
bool membarrier_registered() {
  static const bool ok = [] {
    const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
      return false;
    return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ok;
}

uint32_t* futex_word(std::atomic<uint32_t>& word) {
  // std::atomic<uint32_t> is a plain lock-free 32-bit word (static_assert in wait.h).
  return reinterpret_cast<uint32_t*>(&word);
}

}  // namespace

void yield_cpu() noexcept {
  sched_yield();
}

void futex_wait_until(std::atomic<uint32_t>& word, uint32_t expected,
                      std::chrono::steady_clock::time_point deadline) noexcept {
  timespec ts{};
  timespec* timeout = nullptr;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    if (ns <= 0)
      return;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    timeout = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. EAGAIN (value changed),
  // EINTR and ETIMEDOUT all just return: the caller re-checks.
  syscall(SYS_futex, futex_word(word), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, timeout,
          nullptr, FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(std::atomic<uint32_t>& word) noexcept {
  syscall(SYS_futex, futex_word(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

bool asymmetric_barrier_enabled() noexcept {
  return kMembarrier.get() && membarrier_registered();
}

void heavy_barrier() noexcept {
  // Cannot fail once registered (EINTR is not among its errors); a failure would break the
  // pairing with light_barrier(), so it is fatal.
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
    __builtin_trap();
}

int64_t spin_before_sleep() noexcept {
  return kSpinBeforeSleep.get();
}

std::chrono::nanoseconds yield_before_sleep() noexcept {
  return std::chrono::microseconds(kYieldBeforeSleepUs.get());
}

size_t default_capacity() noexcept {
  return static_cast<size_t>(kDefaultCapacity.get());
}

}  // namespace sluice::oq::detail
