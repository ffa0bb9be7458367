// What the hot paths pay for common's services: a TSC stamp against clock_gettime, and a
// runtime knob read against a plain relaxed atomic load.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>

#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"

namespace {

const sluice::IntKnob kBenchKnob({.name = "bench.sample",
                                  .default_value = 7,
                                  .min = 0,
                                  .max = 100,
                                  .help = "a knob the common benchmark reads"});

void BM_MonotonicNs(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(sluice::monotonic_ns());
  }
}
BENCHMARK(BM_MonotonicNs);

void BM_SteadyClockNow(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(std::chrono::steady_clock::now());
  }
}
BENCHMARK(BM_SteadyClockNow);

void BM_TscTicks(benchmark::State& state) {
  const sluice::TscClock& clock = sluice::TscClock::global();
  state.SetLabel(clock.uses_tsc() ? "rdtsc" : "fallback: CLOCK_MONOTONIC");
  for (auto _ : state) {
    benchmark::DoNotOptimize(clock.ticks());
  }
}
BENCHMARK(BM_TscTicks);

void BM_AtomicLoadRelaxed(benchmark::State& state) {
  static std::atomic<int64_t> value{7};
  for (auto _ : state) {
    benchmark::DoNotOptimize(value.load(std::memory_order_relaxed));
  }
}
BENCHMARK(BM_AtomicLoadRelaxed);

void BM_RuntimeKnobGet(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(kBenchKnob.get());
  }
}
BENCHMARK(BM_RuntimeKnobGet);

}  // namespace

BENCHMARK_MAIN();
