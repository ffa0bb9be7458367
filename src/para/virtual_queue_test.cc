#include "sluice/para/virtual_queue.h"

#include <gtest/gtest.h>

#include "sluice/para/testing.h"

namespace sluice::para {
namespace {

// The shared resource: a counter the owner partition alone may touch.
struct Device {
  int owner_core = -1;
  uint64_t ops = 0;
  bool touched_off_owner = false;
};

TEST(VirtualQueueTest, FloodingPartitionCannotStarveTheOther) {
  RuntimeOptions o = testing::testing_options();
  if (o.cores.size() < 2) {
    GTEST_SKIP() << "needs two cores";
  }
  auto rt = Runtime::start(o);
  ASSERT_TRUE(rt.is_ok());
  Device dev;
  dev.owner_core = o.cores[0];
  VirtualQueue<Device> vq(**rt, dev.owner_core, &dev, {.max_inflight = 1, .record_order = true});
  constexpr int kPerSource = 300;
  // Both partitions flood the owner with kPerSource concurrent calls; each call holds the device
  // for a moment (a real suspension), so requests pile up in the owner's queues.
  // The first call holds the device until every partition has requests waiting (at most 5 s),
  // so the scheduler must choose between them however the threads were scheduled.
  struct Ctx {
    VirtualQueue<Device>* vq;
    size_t sources;
  } ctx{&vq, o.cores.size()};
  auto flood = [&ctx]() -> Task<int> {
    std::vector<Task<Result<uint64_t>>> calls;
    for (int i = 0; i < kPerSource; ++i) {
      calls.push_back(ctx.vq->call([&ctx](Device& d) -> Task<uint64_t> {
        if (local_reactor().core() != d.owner_core)
          d.touched_off_owner = true;
        if (d.ops == 0) {
          for (int waited = 0; waited < 5000; ++waited) {
            bool all = true;
            for (uint32_t s = 0; s < ctx.sources; ++s) {
              all = all && ctx.vq->scheduler().waiting(s) > 0;
            }
            if (all)
              break;
            (void)co_await sleep_for(std::chrono::milliseconds(1));
          }
        }
        co_await yield();
        co_return ++d.ops;
      }));
    }
    std::vector<Result<uint64_t>> got = co_await when_all(std::move(calls));
    int ok = 0;
    for (auto& r : got)
      ok += r.is_ok() ? 1 : 0;
    co_return ok;
  };
  std::vector<std::thread> threads;
  std::atomic<int> total{0};
  for (int core : o.cores) {
    threads.emplace_back([&, core] { total += (*rt)->run_on(core, flood).value_or(0); });
  }
  for (auto& t : threads)
    t.join();
  (*rt)->stop();
  EXPECT_EQ(total.load(), kPerSource * static_cast<int>(o.cores.size()));
  EXPECT_EQ(dev.ops, static_cast<uint64_t>(total.load()));
  EXPECT_FALSE(dev.touched_off_owner);
  const FairScheduler& s = vq.scheduler();
  for (uint64_t served : s.served())
    EXPECT_EQ(served, static_cast<uint64_t>(kPerSource));
  // Whenever both partitions had a request waiting, the turn alternated.
  int contended = 0;
  const auto& order = s.order();
  for (size_t i = 1; i < order.size(); ++i) {
    if (std::popcount(order[i].waiting_mask) >= 2) {
      ++contended;
      EXPECT_NE(order[i].source, order[i - 1].source) << "at service " << i;
    }
  }
  EXPECT_GT(contended, 0) << "the test never had both partitions waiting";
}

PARA_TEST(VirtualQueueTest, CallFromTheOwnerItselfWorks) {
  Device dev;
  dev.owner_core = local_reactor().core();
  VirtualQueue<Device> vq(local_reactor().runtime(), dev.owner_core, &dev);
  Result<uint64_t> r = co_await vq.call([](Device& d) { return ++d.ops; });
  EXPECT_EQ(r.value_or(0), 1u);
  Status s = co_await vq.call([](Device& d) { d.ops += 10; });
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(dev.ops, 11u);
}

}  // namespace
}  // namespace sluice::para
