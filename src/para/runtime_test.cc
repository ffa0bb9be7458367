#include "sluice/para/runtime.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>

#include "sluice/para/testing.h"

namespace sluice::para {
namespace {

int last_core() {
  return testing::testing_options().cores.back();
}

Task<Status> sleep_for_task(std::chrono::nanoseconds d, CancelToken* token) {
  co_return co_await sleep_for(d, token);
}

TEST(RuntimeTest, BadCoreIdsAreRejected) {
  RuntimeOptions o = testing::testing_options();
  o.cores = {9999};
  Result<std::unique_ptr<Runtime>> rt = Runtime::start(o);
  ASSERT_FALSE(rt.is_ok());
  EXPECT_EQ(rt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rt.status().message().find("9999"), std::string::npos) << rt.status().message();

  o.cores = {-1};
  EXPECT_EQ(Runtime::start(o).status().code(), StatusCode::kInvalidArgument);
  const int c = testing::testing_options().cores.front();
  o.cores = {c, c};
  rt = Runtime::start(o);
  ASSERT_FALSE(rt.is_ok());
  EXPECT_NE(rt.status().message().find("twice"), std::string::npos);
}

TEST(RuntimeTest, RunOnRunsOnThePinnedCore) {
  auto rt = Runtime::start(testing::testing_options());
  ASSERT_TRUE(rt.is_ok()) << rt.status().to_string();
  for (int core : (*rt)->cores()) {
    Result<int> where = (*rt)->run_on(core, [] { return sched_getcpu(); });
    ASSERT_TRUE(where.is_ok());
    EXPECT_EQ(*where, core);
  }
  Result<int> bad = (*rt)->run_on(4242, [] { return 0; });
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  (*rt)->stop();
  // After stop, run_on refuses rather than hanging.
  EXPECT_EQ((*rt)->run_on((*rt)->cores().front(), [] { return 1; }).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(RuntimeTest, MissingHugePagesFallBackWithANote) {
  RuntimeOptions o = testing::testing_options();
  o.huge_pages = HugePages::kHugetlb;
  o.simulate_no_hugetlb = true;
  auto rt = Runtime::start(o);
  ASSERT_TRUE(rt.is_ok()) << rt.status().to_string();
  bool noted = false;
  for (const std::string& n : (*rt)->notes())
    noted = noted || n.find("hugetlb") != n.npos;
  EXPECT_TRUE(noted);
  EXPECT_NE((*rt)->reactor(0).arena().backing(), ArenaBacking::kHugetlb);
}

PARA_TEST(RuntimeTest, SubmitToCrossesCoresAndReturnsValues) {
  const int target = last_core();
  Result<int> where = co_await submit_to(target, [] { return local_reactor().core(); });
  EXPECT_TRUE(where.is_ok());
  EXPECT_EQ(*where, target);
  // A Task-returning function: its value comes back; its captures live until the reply.
  std::string word = "partition";
  // Named first: g++ 12 destroys a capturing lambda temporary in a co_await twice.
  auto count = [word]() -> Task<size_t> {
    co_await yield();
    co_return word.size();
  };
  Result<size_t> len = co_await submit_to(target, std::move(count));
  EXPECT_EQ(len.value_or(0), word.size());
  Status st = co_await submit_to(target, [] {});
  EXPECT_TRUE(st.is_ok());
  Result<int> bad = co_await submit_to(-7, [] { return 1; });
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

PARA_TEST(RuntimeTest, ManyConcurrentRoundTrips) {
  const int target = last_core();
  std::vector<Task<int>> calls;
  for (int i = 0; i < 2000; ++i) {
    calls.push_back([](int t, int v) -> Task<int> {
      Result<int> r = co_await submit_to(t, [v] { return v + 1; });
      co_return r.value_or(-1);
    }(target, i));
  }
  std::vector<int> got = co_await when_all(std::move(calls));
  int64_t sum = 0;
  for (int v : got)
    sum += v;
  EXPECT_EQ(sum, 2000 * 2001 / 2);
}

PARA_TEST(RuntimeTest, SleepsWakeInDeadlineOrder) {
  std::vector<int> order;
  auto sleeper = [](std::vector<int>* out, int ms) -> Task<void> {
    Status s = co_await sleep_for(std::chrono::milliseconds(ms));
    EXPECT_TRUE(s.is_ok());
    out->push_back(ms);
  };
  co_await when_all(sleeper(&order, 30), sleeper(&order, 10), sleeper(&order, 20));
  EXPECT_EQ(order, (std::vector<int>{10, 20, 30}));
}

PARA_TEST(RuntimeTest, CancellingATokenCancelsSleepsAndIo) {
  CancelToken token;
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  char byte = 0;
  auto canceller = [](CancelToken* t) -> Task<void> {
    (void)co_await sleep_for(std::chrono::milliseconds(5));
    t->cancel();
  };
  auto reader = [](int fd, char* b, CancelToken* t) -> Task<int32_t> {
    co_return co_await io([=](io_uring_sqe* sqe) { io_uring_prep_read(sqe, fd, b, 1, 0); }, t);
  };
  auto [slept, read, none] = co_await when_all(sleep_for_task(std::chrono::hours(1), &token),
                                               reader(fds[0], &byte, &token), canceller(&token));
  EXPECT_EQ(slept.code(), StatusCode::kCancelled);
  EXPECT_EQ(read, -ECANCELED);
  // Already cancelled: completes at once.
  Status again = co_await sleep_for(std::chrono::hours(1), &token);
  EXPECT_EQ(again.code(), StatusCode::kCancelled);
  close(fds[0]);
  close(fds[1]);
}

PARA_TEST(RuntimeTest, OffloadRunsOffTheReactorAndResumesOnIt) {
  Reactor* before = this_reactor();
  const bool on_reactor = co_await offload([] {
    usleep(1000);  // a blocking call: fine on a helper thread
    return this_reactor() != nullptr;
  });
  EXPECT_FALSE(on_reactor);
  EXPECT_EQ(this_reactor(), before);
}

TEST(RuntimeTest, ShutdownWithIoInFlightCancelsIt) {
  auto rt = Runtime::start(testing::testing_options());
  ASSERT_TRUE(rt.is_ok());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  static std::atomic<int> cancelled_reads{0};
  static std::atomic<int> cancelled_sleeps{0};
  cancelled_reads = 0;
  cancelled_sleeps = 0;
  for (int core : (*rt)->cores()) {
    Status s = (*rt)->run_on(core, [fd = fds[0]] {
      auto reader = [](int f) -> Task<void> {
        char b = 0;
        char* pb = &b;
        int32_t rc = co_await io([=](io_uring_sqe* sqe) { io_uring_prep_read(sqe, f, pb, 1, 0); });
        if (rc == -ECANCELED)
          cancelled_reads.fetch_add(1);
      };
      auto sleeper = []() -> Task<void> {
        Status st = co_await sleep_for(std::chrono::hours(1));
        if (st.code() == StatusCode::kCancelled)
          cancelled_sleeps.fetch_add(1);
      };
      local_reactor().spawn(reader(fd));
      local_reactor().spawn(sleeper());
    });
    ASSERT_TRUE(s.is_ok());
  }
  (*rt)->stop();  // returns: the reads and sleeps were cancelled, every task finished
  EXPECT_EQ(cancelled_reads.load(), static_cast<int>((*rt)->size()));
  EXPECT_EQ(cancelled_sleeps.load(), static_cast<int>((*rt)->size()));
  EXPECT_EQ((*rt)->pending(), 0);
  close(fds[0]);
  close(fds[1]);
}

TEST(RuntimeTest, CrossCoreMessagesAreObservable) {
  auto rt = Runtime::start(testing::testing_options());
  ASSERT_TRUE(rt.is_ok());
  const int target = (*rt)->cores().back();
  const uint32_t idx = *(*rt)->index_of(target);
  auto observer = (*rt)->inbound(idx).attach_weak_observer(16);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE((*rt)->run_on(target, [] { return 1; }).is_ok());
  EXPECT_GE(observer.history(16).size(), 5u);
  observer.detach();
  oq::QueueStats st = (*rt)->inbound(idx).stats();
  EXPECT_GE(st.takes, 5u);
  (*rt)->stop();
}

TEST(RuntimeTest, PollModeWorks) {
  RuntimeOptions o = testing::testing_options();
  o.idle = IdleMode::kPoll;
  auto rt = Runtime::start(o);
  ASSERT_TRUE(rt.is_ok());
  Status s = (*rt)->run_on(o.cores.front(), []() -> Task<Status> {
    co_return co_await sleep_for(std::chrono::milliseconds(2));
  });
  EXPECT_TRUE(s.is_ok());
}

// Work that comes every 5 ms finds the reactor asleep whatever it does, so after one such idle
// stretch it sleeps at once instead of polling through para.idle_spin_us of every gap.
Task<void> work_every_five_ms() {
  Reactor& r = local_reactor();
  co_await sleep_for(std::chrono::milliseconds(5));  // the first long stretch turns the spin off
  const uint64_t polls_before = r.stats().polls;
  const uint64_t sleeps_before = r.stats().sleeps;
  for (int i = 0; i < 20; ++i)
    co_await sleep_for(std::chrono::milliseconds(5));
  const uint64_t polls = r.stats().polls - polls_before;
  // Spinning 500 µs of each gap is at least hundreds of loop passes per gap (thousands here);
  // sleeping at once, a handful.
  EXPECT_LT(polls, 20u * 50) << "loop passes over 20 gaps of 5 ms";
  EXPECT_GE(r.stats().sleeps - sleeps_before, 20u);
}

TEST(RuntimeTest, AnIdleSpinThatNeverCatchesWorkIsSkipped) {
  RuntimeOptions o = testing::testing_options();
  o.idle = IdleMode::kSleep;
  o.idle_spin = std::chrono::microseconds(500);  // gaps of 5 ms are more than 4 × that
  testing::run_on_reactor(&work_every_five_ms, o);
}

// Each call from this thread wakes the sleeping reactor through its eventfd. The armed read of
// that eventfd consumes every count, so once the calls stop the reactor sleeps again instead of
// finding the eventfd readable on every pass.
TEST(RuntimeTest, WakeUpsFromAnotherThreadLeaveTheReactorAsleepAfterwards) {
  RuntimeOptions o = testing::testing_options();
  o.cores.resize(1);
  o.idle = IdleMode::kSleep;
  o.idle_spin = std::chrono::microseconds(0);  // sleep as soon as there is no work
  auto rt = Runtime::start(o);
  ASSERT_TRUE(rt.is_ok()) << rt.status().to_string();
  const int core = o.cores.front();
  auto counters = [&] {  // {loop passes, sleeps}, read on the reactor
    Result<std::pair<uint64_t, uint64_t>> r =
        (*rt)->run_on(core, []() -> Task<std::pair<uint64_t, uint64_t>> {
          const ReactorStats& s = local_reactor().stats();
          co_return std::pair<uint64_t, uint64_t>{s.polls, s.sleeps};
        });
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : std::pair<uint64_t, uint64_t>{};
  };
  const uint64_t sleeps_before = counters().second;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the reactor goes to sleep
    (void)counters();                                           // and is woken for this
  }
  const auto [polls_after, sleeps_after] = counters();
  EXPECT_GE(sleeps_after - sleeps_before, 50u) << "the reactor slept between the calls";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // The reading call itself takes a few passes; a readable eventfd would take thousands here.
  EXPECT_LT(counters().first - polls_after, 50u) << "loop passes over 100 ms without work";
  (*rt)->stop();
}

}  // namespace
}  // namespace sluice::para
