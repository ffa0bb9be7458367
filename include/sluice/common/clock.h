// Clocks: CLOCK_MONOTONIC for anything a user reads, and a calibrated TSC clock for the hot
// paths that stamp events per chunk or per message (zicio measures ingestion speed with it).
//
// Thread safety: all functions may be called from any thread. TscClock::global() calibrates once,
// on first use, and never changes afterwards.
#pragma once

#include <chrono>
#include <cstdint>

#include "sluice/common/result.h"

namespace sluice {

// Nanoseconds of CLOCK_MONOTONIC.
int64_t monotonic_ns();

// Converts raw time-stamp-counter ticks to nanoseconds.
//
// On x86-64 with an invariant TSC (constant rate, running in every C-state) ticks() is `rdtsc`:
// a few nanoseconds and no system call. Without one, ticks() reads CLOCK_MONOTONIC and the ratio
// is exactly 1, so callers never need a second code path.
class TscClock {
 public:
  // Measures the TSC rate against CLOCK_MONOTONIC over `window` (longer is more precise; 20 ms
  // gives a few parts per million). Fails with "unimplemented" when the CPU has no invariant TSC.
  static Result<TscClock> calibrate(
      std::chrono::nanoseconds window = std::chrono::milliseconds(20));

  // The process-wide clock: the TSC when usable, else CLOCK_MONOTONIC.
  static const TscClock& global();

  // A clock that reads CLOCK_MONOTONIC (ticks are nanoseconds).
  static TscClock monotonic_fallback();

  // Current raw ticks of this clock's source.
  uint64_t ticks() const;
  // Nanoseconds spanned by a difference of two ticks() values.
  double ticks_to_ns(uint64_t ticks) const { return static_cast<double>(ticks) * ns_per_tick_; }
  // Nanoseconds on the CLOCK_MONOTONIC time line.
  int64_t now_ns() const;

  bool uses_tsc() const { return uses_tsc_; }
  // Ticks per second (the TSC frequency, or 1e9 for the fallback).
  double ticks_per_second() const { return 1e9 / ns_per_tick_; }

 private:
  TscClock(bool uses_tsc, double ns_per_tick, uint64_t base_ticks, int64_t base_ns)
      : uses_tsc_(uses_tsc),
        ns_per_tick_(ns_per_tick),
        base_ticks_(base_ticks),
        base_ns_(base_ns) {}

  bool uses_tsc_;
  double ns_per_tick_;
  uint64_t base_ticks_;  // ticks() at base_ns_
  int64_t base_ns_;
};

// True when the CPU advertises an invariant TSC (CPUID 0x80000007 EDX bit 8, or the kernel's
// constant_tsc and nonstop_tsc flags, which hypervisors often pass on instead).
bool has_invariant_tsc();

}  // namespace sluice
