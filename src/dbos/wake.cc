#include "dbos/wake.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <thread>

namespace sluice::dbos {
namespace {

std::atomic<uint64_t> g_spin_wakeups{0};
std::atomic<uint64_t> g_sleeps{0};
std::atomic<int> g_spinners{0};

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// A spinner occupies a CPU: leave at least one to the threads that do the work it waits for
// (on one CPU, nobody spins).
bool enter_spin() {
  static const int max_spinners =
      std::max(0, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  int n = g_spinners.load(std::memory_order_relaxed);
  while (n < max_spinners) {
    if (g_spinners.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

int64_t SpinPolicy::budget_ns() const {
  if (max_ns_ <= 0 || average_ns_ > max_ns_) {
    return 0;
  }
  return std::min(max_ns_, 2 * average_ns_);
}

void SpinPolicy::record(int64_t waited_ns) {
  // Clamped so that one long sleep (a timeout of seconds) is forgotten after a few quick waits.
  const int64_t w = std::clamp<int64_t>(waited_ns, 0, 4 * std::max<int64_t>(max_ns_, 1));
  average_ns_ += (w - average_ns_) / 4;
}

uint64_t WakeTable::spin_wakeups() {
  return g_spin_wakeups.load(std::memory_order_relaxed);
}

uint64_t WakeTable::sleeps() {
  return g_sleeps.load(std::memory_order_relaxed);
}

Result<std::unique_ptr<WakeTable>> WakeTable::open(const std::string& path) {
  const size_t bytes = kSlots * sizeof(Slot);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errno_status(errno, fmt::format("cannot open the wake-up file {}", path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < bytes) {
    // Growing is idempotent: every process sets the same size, new bytes read as zero.
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int err = errno;
      ::close(fd);
      return errno_status(err, fmt::format("cannot size the wake-up file {}", path));
    }
  }
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);
  if (base == MAP_FAILED) {
    return errno_status(err, fmt::format("cannot map the wake-up file {}", path));
  }
  return std::unique_ptr<WakeTable>(new WakeTable(base, bytes, /*shared=*/true));
}

const int WakeTable::kPrivate = FUTEX_PRIVATE_FLAG;

Result<std::unique_ptr<WakeTable>> WakeTable::in_process() {
  const size_t bytes = kSlots * sizeof(Slot);
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    return errno_status(errno, "cannot map the in-process wake-up table");
  }
  return std::unique_ptr<WakeTable>(new WakeTable(base, bytes, /*shared=*/false));
}

WakeTable::~WakeTable() {
  ::munmap(slots_, bytes_);
}

WakeTable::Slot& WakeTable::slot(int64_t key) const {
  uint64_t h = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ULL;
  return slots_[(h >> 32) % kSlots];
}

uint32_t WakeTable::epoch(int64_t key) const {
  return slot(key).epoch.load(std::memory_order_seq_cst);
}

void WakeTable::notify(int64_t key) {
  Slot& s = slot(key);
  s.epoch.fetch_add(1, std::memory_order_seq_cst);
  if (s.waiters.load(std::memory_order_seq_cst) > 0) {
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&s.epoch), FUTEX_WAKE | futex_flags_, INT_MAX,
              nullptr, nullptr, 0);
  }
}

bool WakeTable::wait(int64_t key, uint32_t seen, int64_t timeout_ns, SpinPolicy* policy) {
  Slot& s = slot(key);
  const int64_t start = policy != nullptr ? monotonic_ns() : 0;
  const int64_t spin_ns = policy != nullptr ? std::min(policy->budget_ns(), timeout_ns) : 0;
  if (spin_ns > 0 && enter_spin()) {
    bool changed = false;
    // The clock is read every 64 pauses (a few µs): a pause is 10–140 cycles by CPU model.
    for (uint32_t i = 1;; ++i) {
      if (s.epoch.load(std::memory_order_acquire) != seen) {
        changed = true;
        break;
      }
      cpu_relax();
      if (i % 64 == 0 && monotonic_ns() - start >= spin_ns) {
        break;
      }
    }
    g_spinners.fetch_sub(1, std::memory_order_relaxed);
    if (changed) {
      g_spin_wakeups.fetch_add(1, std::memory_order_relaxed);
      policy->record(monotonic_ns() - start);
      return true;
    }
    timeout_ns -= monotonic_ns() - start;
    if (timeout_ns <= 0) {
      policy->record(monotonic_ns() - start);
      return false;
    }
  }
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
  bool woke = true;
  if (s.epoch.load(std::memory_order_seq_cst) == seen) {
    g_sleeps.fetch_add(1, std::memory_order_relaxed);
    struct timespec ts {};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    long rc = ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&s.epoch), FUTEX_WAIT | futex_flags_,
                        seen, &ts, nullptr, 0);
    if (rc != 0 && errno == ETIMEDOUT) {
      woke = false;
    }
  }
  s.waiters.fetch_sub(1, std::memory_order_seq_cst);
  if (policy != nullptr) {
    policy->record(monotonic_ns() - start);
  }
  return woke;
}

}  // namespace sluice::dbos
