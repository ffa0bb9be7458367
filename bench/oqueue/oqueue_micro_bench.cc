// Single-thread micro-benchmarks of OQueue's data-structure cost, with no transfer of control:
//
//   BM_PlainCall          a noinline call passing one argument: the baseline
//   BM_QueuedCall         the same argument put into an OQueue and taken out again, then the call
//                         (the paper measures 7 ns vs 11 ns; sluice's goal is a ratio <= 1.5)
//   BM_UnobservedPut      put with only the producer attached: no consumer, no observer, so no
//                         data is kept (goal: <= 2 ns)
//   BM_PutTake<peer>      put + take on one thread for the peers, for scale (null mode of the
//                         ping-pong: the queue alone, no second core)
//
// Run with --benchmark_repetitions=N (default set below) and compare in one run with
// tools/bench_report.py --baseline BM_PlainCall.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "oqueue/oqueue_adapter.h"
#include "oqueue/peers.h"

namespace {

using sluice::oq::WaitPolicy;
using sluice::oq::bench::OQueueAdapter;

// The callee: noinline so the call really happens; the asm statement keeps the argument live.
[[gnu::noinline]] void callee(std::uint64_t v) {
  benchmark::DoNotOptimize(v);
}

void BM_PlainCall(benchmark::State& state) {
  std::uint64_t v = 1;
  for (auto _ : state) {
    callee(v);
    ++v;
  }
}
BENCHMARK(BM_PlainCall);

void BM_QueuedCall(benchmark::State& state) {
  OQueueAdapter<WaitPolicy::kSpin> q("bench.queued_call");
  auto producer = q.producer();
  auto consumer = q.consumer();
  std::uint64_t v = 1;
  for (auto _ : state) {
    producer.put(v);
    callee(consumer.take());
    ++v;
  }
}
BENCHMARK(BM_QueuedCall);

void BM_UnobservedPut(benchmark::State& state) {
  OQueueAdapter<WaitPolicy::kSpin> q("bench.unobserved");
  auto producer = q.producer();
  std::uint64_t v = 1;
  for (auto _ : state) {
    producer.put(v);
    ++v;
  }
  benchmark::ClobberMemory();
}
BENCHMARK(BM_UnobservedPut);

// put + take on one thread through a ping-pong adapter (ring length 2).
template <class Adapter>
void BM_PutTake(benchmark::State& state) {
  Adapter q("bench.put_take");
  auto producer = q.producer();
  auto consumer = q.consumer();
  std::uint64_t v = 1;
  for (auto _ : state) {
    producer.put(v);
    benchmark::DoNotOptimize(consumer.take());
    ++v;
  }
  state.SetLabel(std::string(Adapter::kName));
}
BENCHMARK_TEMPLATE(BM_PutTake, OQueueAdapter<WaitPolicy::kSpin>);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::AtomicQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::XeniumVyukovAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::ReaderWriterQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::ConcurrentQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::BoostSpscAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::BoostQueueAdapter);

}  // namespace

BENCHMARK_MAIN();
