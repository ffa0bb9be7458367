// Unit tests for OQueue<T>: one test (or a few) per rule of docs/oqueue.md "Semantics".
#include "sluice/oqueue/oqueue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <numeric>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "sluice/common/knobs.h"

namespace sluice::oq {
namespace {

using namespace std::chrono_literals;

constexpr WaitPolicy kPolicies[] = {WaitPolicy::kSpin, WaitPolicy::kYield, WaitPolicy::kBlock};

Deadline soon(std::chrono::milliseconds ms = 20ms) {
  return Clock::now() + ms;
}

bool is_even(const int& v, uint64_t) {
  return v % 2 == 0;
}
bool equals_arg(const int& v, uint64_t arg) {
  return static_cast<uint64_t>(v) == arg;
}
bool above_arg(const int& v, uint64_t arg) {
  return v > static_cast<int>(arg);
}

TEST(OQueueTest, CapacityIsRoundedUpToAPowerOfTwo) {
  EXPECT_EQ(OQueue<int>("q", 5).capacity(), 8u);
  EXPECT_EQ(OQueue<int>("q", 1).capacity(), 2u);
  EXPECT_EQ(OQueue<int>("q", 64).capacity(), 64u);
  EXPECT_GE(OQueue<int>("q").capacity(), 2u);  // the knob's default
}

TEST(OQueueTest, PutWithNothingAttachedCapturesNothing) {
  OQueue<int> q("unobserved", 4);
  auto p = q.attach_producer();
  for (int i = 0; i < 100; ++i) {
    p.put(i);  // never blocks although the ring holds 4
    EXPECT_TRUE(p.try_put(i));
  }
  QueueStats s = q.stats();
  EXPECT_EQ(s.puts, 200u);
  EXPECT_EQ(s.captures, 0u);
  EXPECT_EQ(s.history_capacity, 0u);
  // A consumer attached afterwards sees none of them.
  auto c = q.attach_consumer();
  EXPECT_FALSE(c.try_take().has_value());
}

TEST(OQueueTest, FifoWithOneProducerAndOneConsumer) {
  OQueue<int> q("fifo", 8);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 8; ++i)
      ASSERT_TRUE(p.try_put(round * 8 + i));
    EXPECT_FALSE(p.try_put(-1)) << "ring of 8 is full";
    for (int i = 0; i < 8; ++i)
      EXPECT_EQ(c.take(), round * 8 + i);
    EXPECT_FALSE(c.try_take().has_value());
  }
}

TEST(OQueueTest, MultiWordMessagesRoundTrip) {
  struct Big {
    uint64_t a[5];
    uint8_t tail[3];
  };
  OQueue<Big> q("big", 4);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  auto w = q.attach_weak_observer(2);
  Big in{};
  for (uint64_t i = 0; i < 5; ++i)
    in.a[i] = i * 1000 + 7;
  in.tail[2] = 9;
  p.put(in);
  Big out = c.take();
  EXPECT_EQ(std::memcmp(&in, &out, sizeof(Big)), 0);
  std::vector<Big> h = w.history(2);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(std::memcmp(&in, &h[0], sizeof(Big)), 0);
}

