// The SQLite receivers' wake-up table: the spin-then-sleep policy and the table's two ways of
// waiting (spinning through the wait, sleeping on the futex word).
#include "dbos/wake.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

namespace sluice::dbos {
namespace {

constexpr int64_t kUs = 1000;

TEST(SpinPolicyTest, AFreshReceiverSpinsForTheWholeBudget) {
  SpinPolicy p(250 * kUs);
  EXPECT_EQ(p.budget_ns(), 250 * kUs);
}

TEST(SpinPolicyTest, QuickAnswersShortenTheSpinToTwiceTheirAverage) {
  SpinPolicy p(250 * kUs);
  for (int i = 0; i < 40; ++i) {
    p.record(20 * kUs);
  }
  EXPECT_NEAR(static_cast<double>(p.average_ns()), 20.0 * kUs, 1.0 * kUs);
  EXPECT_NEAR(static_cast<double>(p.budget_ns()), 40.0 * kUs, 2.0 * kUs);
}

TEST(SpinPolicyTest, WaitsLongerThanTheCapSleepAtOnceUntilAnswersAreQuickAgain) {
  SpinPolicy p(250 * kUs);
  for (int i = 0; i < 10; ++i) {
    p.record(5'000'000'000);  // 5-s waits (or timeouts)
  }
  EXPECT_EQ(p.budget_ns(), 0);
  int quick = 0;
  while (p.budget_ns() == 0 && quick < 100) {
    p.record(60 * kUs);  // slept, but woken soon: spinning would have caught it
    ++quick;
  }
  // A long wait counts as at most 4 × the cap, so a handful of quick ones bring the spin back.
  EXPECT_LE(quick, 8);
  EXPECT_GT(p.budget_ns(), 0);
  EXPECT_LE(p.budget_ns(), 250 * kUs);
}

TEST(SpinPolicyTest, ACapOfZeroNeverSpins) {
  SpinPolicy p(0);
  p.record(1 * kUs);
  EXPECT_EQ(p.budget_ns(), 0);
}

class WakeTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        std::filesystem::temp_directory_path() / ("sluice-wake-test-" + std::to_string(::getpid()));
    auto t = WakeTable::open(path_.string());
    ASSERT_TRUE(t.is_ok()) << t.status().to_string();
    table_ = std::move(*t);
  }
  void TearDown() override {
    table_.reset();
    std::filesystem::remove(path_);
  }

  // Waits on key 7 in another thread, notifies it after `delay`, and returns whether the wait
  // saw the notification.
  bool notify_after(std::chrono::microseconds delay, SpinPolicy* policy) {
    const uint32_t seen = table_->epoch(7);
    std::atomic<bool> woke{false};
    std::thread waiter([&] { woke = table_->wait(7, seen, 10'000'000'000, policy); });
    std::this_thread::sleep_for(delay);
    table_->notify(7);
    waiter.join();
    return woke;
  }

  std::filesystem::path path_;
  std::unique_ptr<WakeTable> table_;
};

TEST_F(WakeTableTest, ANotificationDuringTheSpinNeedsNoSleep) {
  if (std::thread::hardware_concurrency() < 2) {
    GTEST_SKIP() << "one CPU: nobody spins";
  }
  SpinPolicy policy(5'000'000'000);  // a 5-s cap: the notification comes well inside it
  const uint64_t spun = WakeTable::spin_wakeups();
  const uint64_t slept = WakeTable::sleeps();
  EXPECT_TRUE(notify_after(std::chrono::milliseconds(20), &policy));
  EXPECT_EQ(WakeTable::spin_wakeups(), spun + 1);
  EXPECT_EQ(WakeTable::sleeps(), slept);
  // The wait took about the 20 ms the notification came after.
  EXPECT_GE(policy.average_ns(), 5'000'000);
}

TEST_F(WakeTableTest, AReceiverWhoseWaitsAreLongSleepsAndIsStillWoken) {
  SpinPolicy policy(100 * kUs);
  for (int i = 0; i < 10; ++i) {
    policy.record(1'000'000'000);
  }
  ASSERT_EQ(policy.budget_ns(), 0);
  const uint64_t spun = WakeTable::spin_wakeups();
  const uint64_t slept = WakeTable::sleeps();
  EXPECT_TRUE(notify_after(std::chrono::milliseconds(20), &policy));
  EXPECT_EQ(WakeTable::spin_wakeups(), spun);
  EXPECT_EQ(WakeTable::sleeps(), slept + 1);
}

TEST_F(WakeTableTest, ASpinThatRunsOutFallsAsleepAndIsStillWoken) {
  SpinPolicy policy(200 * kUs);  // spins ≤ 200 µs, then sleeps until the notification
  const uint64_t slept = WakeTable::sleeps();
  EXPECT_TRUE(notify_after(std::chrono::milliseconds(50), &policy));
  EXPECT_EQ(WakeTable::sleeps(), slept + 1);
}

TEST_F(WakeTableTest, ATimeoutInsideTheSpinIsATimeout) {
  SpinPolicy policy(5'000'000'000);
  const uint32_t seen = table_->epoch(9);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(table_->wait(9, seen, 2'000'000, &policy));  // 2 ms, nothing sent
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2));
}

}  // namespace
}  // namespace sluice::dbos
