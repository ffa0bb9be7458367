#include "zicio/pacing.h"

#include <gtest/gtest.h>

namespace sluice::zicio::detail {
namespace {

constexpr double kN = 2.0 * 1024 * 1024;  // one 2 MiB chunk

TEST(PacerTest, FirstSampleSetsTheAverageThenAlphaIsOneSixteenth) {
  Pacer p({.ema_shift = 4, .max_inflight = 4, .read_slack = 0});
  EXPECT_FALSE(p.has_consumption());
  p.record_consumption(1000, 1000.0);  // 1 ns per byte
  EXPECT_DOUBLE_EQ(p.consumption_cost(), 1.0);
  p.record_consumption(1000, 17000.0);  // 17 ns per byte: 1 + (17 - 1) / 16 = 2
  EXPECT_DOUBLE_EQ(p.consumption_cost(), 2.0);
  EXPECT_DOUBLE_EQ(p.su(), 0.5e9);
  p.record_read(1000, 500.0);
  EXPECT_DOUBLE_EQ(p.read_cost(), 0.5);
  EXPECT_DOUBLE_EQ(p.sd(), 2e9);
}

TEST(PacerTest, IgnoresEmptySamples) {
  Pacer p;
  p.record_consumption(0, 10.0);
  p.record_read(10, 0.0);
  EXPECT_FALSE(p.has_consumption());
  EXPECT_FALSE(p.has_read());
}

TEST(PacerTest, EquationOneWhenTheDeviceIsFaster) {
  const double su = 1e9, sd = 4e9;  // bytes per second
  // Δr = N (S_d − S_u) / (S_d S_u) = N/S_u − N/S_d
  const double expected_ns = (kN / su - kN / sd) * 1e9;
  EXPECT_NEAR(Pacer::equation1_delay_ns(kN, su, sd), expected_ns, 1e-3);
  EXPECT_NEAR(expected_ns, 1572864.0, 1e-3);  // 2 MiB: 2.097 ms − 0.524 ms
}

TEST(PacerTest, EquationOneReleasesAtOnceWhenSpeedsMatchOrTheWorkerIsFaster) {
  EXPECT_EQ(Pacer::equation1_delay_ns(kN, 2e9, 2e9), 0.0);
  EXPECT_EQ(Pacer::equation1_delay_ns(kN, 3e9, 1e9), 0.0);
  EXPECT_EQ(Pacer::equation1_delay_ns(kN, 0, 1e9), 0.0);  // unknown speed
}

TEST(PacerTest, ReleaseTimeOfTheNextChunkIsEquationOne) {
  Pacer p({.ema_shift = 4, .max_inflight = 4, .read_slack = 0});
  p.record_consumption(1 << 21, 1e9 / 1e9 * (1 << 21));  // S_u = 1 GB/s: 1 ns per byte
  p.record_read(1 << 21, 0.25 * (1 << 21));              // S_d = 4 GB/s
  const int64_t now = 1'000'000'000;
  // The worker just started its chunk; the next one lies one chunk (N bytes) ahead.
  const int64_t t = p.release_time_ns(now, 1 << 21, 1 << 21);
  EXPECT_NEAR(static_cast<double>(t - now), Pacer::equation1_delay_ns(kN, p.su(), p.sd()), 1.0);
  // Two chunks ahead: one more consumption time later.
  const int64_t t2 = p.release_time_ns(now, 2u << 21, 1 << 21);
  EXPECT_NEAR(static_cast<double>(t2 - t), kN, 1.0);
  EXPECT_EQ(p.allowed_inflight(), 1u);  // S_u ≤ S_d: one request stream
}

TEST(PacerTest, SpreadOfReadTimesReleasesEarlier) {
  // Reads of 200 then 360 ns per 1000 bytes: mean 0.2 + 0.16/16 = 0.21 ns/B; the first deviation
  // sample (0.16 ns/B) sets the deviation average.
  Pacer steady({.ema_shift = 4, .max_inflight = 4, .read_slack = 0, .read_deviations = 0});
  Pacer wary({.ema_shift = 4, .max_inflight = 4, .read_slack = 0, .read_deviations = 4});
  for (Pacer* p : {&steady, &wary}) {
    p->record_consumption(1000, 1000.0);  // needed at 0 + 1000 ns
    p->record_read(1000, 200.0);
    EXPECT_EQ(p->read_deviation(), 0.0);  // one read: no spread yet
    p->record_read(1000, 360.0);
    EXPECT_NEAR(p->read_cost(), 0.21, 1e-12);
    EXPECT_NEAR(p->read_deviation(), 0.16, 1e-12);
  }
  EXPECT_EQ(steady.release_time_ns(0, 1000, 1000), 790);             // 1000 − 210: the mean only
  EXPECT_EQ(wary.release_time_ns(0, 1000, 1000), 1000 - 210 - 640);  // and 4 × 160 earlier
  // Equal reads let the deviation decay back towards the mean alone.
  for (int i = 0; i < 200; ++i)
    wary.record_read(1000, 210.0);
  EXPECT_LT(wary.read_deviation(), 1e-4);
}

TEST(PacerTest, SlackReleasesEarlierByThatManyReadTimes) {
  Pacer p({.ema_shift = 4, .max_inflight = 4, .read_slack = 1.0});
  p.record_consumption(1000, 1000.0);
  p.record_read(1000, 250.0);
  // need at 0 + 1000 ns; read 250 ns, doubled by slack 1.0
  EXPECT_EQ(p.release_time_ns(0, 1000, 1000), 500);
}

TEST(PacerTest, RewardRequestsWhenOneStreamIsTooSlow) {
  Pacer p({.ema_shift = 4, .max_inflight = 8, .read_slack = 0});
  p.record_consumption(1000, 1000.0);  // S_u = 1 GB/s
  p.record_read(1000, 2500.0);         // S_d = 0.4 GB/s per request
  // R = ⌈S_u / S_d⌉ = ⌈2.5⌉ = 3, so that S_u ≤ R · S_d
  EXPECT_EQ(p.allowed_inflight(), 3u);
  EXPECT_LE(p.su(), 3 * p.sd());
  EXPECT_GT(p.su(), 2 * p.sd());
  // Equation 1 would be negative: the request is due at once (at or before the need time).
  EXPECT_LE(p.release_time_ns(5000, 1000, 1000), 5000 + 1000);
  EXPECT_EQ(Pacer::equation1_delay_ns(1000, p.su(), p.sd()), 0.0);
}

TEST(PacerTest, RewardRequestsAreCappedAndUnknownSpeedsFillTheRing) {
  Pacer p({.ema_shift = 4, .max_inflight = 4, .read_slack = 0});
  EXPECT_EQ(p.allowed_inflight(), 4u);  // nothing measured yet
  EXPECT_EQ(p.release_time_ns(123, 1 << 21, 1 << 21), INT64_MIN);
  p.record_consumption(1000, 1000.0);
  p.record_read(1000, 100000.0);  // 100× slower than the worker
  EXPECT_EQ(p.allowed_inflight(), 4u);
}

TEST(PacerTest, ExactSpeedRatioDoesNotRoundUp) {
  Pacer p({.ema_shift = 4, .max_inflight = 8, .read_slack = 0});
  p.record_consumption(1000, 1000.0);
  p.record_read(1000, 2000.0);  // S_u = 2 S_d exactly
  EXPECT_EQ(p.allowed_inflight(), 2u);
}

}  // namespace
}  // namespace sluice::zicio::detail