TEST(OQueueTest, EveryMessageIsTakenExactlyOnceBySeveralConsumers) {
  constexpr int kConsumers = 3;
  constexpr int kMessages = 20000;
  OQueue<int> q("mpmc", 16);
  std::vector<OQueue<int>::Consumer> consumers;
  for (int i = 0; i < kConsumers; ++i)
    consumers.push_back(q.attach_consumer(kPolicies[i]));
  std::vector<std::vector<int>> taken(kConsumers);
  std::atomic<int> remaining{kMessages};
  std::vector<std::thread> threads;
  for (int i = 0; i < kConsumers; ++i) {
    threads.emplace_back([&, i] {
      while (remaining.load() > 0) {
        if (auto v = consumers[static_cast<size_t>(i)].take_until(soon(5ms))) {
          taken[static_cast<size_t>(i)].push_back(*v);
          remaining.fetch_sub(1);
        }
      }
    });
  }
  auto p = q.attach_producer();
  for (int i = 0; i < kMessages; ++i)
    p.put(i);
  for (auto& t : threads)
    t.join();
  std::vector<int> all;
  for (auto& t : taken) {
    EXPECT_TRUE(std::is_sorted(t.begin(), t.end())) << "one producer: each consumer sees order";
    all.insert(all.end(), t.begin(), t.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int> expected(kMessages);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
  EXPECT_EQ(q.stats().takes, static_cast<uint64_t>(kMessages));
}

TEST(OQueueTest, StrongObserverSeesMessagesAConsumerTookFirst) {
  OQueue<int> q("strong", 4);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  auto s = q.attach_strong_observer();
  for (int i = 0; i < 4; ++i)
    p.put(i);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(c.take(), i);
  // The consumer emptied the queue, but the slots stay until the observer has seen them.
  EXPECT_FALSE(p.try_put(99)) << "slots must not be reused before the strong observer";
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(s.strong_observe(), i);
  EXPECT_FALSE(s.try_strong_observe().has_value());
  EXPECT_TRUE(p.try_put(4));
  EXPECT_EQ(s.strong_observe(), 4);
  EXPECT_EQ(c.take(), 4);
}

TEST(OQueueTest, StrongObserversEachSeeEveryMessageOnceInOrder) {
  OQueue<int> q("strong2", 8);
  auto p = q.attach_producer();
  auto a = q.attach_strong_observer(WaitPolicy::kSpin);
  auto b = q.attach_strong_observer(WaitPolicy::kYield);
  std::thread ta([&] {
    for (int i = 0; i < 5000; ++i)
      ASSERT_EQ(a.strong_observe(), i);
  });
  std::thread tb([&] {
    for (int i = 0; i < 5000; ++i)
      ASSERT_EQ(b.strong_observe(), i);
  });
  for (int i = 0; i < 5000; ++i)
    p.put(i);
  ta.join();
  tb.join();
  EXPECT_FALSE(a.try_strong_observe().has_value());
  EXPECT_EQ(q.stats().observes, 10000u);
}

TEST(OQueueTest, ObserverAttachedLaterSeesOnlyLaterMessages) {
  OQueue<int> q("late", 8);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  p.put(1);
  p.put(2);
  auto s = q.attach_strong_observer();
  p.put(3);
  EXPECT_EQ(s.strong_observe(), 3);
  EXPECT_FALSE(s.try_strong_observe().has_value());
  EXPECT_EQ(c.take(), 1);
  EXPECT_EQ(c.take(), 2);
  EXPECT_EQ(c.take(), 3);
  // A consumer that attaches to a queue with no consumer starts at the next message too.
  OQueue<int> q2("late2", 8);
  auto p2 = q2.attach_producer();
  auto s2 = q2.attach_strong_observer();
  p2.put(10);
  auto c2 = q2.attach_consumer();
  p2.put(11);
  EXPECT_EQ(c2.take(), 11);
  EXPECT_EQ(s2.strong_observe(), 10);
  EXPECT_EQ(s2.strong_observe(), 11);
}

TEST(OQueueTest, WeakHistoryIsOldestFirstAndAtMostN) {
  OQueue<int> q("weak", 8);
  auto p = q.attach_producer();
  auto w = q.attach_weak_observer(5);
  EXPECT_TRUE(w.history(5).empty());
  for (int i = 0; i < 3; ++i)
    p.put(i);
  EXPECT_EQ(w.history(5), (std::vector<int>{0, 1, 2}));
  for (int i = 3; i < 100; ++i)
    p.put(i);  // no consumer: never blocks
  EXPECT_EQ(w.history(5), (std::vector<int>{95, 96, 97, 98, 99}));
  EXPECT_EQ(w.history(2), (std::vector<int>{98, 99}));
  EXPECT_EQ(w.history(50).size(), 5u) << "clamped to the declared size";
  std::array<int, 3> out{};
  EXPECT_EQ(w.history(std::span<int>(out)), 3u);
  EXPECT_EQ(out, (std::array<int, 3>{97, 98, 99}));
  EXPECT_EQ(q.stats().history_reads, 6u);
}

TEST(OQueueTest, HistoryIsSizedByTheLargestDeclaredN) {
  OQueue<int> q("weak-size", 4);
  auto p = q.attach_producer();
  EXPECT_EQ(q.history_capacity(), 0u);
  auto small = q.attach_weak_observer(3);
  EXPECT_EQ(q.history_capacity(), 4u);
  for (int i = 0; i < 10; ++i)
    p.put(i);
  {
    auto big = q.attach_weak_observer(100);
    EXPECT_EQ(q.history_capacity(), 128u);
    // Growing carried the newest messages over.
    EXPECT_EQ(small.history(3), (std::vector<int>{7, 8, 9}));
    for (int i = 10; i < 300; ++i)
      p.put(i);
    std::vector<int> h = big.history(100);
    ASSERT_EQ(h.size(), 100u);
    EXPECT_EQ(h.front(), 200);
    EXPECT_EQ(h.back(), 299);
  }
  EXPECT_EQ(q.history_capacity(), 4u) << "back to the remaining observer's size";
  EXPECT_EQ(small.history(3), (std::vector<int>{297, 298, 299}));
  p.put(300);
  EXPECT_EQ(small.history(3), (std::vector<int>{298, 299, 300}));
}

TEST(OQueueTest, WeakObserverNeverBlocksAProducer) {
  OQueue<int> q("weak-nb", 2);
  auto p = q.attach_producer();
  auto w = q.attach_weak_observer(2);
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(p.try_put(i));
  EXPECT_EQ(w.history(2), (std::vector<int>{998, 999}));
}

TEST(OQueueTest, FiltersSkipCaptureWhenNobodyWantsTheMessage) {
  OQueue<int> q("filters", 8);
  auto p = q.attach_producer();
  auto s = q.attach_strong_observer(WaitPolicy::kSpin, &is_even);
  auto w = q.attach_weak_observer(4, &equals_arg, 7);
  for (int i = 0; i < 10; ++i)
    p.put(i);
  QueueStats st = q.stats();
  EXPECT_EQ(st.captures, 6u) << "0 2 4 6 8 for the strong observer, 7 for the weak one";
  EXPECT_EQ(st.filtered, 4u) << "1 3 5 9 stored nowhere";
  for (int i = 0; i < 10; i += 2)
    EXPECT_EQ(s.strong_observe(), i);
  EXPECT_FALSE(s.try_strong_observe().has_value()) << "7 was captured but does not match";
  EXPECT_EQ(w.history(4), (std::vector<int>{7}));
}

TEST(OQueueTest, ConsumersWantEveryMessageAndFilteredObserversSeeOnlyMatches) {
  OQueue<int> q("filters2", 16);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  auto s = q.attach_strong_observer(WaitPolicy::kSpin, &above_arg, 5);
  auto w_all = q.attach_weak_observer(16);
  auto w_even = q.attach_weak_observer(16, &is_even);
  for (int i = 0; i < 10; ++i)
    p.put(i);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(c.take(), i);
  for (int i = 6; i < 10; ++i)
    EXPECT_EQ(s.strong_observe(), i);
  EXPECT_FALSE(s.try_strong_observe().has_value());
  EXPECT_EQ(w_all.history(16).size(), 10u);
  EXPECT_EQ(w_even.history(16), (std::vector<int>{0, 2, 4, 6, 8}));
  EXPECT_EQ(w_even.history(2), (std::vector<int>{6, 8}));
  EXPECT_EQ(q.stats().filtered, 0u);
}

TEST(OQueueTest, TimedVariantsReturnEmptyAfterTheDeadline) {
  for (WaitPolicy policy : kPolicies) {
    OQueue<int> q("timed", 2);
    auto p = q.attach_producer(policy);
    auto c = q.attach_consumer(policy);
    auto s = q.attach_strong_observer(policy);
    Deadline d = soon();
    EXPECT_FALSE(c.take_until(d).has_value());
    EXPECT_GE(Clock::now(), d);
    d = soon();
    EXPECT_FALSE(s.strong_observe_until(d).has_value());
    EXPECT_GE(Clock::now(), d);
    ASSERT_TRUE(p.put_until(1, soon()));
    ASSERT_TRUE(p.put_until(2, soon()));
    d = soon();
    EXPECT_FALSE(p.put_until(3, d)) << "full ring";
    EXPECT_GE(Clock::now(), d);
    EXPECT_EQ(c.take_until(soon()), 1);
    EXPECT_EQ(s.strong_observe_until(soon()), 1);
    EXPECT_TRUE(p.put_until(3, soon()));
    EXPECT_GT(q.stats().waits, 0u);
  }
}

TEST(OQueueTest, TryVariantsNeverBlock) {
  OQueue<int> q("try", 2);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  auto s = q.attach_strong_observer();
  EXPECT_FALSE(c.try_take().has_value());
  EXPECT_FALSE(s.try_strong_observe().has_value());
  EXPECT_TRUE(p.try_put(1));
  EXPECT_TRUE(p.try_put(2));
  EXPECT_FALSE(p.try_put(3));
  EXPECT_EQ(q.stats().waits, 0u) << "try_* never count as waiting";
}

TEST(OQueueTest, HandlesMoveAndDetach) {
  OQueue<int> q("handles", 4);
  OQueue<int>::Consumer c = q.attach_consumer();
  OQueue<int>::Consumer moved = std::move(c);
  EXPECT_FALSE(c.attached());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_TRUE(moved.attached());
  EXPECT_EQ(q.stats().consumers, 1u);
  {
    auto p = q.attach_producer();
    auto s = q.attach_strong_observer();
    auto w = q.attach_weak_observer(2);
    QueueStats st = q.stats();
    EXPECT_EQ(st.producers, 1u);
    EXPECT_EQ(st.strong_observers, 1u);
    EXPECT_EQ(st.weak_observers, 1u);
    p.put(5);
    OQueue<int>::StrongObserver s2;
    s2 = std::move(s);
    EXPECT_EQ(s2.strong_observe(), 5);
  }
  QueueStats st = q.stats();
  EXPECT_EQ(st.producers, 0u);
  EXPECT_EQ(st.strong_observers, 0u);
  EXPECT_EQ(st.weak_observers, 0u);
  EXPECT_EQ(st.puts, 1u) << "a detached handle's counts are kept";
  EXPECT_EQ(st.observes, 1u);
  moved.detach();
  EXPECT_FALSE(moved.attached());
  EXPECT_EQ(q.stats().consumers, 0u);
}

TEST(OQueueTest, AttachingBeyondTheLimitIsAnError) {
  OQueue<int> q("limits", 2);
  std::vector<OQueue<int>::StrongObserver> strong;
  for (size_t i = 0; i < kMaxStrongObservers; ++i) {
    strong.push_back(std::move(q.try_attach_strong_observer().value()));
  }
  Result<OQueue<int>::StrongObserver> extra = q.try_attach_strong_observer();
  ASSERT_FALSE(extra.is_ok());
  EXPECT_EQ(extra.status().code(), StatusCode::kResourceExhausted);
  strong.pop_back();
  EXPECT_TRUE(q.try_attach_strong_observer().is_ok()) << "a freed slot is reused";
  EXPECT_EQ(q.try_attach_weak_observer(0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(q.try_attach_weak_observer(kMaxHistory + 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(OQueueTest, ABlockedTakeIsWokenByALaterPut) {
  for (WaitPolicy policy : kPolicies) {
    OQueue<int> q("wake", 4);
    auto c = q.attach_consumer(policy);
    auto s = q.attach_strong_observer(policy);
    std::atomic<int> got{0};
    std::thread t([&] {
      got.fetch_add(c.take());
      got.fetch_add(s.strong_observe());
    });
    std::this_thread::sleep_for(30ms);  // long enough for kBlock to be asleep
    auto p = q.attach_producer();
    p.put(21);
    t.join();
    EXPECT_EQ(got.load(), 42);
  }
}

TEST(OQueueTest, NoLostWakeUpAcrossManyBlockingHandOffs) {
  // Sleep at once, so every hand-off goes through the futex path.
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.spin_before_sleep", "0").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.yield_before_sleep_us", "0").is_ok());
  OQueue<int> ping("ping", 2);
  OQueue<int> pong("pong", 2);
  constexpr int kRounds = 5000;
  std::thread echo([&] {
    auto in = ping.attach_consumer(WaitPolicy::kBlock);
    auto out = pong.attach_producer(WaitPolicy::kBlock);
    for (int i = 0; i < kRounds; ++i)
      out.put(in.take() + 1);
  });
  auto out = ping.attach_producer(WaitPolicy::kBlock);
  auto in = pong.attach_consumer(WaitPolicy::kBlock);
  int value = 0;
  for (int i = 0; i < kRounds; ++i) {
    // The echo thread may not have attached yet: nothing would capture the first message.
    while (ping.stats().consumers == 0)
      std::this_thread::yield();
    out.put(value);
    value = in.take();
  }
  echo.join();
  EXPECT_EQ(value, kRounds);
  KnobRegistry::global().reset_for_testing();
}

TEST(OQueueTest, SpinBudgetShrinksWhileSpinsRunOutAndRecovers) {
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.spin_before_sleep", "1000").is_ok());
  uint32_t word = UINT32_MAX;
  {
    detail::SpinBudget budget(word);
    EXPECT_EQ(budget.limit(), 1000u);  // starts at the knob
  }
  for (int i = 0; i < 20; ++i)
    detail::SpinBudget(word).ran_out();
  EXPECT_EQ(word, detail::SpinBudget::kMinSpins);  // halved down to the floor, not below
  uint32_t previous = word;
  for (int i = 0; i < 200; ++i) {
    detail::SpinBudget(word).spun_enough();
    EXPECT_GT(word, std::min(previous, 999u));  // grows on every wait the spin ended
    previous = word;
    if (word == 1000)
      break;
  }
  EXPECT_EQ(word, 1000u);
  detail::SpinBudget(word).spun_enough();
  EXPECT_EQ(word, 1000u);  // never above the knob
  // One spin in five running out holds the budget near the knob's order; one in two sinks it.
  for (int i = 0; i < 500; ++i) {
    detail::SpinBudget b(word);
    if (i % 2 == 0)
      b.ran_out();
    else
      b.spun_enough();
  }
  EXPECT_LT(word, 64u);
  // Lowering the knob caps a budget already above it.
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.spin_before_sleep", "8").is_ok());
  word = 500;
  EXPECT_EQ(detail::SpinBudget(word).limit(), 8u);
  detail::SpinBudget(word).ran_out();
  EXPECT_EQ(word, 8u);  // the floor never exceeds the knob
  KnobRegistry::global().reset_for_testing();
}

TEST(OQueueTest, BlockingHandOffsWithMoreThreadsThanCpusStayExactlyOnce) {
  // Strong observers, a consumer and the producer all kBlock, more threads than this machine
  // has CPUs, and a ring of 2: every put waits for every observer. The yield phase and the
  // shrinking spin budget are what keep this fast; here we check they lose nothing.
  OQueue<uint64_t> q("block.crowd", 2);
  constexpr uint64_t kMessages = 20000;
  const size_t observers = std::max<size_t>(2, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  std::vector<uint64_t> sums(observers, 0);
  std::atomic<size_t> ready{0};
  for (size_t k = 0; k < observers; ++k) {
    threads.emplace_back([&, k] {
      auto o = q.attach_strong_observer(WaitPolicy::kBlock);
      ready.fetch_add(1);
      uint64_t expect = 0;
      for (uint64_t i = 0; i < kMessages; ++i) {
        const uint64_t v = o.strong_observe();
        EXPECT_EQ(v, expect++);
        sums[k] += v;
      }
    });
  }
  uint64_t taken_sum = 0;
  threads.emplace_back([&] {
    auto c = q.attach_consumer(WaitPolicy::kBlock);
    ready.fetch_add(1);
    for (uint64_t i = 0; i < kMessages; ++i)
      taken_sum += c.take();
  });
  while (ready.load() < observers + 1)
    std::this_thread::yield();
  auto p = q.attach_producer(WaitPolicy::kBlock);
  for (uint64_t i = 0; i < kMessages; ++i)
    p.put(i);
  for (std::thread& t : threads)
    t.join();
  const uint64_t want = kMessages * (kMessages - 1) / 2;
  EXPECT_EQ(taken_sum, want);
  for (uint64_t s : sums)
    EXPECT_EQ(s, want);
}

TEST(OQueueTest, BlockedProducerIsWokenWhenTheGateMoves) {
  for (WaitPolicy policy : kPolicies) {
    OQueue<int> q("space", 2);
    auto c = q.attach_consumer(policy);
    auto p = q.attach_producer(policy);
    p.put(1);
    p.put(2);
    std::thread t([&] { p.put(3); });  // blocks: ring full
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(c.take(), 1);
    t.join();
    EXPECT_EQ(c.take(), 2);
    EXPECT_EQ(c.take(), 3);
  }
}

TEST(OQueueTest, DetachingTheLastObserverUnblocksAWaitingProducer) {
  for (WaitPolicy policy : kPolicies) {
    OQueue<int> q("unblock", 2);
    auto p = q.attach_producer(policy);
    auto s = q.attach_strong_observer(policy);
    p.put(1);
    p.put(2);
    std::atomic<bool> done{false};
    std::thread t([&] {
      p.put(3);  // waits for the observer
      done = true;
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(done.load());
    s.detach();
    t.join();
    EXPECT_TRUE(done.load());
  }
}

TEST(OQueueTest, PendingMessagesAreDroppedWhenTheLastConsumerDetaches) {
  OQueue<int> q("drops", 8);
  auto p = q.attach_producer();
  {
    auto c = q.attach_consumer();
    for (int i = 0; i < 5; ++i)
      p.put(i);
    EXPECT_EQ(c.take(), 0);
    EXPECT_EQ(q.stats().depth, 4u);
  }
  EXPECT_EQ(q.stats().drops, 4u);
  auto c = q.attach_consumer();
  EXPECT_FALSE(c.try_take().has_value());
  p.put(7);
  EXPECT_EQ(c.take(), 7);
}

TEST(OQueueTest, StatsCountEveryOperation) {
  OQueue<int> q("stats", 4);
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  auto s = q.attach_strong_observer();
  auto w = q.attach_weak_observer(2);
  for (int i = 0; i < 3; ++i)
    p.put(i);
  c.take();
  c.take();
  s.strong_observe();
  (void)w.history(2);
  (void)c.take_until(Clock::now() + 1ms);  // one left: no wait
  (void)c.take_until(Clock::now() + 1ms);  // empty: waits
  QueueStats st = q.stats();
  EXPECT_EQ(st.name, "stats");
  EXPECT_EQ(st.capacity, 4u);
  EXPECT_EQ(st.history_capacity, 2u);
  EXPECT_EQ(st.puts, 3u);
  EXPECT_EQ(st.captures, 3u);
  EXPECT_EQ(st.takes, 3u);
  EXPECT_EQ(st.observes, 1u);
  EXPECT_EQ(st.history_reads, 1u);
  EXPECT_EQ(st.waits, 1u);
  EXPECT_EQ(st.drops, 0u);
  EXPECT_EQ(st.depth, 0u);
}

TEST(OQueueTest, RegistryListsLiveQueues) {
  const size_t before = QueueRegistry::global().size();
  {
    OQueue<int> a("registry.b", 2);
    OQueue<double> b("registry.a", 2);
    auto p = a.attach_producer();
    p.put(1);
    std::vector<QueueStats> all = QueueRegistry::global().snapshot();
    ASSERT_EQ(all.size(), before + 2);
    auto find = [&](const std::string& n) {
      return std::find_if(all.begin(), all.end(), [&](const QueueStats& s) { return s.name == n; });
    };
    ASSERT_NE(find("registry.a"), all.end());
    ASSERT_NE(find("registry.b"), all.end());
    EXPECT_LT(find("registry.a"), find("registry.b")) << "sorted by name";
    EXPECT_EQ(find("registry.b")->puts, 1u);
  }
  EXPECT_EQ(QueueRegistry::global().size(), before);
}

// --- single-producer / single-consumer modes ---

struct Mode {
  bool single_producer;
  bool single_consumer;
  bool membarrier;  // false: the locked-RMW fallback
};

std::string mode_name(const testing::TestParamInfo<Mode>& info) {
  const Mode& m = info.param;
  std::string n =
      m.single_producer ? (m.single_consumer ? "Spsc" : "Sp") : (m.single_consumer ? "Sc" : "Mpmc");
  return n + (m.membarrier ? "Membarrier" : "Fallback");
}

// Builds queues with the membarrier knob set for the test's mode; restores it afterwards.
class SingleModeTest : public testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(KnobRegistry::global()
                    .set("oqueue.membarrier", GetParam().membarrier ? "true" : "false")
                    .is_ok());
  }
  void TearDown() override {
    ASSERT_TRUE(KnobRegistry::global().set("oqueue.membarrier", "true").is_ok());
  }
  QueueOptions options() const {
    return {.single_producer = GetParam().single_producer,
            .single_consumer = GetParam().single_consumer};
  }
};

TEST_P(SingleModeTest, OptionsAndBarrierAreReported) {
  OQueue<int> q("single.options", 8, options());
  EXPECT_EQ(q.options().single_producer, GetParam().single_producer);
  EXPECT_EQ(q.options().single_consumer, GetParam().single_consumer);
  if (!GetParam().membarrier || (!GetParam().single_producer && !GetParam().single_consumer)) {
    EXPECT_FALSE(q.uses_asymmetric_barrier());
  }
}

TEST_P(SingleModeTest, ConsumedSlotsDoNotOpenTheGateForALaterStrongObserver) {
  OQueue<int> q("single.slot_gate", 2, options());
  auto p = q.attach_producer(WaitPolicy::kSpin);
  auto c = q.attach_consumer(WaitPolicy::kSpin);
  for (int i = 0; i < 4; ++i) {  // two laps: every slot says the consumers took it
    ASSERT_TRUE(p.try_put(i));
    EXPECT_EQ(c.take(), i);
  }
  auto s = q.attach_strong_observer(WaitPolicy::kSpin);
  ASSERT_TRUE(p.try_put(10));
  ASSERT_TRUE(p.try_put(11));
  EXPECT_EQ(c.take(), 10);
  EXPECT_EQ(c.take(), 11);
  // The consumers are done with both slots, the observer with neither: the ring is full.
  EXPECT_FALSE(p.try_put(12));
  EXPECT_EQ(s.strong_observe(), 10);
  ASSERT_TRUE(p.try_put(12));
  EXPECT_FALSE(p.try_put(13));
  EXPECT_EQ(s.strong_observe(), 11);
  EXPECT_EQ(s.strong_observe(), 12);
  EXPECT_EQ(c.take(), 12);
  // Once the observer leaves, the consumers alone gate the producer again.
  s.detach();
  for (int i = 20; i < 26; ++i) {
    ASSERT_TRUE(p.try_put(i));
    EXPECT_EQ(c.take(), i);
  }
}

// A producer that has been putting to consumers alone (the lean path of a single-producer queue)
// must notice every later attach and detach at its next put: history, observers and the
// unheard count each see exactly the messages of their time.
TEST_P(SingleModeTest, EachPutFollowsTheAttachmentsOfItsMoment) {
  // Both forms: put() takes the lean paths (single and shared head_), try_put() does not.
  for (const bool blocking_put : {false, true}) {
    SCOPED_TRACE(blocking_put ? "put()" : "try_put()");
    OQueue<int> q("single.shapes", 4, options());
    auto p = q.attach_producer(WaitPolicy::kSpin);
    auto c = q.attach_consumer(WaitPolicy::kSpin);
    auto put = [&](int v) {
      if (!blocking_put)
        return p.try_put(v);
      p.put(v);
      return true;
    };
    int next = 0;
    auto round = [&](int n) {
      for (int i = 0; i < n; ++i) {
        ASSERT_TRUE(put(next));
        ASSERT_EQ(c.take(), next);
        ++next;
      }
    };
    round(9);  // more than two laps: the cached limit runs out and the slot gate opens it
    auto w = q.attach_weak_observer(4);
    round(3);
    EXPECT_EQ(w.history(4), (std::vector<int>{9, 10, 11}));
    w.detach();
    round(2);
    auto s = q.attach_strong_observer(WaitPolicy::kSpin);
    round(1);
    EXPECT_EQ(s.strong_observe(), 14);
    EXPECT_FALSE(s.try_strong_observe().has_value());
    s.detach();
    round(5);
    c.detach();
    ASSERT_TRUE(put(100));  // nobody attached: unheard, nothing kept
    c = q.attach_consumer(WaitPolicy::kSpin);
    EXPECT_FALSE(c.try_take().has_value());
    round(2);
    const QueueStats st = q.stats();
    EXPECT_EQ(st.puts, 23u);
    EXPECT_EQ(st.captures, 22u);
    EXPECT_EQ(st.takes, 22u);
    EXPECT_EQ(st.observes, 1u);
  }
}

TEST_P(SingleModeTest, SecondProducerOrConsumerIsRefusedAndSerialReuseWorks) {
  OQueue<int> q("single.refuse", 8, options());
  for (int round = 0; round < 3; ++round) {
    auto p = q.attach_producer(kPolicies[round]);
    auto c = q.attach_consumer(kPolicies[round]);
    Result<OQueue<int>::Producer> p2 = q.try_attach_producer();
    Result<OQueue<int>::Consumer> c2 = q.try_attach_consumer();
    EXPECT_EQ(p2.is_ok(), !GetParam().single_producer);
    EXPECT_EQ(c2.is_ok(), !GetParam().single_consumer);
    if (!p2.is_ok()) {
      EXPECT_EQ(p2.status().code(), StatusCode::kFailedPrecondition);
      EXPECT_NE(p2.status().message().find("single-producer"), std::string::npos);
    }
    if (!c2.is_ok()) {
      EXPECT_EQ(c2.status().code(), StatusCode::kFailedPrecondition);
      EXPECT_NE(c2.status().message().find("single-consumer"), std::string::npos);
    }
    // The refused attach changed nothing: the attached pair still works, in order.
    for (int i = 0; i < 20; ++i) {
      p.put(round * 100 + i);
      EXPECT_EQ(c.take(), round * 100 + i);
    }
    // Serial reuse: detach and attach again (handles destroyed at the end of the round).
  }
  QueueStats s = q.stats();
  EXPECT_EQ(s.takes, 60u);
  EXPECT_EQ(s.producers, 0u);
}

// Single owners count ring captures and takes by how far they moved their cursor; stats() must
// read the same counts as the bumped counters of the other modes, while the handles are live,
// after they detach, and across serial reuse.
TEST_P(SingleModeTest, StatsCountEachPutAndTakeOnceWhileAttachedAndAfter) {
  OQueue<int> q("single.stats", 4, options());
  auto p = q.attach_producer(WaitPolicy::kSpin);
  auto expect = [&](uint64_t puts, uint64_t captures, uint64_t takes) {
    const QueueStats st = q.stats();
    EXPECT_EQ(st.puts, puts);
    EXPECT_EQ(st.captures, captures);
    EXPECT_EQ(st.takes, takes);
  };
  for (int i = 0; i < 3; ++i)
    p.put(i);  // unheard
  expect(3, 0, 0);
  auto w = q.attach_weak_observer(4);
  p.put(3);
  p.put(4);  // history only
  expect(5, 2, 0);
  auto c = q.attach_consumer(WaitPolicy::kSpin);
  for (int i = 5; i < 8; ++i)
    p.put(i);  // ring and history: one capture each
  expect(8, 5, 0);
  EXPECT_EQ(c.take(), 5);
  EXPECT_EQ(c.take(), 6);
  expect(8, 5, 2);
  w.detach();
  for (int i = 8; i < 18; ++i) {  // consumers alone: the lean path of a single producer
    p.put(i);
    EXPECT_EQ(c.take(), i - 1);
  }
  expect(18, 15, 12);
  EXPECT_EQ(q.stats().depth, 1u);
  p.detach();
  expect(18, 15, 12);
  p = q.attach_producer(WaitPolicy::kSpin);
  p.put(18);
  EXPECT_EQ(c.take(), 17);
  EXPECT_EQ(c.take(), 18);
  expect(19, 16, 14);
  c.detach();
  p.put(19);  // unheard again
  p.detach();
  expect(20, 16, 14);
  EXPECT_EQ(q.stats().drops, 0u);
}

// put() writes inline while consumers and strong observers without filters are attached. Its
// gate must hold for the slowest of them: a lagging observer stops the producer even though the
// consumers have taken every slot, and observers that come and go change it at the next put.
TEST_P(SingleModeTest, LeanPutsWaitForTheSlowestStrongObserver) {
  OQueue<int> q("single.lean_strong", 4, options());
  auto p = q.attach_producer(WaitPolicy::kSpin);
  auto c = q.attach_consumer(WaitPolicy::kSpin);
  auto s1 = q.attach_strong_observer(WaitPolicy::kSpin);
  int next = 0;
  for (; next < 10; ++next) {  // laps past the cached limits
    p.put(next);
    EXPECT_EQ(c.take(), next);
    EXPECT_EQ(s1.strong_observe(), next);
  }
  auto s2 = q.attach_strong_observer(WaitPolicy::kSpin);
  for (int i = 0; i < 4; ++i, ++next) {  // s2 lags: the ring fills up to it
    p.put(next);
    EXPECT_EQ(c.take(), next);
    EXPECT_EQ(s1.strong_observe(), next);
  }
  EXPECT_FALSE(p.try_put(next)) << "the second observer has seen none of the last 4";
  // A put() must wait for s2 as well. If it did not, it would overwrite ticket 10's slot, which
  // the check below sees however the threads are scheduled.
  std::atomic<bool> put_done{false};
  std::thread blocked([&] {
    p.put(next);
    put_done.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(put_done.load()) << "put() passed an observer that had not seen the slot";
  std::optional<int> first = s2.try_strong_observe();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 10);
  blocked.join();
  for (int i = 1; i < 5; ++i)
    EXPECT_EQ(s2.strong_observe(), 10 + i);
  EXPECT_EQ(c.take(), next);
  EXPECT_EQ(s1.strong_observe(), next);
  ++next;
  s1.detach();
  for (int i = 0; i < 9; ++i, ++next) {
    p.put(next);
    EXPECT_EQ(c.take(), next);
    EXPECT_EQ(s2.strong_observe(), next);
  }
  s2.detach();
  for (int i = 0; i < 9; ++i, ++next) {
    p.put(next);
    EXPECT_EQ(c.take(), next);
  }
  const QueueStats st = q.stats();
  EXPECT_EQ(st.captures, 33u);
  EXPECT_EQ(st.takes, 33u);
  EXPECT_EQ(st.observes, (10u + 5u) + (5u + 9u));  // s1, s2
}

TEST_P(SingleModeTest, PlainAttachAbortsWithTheMessage) {
  if (!GetParam().single_producer && !GetParam().single_consumer)
    GTEST_SKIP() << "nothing is refused in multi-producer multi-consumer mode";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  OQueue<int> q("single.abort", 8, options());
  auto p = q.attach_producer();
  auto c = q.attach_consumer();
  if (GetParam().single_producer) {
    EXPECT_DEATH(q.attach_producer(), "single-producer");
  }
  if (GetParam().single_consumer) {
    EXPECT_DEATH(q.attach_consumer(), "single-consumer");
  }
}

// One producer thread, one consumer thread (the modes' use); strong observers attach and detach
// under load and must see contiguous runs; a steady one sees everything; a weak observer's
// history is never torn and oldest first.
TEST_P(SingleModeTest, ExactlyOnceInOrderWithObserversChurning) {
#if defined(__SANITIZE_THREAD__)
  constexpr uint64_t kCount = 1000;
#else
  constexpr uint64_t kCount = 5000;
#endif
  // Yield and block only: four busy threads on a small machine make spinning crawl.
  for (WaitPolicy policy : {WaitPolicy::kYield, WaitPolicy::kBlock}) {
    OQueue<std::array<uint64_t, 3>> q("single.churn", 16, options());
    auto steady = q.attach_strong_observer(policy);
    auto weak = q.attach_weak_observer(8);
    std::atomic<bool> done{false}, failed{false};
    std::thread consumer([&] {
      auto c = q.attach_consumer(policy);
      for (uint64_t i = 0; i < kCount; ++i) {
        const auto m = c.take();
        if (m[0] != i || m[1] != ~i || m[2] != i * 7)
          failed = true;
      }
    });
    std::thread observer([&] {
      for (uint64_t i = 0; i < kCount; ++i) {
        if (steady.strong_observe()[0] != i)
          failed = true;
      }
    });
    std::thread churn([&] {
      for (int round = 0; !done; ++round) {
        auto s = q.attach_strong_observer(kPolicies[1 + round % 2]);
        std::optional<uint64_t> last;
        for (int i = 0; i < 100 && !done; ++i) {
          if (auto m = s.strong_observe_until(soon(2ms))) {
            if (last && (*m)[0] != *last + 1)
              failed = true;
            last = (*m)[0];
          }
        }
        std::array<uint64_t, 3> buf[8];
        const size_t k = weak.history(std::span<std::array<uint64_t, 3>>(buf, 8));
        for (size_t j = 0; j < k; ++j) {
          if (buf[j][1] != ~buf[j][0] || buf[j][2] != buf[j][0] * 7 ||
              (j > 0 && buf[j][0] <= buf[j - 1][0])) {
            failed = true;
          }
        }
      }
    });
    // Attach the producer only once the consumer is there, so that every message is taken.
    while (q.stats().consumers == 0)
      std::this_thread::yield();
    {
      auto p = q.attach_producer(policy);
      for (uint64_t i = 0; i < kCount; ++i) {
        if (i % 3 == 0) {
          while (!p.try_put({i, ~i, i * 7}))
            std::this_thread::yield();
        } else if (i % 3 == 1) {
          while (!p.put_until({i, ~i, i * 7}, soon(1ms))) {
          }
        } else {
          p.put({i, ~i, i * 7});
        }
      }
    }
    consumer.join();
    observer.join();
    done = true;
    churn.join();
    EXPECT_FALSE(failed.load()) << "policy " << static_cast<int>(policy);
    EXPECT_EQ(q.stats().takes, kCount);
  }
}

TEST_P(SingleModeTest, BlockedSidesAreWokenAcrossManyHandOffs) {
  // Ping-pong through two queues with kBlock handles and no spinning: every hand-off sleeps,
  // so a lost wake-up hangs the test.
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.spin_before_sleep", "0").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.yield_before_sleep_us", "0").is_ok());
  OQueue<int> there("single.there", 2, options());
  OQueue<int> back("single.back", 2, options());
  constexpr int kRounds = 2000;
  std::thread echo([&] {
    auto in = there.attach_consumer(WaitPolicy::kBlock);
    auto out = back.attach_producer(WaitPolicy::kBlock);
    for (int i = 0; i < kRounds; ++i)
      out.put(in.take());
  });
  while (there.stats().consumers == 0)
    std::this_thread::yield();
  auto out = there.attach_producer(WaitPolicy::kBlock);
  auto in = back.attach_consumer(WaitPolicy::kBlock);
  for (int i = 0; i < kRounds; ++i) {
    out.put(i);
    EXPECT_EQ(in.take(), i);
  }
  echo.join();
  // A full ring: the producer sleeps until the consumer takes.
  std::thread slow([&] {
    auto c = there.attach_consumer(WaitPolicy::kBlock);
    for (int i = 0; i < 200; ++i) {
      if (i % 50 == 0)
        std::this_thread::sleep_for(1ms);
      EXPECT_EQ(c.take(), i);
    }
  });
  while (there.stats().consumers == 0)
    std::this_thread::yield();
  for (int i = 0; i < 200; ++i)
    out.put(i);
  slow.join();
  KnobRegistry::global().reset_for_testing();
}

INSTANTIATE_TEST_SUITE_P(Modes, SingleModeTest,
                         testing::Values(Mode{false, false, true}, Mode{true, false, true},
                                         Mode{false, true, true}, Mode{true, true, true},
                                         Mode{true, false, false}, Mode{false, true, false},
                                         Mode{true, true, false}),
                         mode_name);

// The asserting attach forms abort with the reason the try_ forms return, not a guess.
TEST(OQueueDeathTest, PlainObserverAttachAbortsWithTheReason) {
  OQueue<uint64_t> q("death.observers", 8);
  const std::string reason = q.try_attach_weak_observer(0).status().message();
  ASSERT_FALSE(reason.empty());
  EXPECT_DEATH(q.attach_weak_observer(0), reason.substr(0, 20));
}

}  // namespace
}  // namespace sluice::oq
