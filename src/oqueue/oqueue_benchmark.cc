// The call-overhead goal of docs/oqueue.md: a plain out-of-line call passing one argument
// against the same argument put into and taken out of an OQueue on one thread, for each
// QueueOptions mode, and the unobserved put. Run with --benchmark_repetitions and
// --benchmark_enable_random_interleaving so that every mode sees the same machine load.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "sluice/oqueue/oqueue.h"

namespace {

using sluice::oq::OQueue;
using sluice::oq::QueueOptions;
using sluice::oq::WaitPolicy;

[[gnu::noinline]] uint64_t plain_call(uint64_t v) {
  asm volatile("" : "+r"(v));  // the call is neither elided nor folded into the caller
  return v;
}

void BM_PlainCall(benchmark::State& state) {
  uint64_t v = 1;
  for (auto _ : state) {
    v = plain_call(v + 1);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_PlainCall);

void put_take(benchmark::State& state, QueueOptions options) {
  OQueue<uint64_t> q("bench.put_take", 1024, options);
  auto p = q.attach_producer(WaitPolicy::kSpin);
  auto c = q.attach_consumer(WaitPolicy::kSpin);
  uint64_t v = 1;
  for (auto _ : state) {
    p.put(v + 1);
    v = c.take();
    benchmark::DoNotOptimize(v);
  }
  state.SetLabel(q.uses_asymmetric_barrier() ? "membarrier" : "");
}
void BM_PutTakeMpmc(benchmark::State& state) {
  put_take(state, {});
}
void BM_PutTakeSingleProducer(benchmark::State& state) {
  put_take(state, {.single_producer = true});
}
void BM_PutTakeSingleConsumer(benchmark::State& state) {
  put_take(state, {.single_consumer = true});
}
void BM_PutTakeSpsc(benchmark::State& state) {
  put_take(state, {.single_producer = true, .single_consumer = true});
}
BENCHMARK(BM_PutTakeMpmc);
BENCHMARK(BM_PutTakeSingleProducer);
BENCHMARK(BM_PutTakeSingleConsumer);
BENCHMARK(BM_PutTakeSpsc);

void BM_UnobservedPut(benchmark::State& state) {
  OQueue<uint64_t> q("bench.unobserved", 1024);
  auto p = q.attach_producer(WaitPolicy::kSpin);
  uint64_t v = 1;
  for (auto _ : state) {
    p.put(++v);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_UnobservedPut);

}  // namespace

BENCHMARK_MAIN();
