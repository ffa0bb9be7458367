// Stress test of take()'s claim-first path sharing a consumer group with the copy-first
// try_take() and take_until(). Run it under ThreadSanitizer too.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>

#include "sluice/common/knobs.h"
#include "sluice/oqueue/oqueue.h"
#include "stress_messages.h"

namespace sluice::oq {
namespace {

using namespace stress;

// take() claims its ticket before the message is there, try_take() and take_until() copy first:
// both kinds share one consumer group on a ring of 4, with blocking producers (so every take
// pairs with possible space sleepers) and a strong observer attaching and detaching. Each message
// must be taken exactly once, whole, and in order per producer within each consumer.
void claim_and_copy(const char* name) {
  constexpr size_t kProducers = 3;
  constexpr uint64_t kPerThread = kPerProducer / 2;
  constexpr uint64_t kTotal = kProducers * kPerThread;
  constexpr uint64_t kPoison = ~uint64_t{0};
  OQueue<Msg> q(name, 4);
  auto times_taken = std::make_unique<std::atomic<uint8_t>[]>(kTotal);
  std::atomic<uint64_t> taken{0};
  std::atomic<bool> copying_done{false};
  std::atomic<bool> producers_done{false};
  auto record = [&](const Msg& m, OrderChecker& order) {
    ASSERT_TRUE(intact(m)) << "torn message";
    ASSERT_TRUE(order.see(m, false)) << "out of order within one consumer";
    times_taken[m.producer * kPerThread + m.seq].fetch_add(1);
    taken.fetch_add(1);
  };
  std::atomic<int> attached{0};
  auto claiming_taker = [&](WaitPolicy policy) {
    return std::thread([&, policy] {
      auto c = q.attach_consumer(policy);
      attached.fetch_add(1);
      OrderChecker order(kProducers);
      for (;;) {
        const Msg m = c.take();
        if (m.producer == kPoison)
          return;
        record(m, order);
      }
    });
  };
  std::thread blocking_taker = claiming_taker(WaitPolicy::kBlock);
  std::thread yielding_taker = claiming_taker(WaitPolicy::kYield);
  constexpr size_t kClaimingTakers = 2;
  std::thread copier([&] {
    auto c = q.attach_consumer(WaitPolicy::kBlock);
    attached.fetch_add(1);
    OrderChecker order(kProducers);
    for (uint64_t i = 0; !copying_done.load(); ++i) {
      std::optional<Msg> m = (i % 2 == 0) ? c.try_take() : c.take_until(soon());
      if (m)
        record(*m, order);
    }
  });
  std::thread observer([&] {
    while (!producers_done.load()) {
      auto o = q.attach_strong_observer(WaitPolicy::kBlock);
      OrderChecker order(kProducers);
      for (int i = 0; i < 500; ++i) {
        if (auto m = o.strong_observe_until(soon())) {
          ASSERT_TRUE(intact(*m));
          if (m->producer != kPoison) {
            ASSERT_TRUE(order.see(*m, true)) << "a strong observer missed a message";
          }
        }
      }
    }
  });
  while (attached.load() < 3)
    std::this_thread::yield();
  std::vector<std::thread> producers;
  for (size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      auto h = q.attach_producer(p == 0 ? WaitPolicy::kYield : WaitPolicy::kBlock);
      for (uint64_t s = 0; s < kPerThread; ++s)
        h.put(make(p, s));
    });
  }
  for (auto& t : producers)
    t.join();
  producers_done = true;
  observer.join();
  // Every message is claimed by someone; stop the copier, then release the claiming takers,
  // each waiting on a ticket nobody has put yet, with one poison message each.
  while (taken.load() < kTotal)
    std::this_thread::yield();
  copying_done = true;
  copier.join();
  {
    auto h = q.attach_producer(WaitPolicy::kBlock);
    for (size_t i = 0; i < kClaimingTakers; ++i)
      h.put(Msg{kPoison, 0, mix(kPoison, 0), ~mix(0, kPoison) + kPoison});
  }
  blocking_taker.join();
  yielding_taker.join();
  EXPECT_EQ(taken.load(), kTotal);
  for (uint64_t i = 0; i < kTotal; ++i)
    ASSERT_EQ(times_taken[i].load(), 1) << "message " << i << " taken " << +times_taken[i].load();
  EXPECT_EQ(q.stats().takes, kTotal + kClaimingTakers);
}

TEST(OQueueStressTest, ClaimingAndCopyingTakersShareOneGroup) {
  claim_and_copy("stress.claiming");
}

// Every wait sleeps in the kernel at once, so a take that marks its slot taken without waking a
// producer that sleeps on that slot hangs here.
TEST(OQueueStressTest, ClaimingTakersWakeSleepingProducers) {
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.spin_before_sleep", "0").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.yield_before_sleep_us", "0").is_ok());
  claim_and_copy("stress.claiming.sleep");
  // Without membarrier, takers mark `taken` with a locked exchange instead.
  ASSERT_TRUE(KnobRegistry::global().set("oqueue.membarrier", "false").is_ok());
  claim_and_copy("stress.claiming.nomb");
  KnobRegistry::global().reset_for_testing();
}

}  // namespace
}  // namespace sluice::oq
