#include "sluice/common/clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

namespace sluice {
namespace {

TEST(MonotonicClock, NeverGoesBackwards) {
  int64_t prev = monotonic_ns();
  for (int i = 0; i < 10000; ++i) {
    const int64_t now = monotonic_ns();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

TEST(TscClock, FallbackCountsNanoseconds) {
  TscClock clock = TscClock::monotonic_fallback();
  EXPECT_FALSE(clock.uses_tsc());
  EXPECT_DOUBLE_EQ(clock.ticks_to_ns(1000), 1000.0);
  EXPECT_DOUBLE_EQ(clock.ticks_per_second(), 1e9);
  EXPECT_NEAR(static_cast<double>(clock.now_ns()), static_cast<double>(monotonic_ns()), 1e6);
}

// The calibrated rate must agree with CLOCK_MONOTONIC: time an interval with both and compare.
// The tolerance is relative (2%) plus a fixed slack for a preemption between the two reads, so a
// busy machine makes the test slower, never wrong.
TEST(TscClock, CalibrationAgreesWithMonotonicClock) {
  auto calibrated = TscClock::calibrate(std::chrono::milliseconds(20));
  if (!calibrated.is_ok()) {
    ASSERT_EQ(calibrated.status().code(), StatusCode::kUnimplemented);
    GTEST_SKIP() << calibrated.status().to_string();
  }
  const TscClock& clock = *calibrated;
  EXPECT_TRUE(clock.uses_tsc());
  EXPECT_GT(clock.ticks_per_second(), 1e8);   // no TSC runs under 100 MHz
  EXPECT_LT(clock.ticks_per_second(), 1e11);  // nor over 100 GHz

  std::vector<double> errors;
  for (int i = 0; i < 5; ++i) {
    const int64_t ns0 = monotonic_ns();
    const uint64_t t0 = clock.ticks();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    const uint64_t t1 = clock.ticks();
    const int64_t ns1 = monotonic_ns();
    const double by_tsc = clock.ticks_to_ns(t1 - t0);
    const auto by_mono = static_cast<double>(ns1 - ns0);
    errors.push_back(std::abs(by_tsc - by_mono) / by_mono);
  }
  std::sort(errors.begin(), errors.end());
  EXPECT_LT(errors[errors.size() / 2], 0.02) << "median relative error of the TSC clock";
}

TEST(TscClock, NowFollowsTheMonotonicTimeline) {
  const TscClock& clock = TscClock::global();
  const int64_t mono = monotonic_ns();
  const int64_t tsc = clock.now_ns();
  EXPECT_LT(std::abs(tsc - mono), 50'000'000) << "within 50 ms of CLOCK_MONOTONIC";
}

}  // namespace
}  // namespace sluice
