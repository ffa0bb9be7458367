#include "sluice/common/clock.h"

#include <time.h>

#include <string>
#include <thread>

#include "common/strings.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

namespace sluice {

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

uint64_t read_tsc() {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<uint64_t>(monotonic_ns());
#endif
}

// A (tsc, monotonic) pair taken as close together as this machine allows: the TSC read is
// bracketed by two clock reads and the tightest of a few tries wins, so a preemption between the
// reads cannot skew the calibration.
struct Pair {
  uint64_t tsc;
  int64_t ns;
};

Pair tight_pair() {
  Pair best{0, 0};
  int64_t best_gap = INT64_MAX;
  for (int i = 0; i < 32; ++i) {
    const int64_t a = monotonic_ns();
    const uint64_t t = read_tsc();
    const int64_t b = monotonic_ns();
    if (b - a < best_gap) {
      best_gap = b - a;
      best = {t, a + (b - a) / 2};
    }
  }
  return best;
}

}  // namespace

bool has_invariant_tsc() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx) != 0 && (edx & (1U << 8)) != 0) {
    return true;
  }
  std::string cpuinfo;
  if (!read_file("/proc/cpuinfo", &cpuinfo).is_ok()) {
    return false;
  }
  const size_t flags = cpuinfo.find("\nflags");
  if (flags == std::string::npos) {
    return false;
  }
  const std::string line = cpuinfo.substr(flags, cpuinfo.find('\n', flags + 1) - flags);
  return line.find(" constant_tsc") != std::string::npos &&
         line.find(" nonstop_tsc") != std::string::npos;
#else
  return false;
#endif
}

Result<TscClock> TscClock::calibrate(std::chrono::nanoseconds window) {
  if (!has_invariant_tsc()) {
    return unimplemented("this CPU has no invariant TSC; using CLOCK_MONOTONIC instead");
  }
  const Pair start = tight_pair();
  std::this_thread::sleep_for(window);
  const Pair end = tight_pair();
  if (end.tsc <= start.tsc || end.ns <= start.ns) {
    return internal_error("the TSC did not advance during calibration");
  }
  const double ns_per_tick =
      static_cast<double>(end.ns - start.ns) / static_cast<double>(end.tsc - start.tsc);
  return TscClock(true, ns_per_tick, end.tsc, end.ns);
}

TscClock TscClock::monotonic_fallback() {
  const int64_t now = monotonic_ns();
  return TscClock(false, 1.0, static_cast<uint64_t>(now), now);
}

const TscClock& TscClock::global() {
  static const TscClock clock = [] {
    auto calibrated = calibrate();
    return calibrated.is_ok() ? *calibrated : monotonic_fallback();
  }();
  return clock;
}

uint64_t TscClock::ticks() const {
  return uses_tsc_ ? read_tsc() : static_cast<uint64_t>(monotonic_ns());
}

int64_t TscClock::now_ns() const {
  const auto delta = static_cast<int64_t>(ticks() - base_ticks_);
  return base_ns_ + static_cast<int64_t>(static_cast<double>(delta) * ns_per_tick_);
}

}  // namespace sluice
