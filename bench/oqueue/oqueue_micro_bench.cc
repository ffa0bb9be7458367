// Single-thread micro-benchmarks of OQueue's data-structure cost, with no transfer of control:
//
//   BM_PlainCall          a noinline call passing one argument: the baseline
//   BM_QueuedCall<q>      the same argument put into a queue and taken out again, then the call
//                         (the paper measures 7 ns vs 11 ns; sluice's goal is a ratio <= 1.5),
//                         for OQueue (MPMC and SPSC mode) and the leanest peers
//   BM_UnobservedPut      put with only the producer attached: no consumer, no observer, so no
//                         data is kept (goal: <= 2 ns)
//   BM_PutTakeObserve<q>  put + take + strong_observe on one thread, one strong observer:
//                         the cost a strong observer adds per message
//   BM_PutTakeWeak<q>     put + take on one thread, one weak observer keeping a history of 16
//   BM_PutTake<peer>      put + take on one thread for the peers, for scale (null mode of the
//                         ping-pong: the queue alone, no second core)
// BM_QueuedCall and BM_PutTake also run two minimal SPSC rings (minimal_rings.h), one with a head
// and a tail index and one with a turn word per slot: what a queued call costs a ring of either
// design with nothing else to do, on the machine at hand.
//
// Run with --benchmark_repetitions=N (default set below) and compare in one run with
// tools/bench_report.py --baseline BM_PlainCall.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "oqueue/minimal_rings.h"
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

// The argument goes through the queue first: put, take, then the same call. Run for OQueue in
// both modes and for the peers, so the ratio to BM_PlainCall is read against the leanest queue.
template <class Adapter>
void BM_QueuedCall(benchmark::State& state) {
  Adapter q("bench.queued_call");
  auto producer = q.producer();
  auto consumer = q.consumer();
  std::uint64_t v = 1;
  for (auto _ : state) {
    producer.put(v);
    callee(consumer.take());
    ++v;
  }
  state.SetLabel(std::string(Adapter::kName));
}
BENCHMARK_TEMPLATE(BM_QueuedCall, OQueueAdapter<WaitPolicy::kSpin>);
BENCHMARK_TEMPLATE(BM_QueuedCall, OQueueAdapter<WaitPolicy::kSpin, true>);
BENCHMARK_TEMPLATE(BM_QueuedCall, sluice::oq::bench::BoostSpscAdapter);
BENCHMARK_TEMPLATE(BM_QueuedCall, sluice::oq::bench::ReaderWriterQueueAdapter);
BENCHMARK_TEMPLATE(BM_QueuedCall, sluice::oq::bench::AtomicQueueAdapter);
BENCHMARK_TEMPLATE(BM_QueuedCall, sluice::oq::bench::MinimalIndexRing);
BENCHMARK_TEMPLATE(BM_QueuedCall, sluice::oq::bench::MinimalTurnRing);

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

// put + take + strong_observe on one thread, with one strong observer attached: what a strong
// observer adds to each message when nobody waits, for OQueue in both modes. The argument is
// the ring length: with 2 (the ping-pong's) the producer's cached gate runs out every second
// put and it re-reads the observer's position; with 1024 it does so once a lap.
template <class Adapter>
void BM_PutTakeObserve(benchmark::State& state) {
  Adapter q("bench.put_take_observe", static_cast<std::size_t>(state.range(0)));
  auto producer = q.producer();
  auto consumer = q.consumer();
  auto observer = q.strong_observer();
  std::uint64_t v = 1;
  for (auto _ : state) {
    producer.put(v);
    benchmark::DoNotOptimize(consumer.take());
    benchmark::DoNotOptimize(observer.observe());
    ++v;
  }
  state.SetLabel(std::string(Adapter::kName));
}
BENCHMARK_TEMPLATE(BM_PutTakeObserve, OQueueAdapter<WaitPolicy::kSpin>)->Arg(2)->Arg(1024);
BENCHMARK_TEMPLATE(BM_PutTakeObserve, OQueueAdapter<WaitPolicy::kSpin, true>)->Arg(2)->Arg(1024);

// The timed loop of the put + take benchmarks: the queue alone, one thread, no second core.
template <class Adapter, class Producer, class Consumer>
[[gnu::always_inline]] inline void put_take_loop(benchmark::State& state, Producer& producer,
                                                 Consumer& consumer) {
  std::uint64_t v = 1;
  for (auto _ : state) {
    producer.put(v);
    benchmark::DoNotOptimize(consumer.take());
    ++v;
  }
  state.SetLabel(std::string(Adapter::kName));
}

// put + take on one thread with one weak observer (history 16) attached and never reading:
// the cost of keeping the history, per message. Ring length 1024.
template <class Adapter>
void BM_PutTakeWeak(benchmark::State& state) {
  Adapter q("bench.put_take_weak", 1024);
  auto producer = q.producer();
  auto consumer = q.consumer();
  auto weak = q.weak_observer(16);
  put_take_loop<Adapter>(state, producer, consumer);
}
BENCHMARK_TEMPLATE(BM_PutTakeWeak, OQueueAdapter<WaitPolicy::kSpin>);
BENCHMARK_TEMPLATE(BM_PutTakeWeak, OQueueAdapter<WaitPolicy::kSpin, true>);

// put + take on one thread through a ping-pong adapter (ring length 2).
template <class Adapter>
void BM_PutTake(benchmark::State& state) {
  Adapter q("bench.put_take");
  auto producer = q.producer();
  auto consumer = q.consumer();
  put_take_loop<Adapter>(state, producer, consumer);
}
BENCHMARK_TEMPLATE(BM_PutTake, OQueueAdapter<WaitPolicy::kSpin>);
BENCHMARK_TEMPLATE(BM_PutTake, OQueueAdapter<WaitPolicy::kSpin, true>);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::AtomicQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::XeniumVyukovAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::ReaderWriterQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::ConcurrentQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::BoostSpscAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::BoostQueueAdapter);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::MinimalIndexRing);
BENCHMARK_TEMPLATE(BM_PutTake, sluice::oq::bench::MinimalTurnRing);

}  // namespace

BENCHMARK_MAIN();
