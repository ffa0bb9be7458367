// Messages and checks shared by the OQueue stress tests: every message carries {producer, seq}
// and words derived from them, so a torn copy, a duplicate, a loss or a reordering is caught.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/oqueue/oqueue.h"

// Test-only: each test file gets its own copy (internal linkage), as when these lived in one
// file.
namespace sluice::oq::stress {
namespace {  // NOLINT(google-build-namespaces)

using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__)
constexpr uint64_t kPerProducer = 20000;
#else
constexpr uint64_t kPerProducer = 60000;
#endif

struct Msg {
  uint64_t producer;
  uint64_t seq;
  uint64_t mixed;
  uint64_t check;
};

uint64_t mix(uint64_t p, uint64_t s) {
  return (p * 0x9E3779B97F4A7C15ull) ^ (s * 0xC2B2AE3D27D4EB4Full);
}
Msg make(uint64_t p, uint64_t s) {
  return {p, s, mix(p, s), ~mix(s, p) + p};
}
bool intact(const Msg& m) {
  return m.mixed == mix(m.producer, m.seq) && m.check == ~mix(m.seq, m.producer) + m.producer;
}
[[maybe_unused]] bool from_producer(const Msg& m, uint64_t producer) {
  return m.producer == producer;
}

constexpr WaitPolicy kPolicies[] = {WaitPolicy::kSpin, WaitPolicy::kYield, WaitPolicy::kBlock};

[[maybe_unused]] Deadline soon() {
  return Clock::now() + 2ms;
}

// Starts `fn` on a thread kept in `threads`. Out of line: GCC 12, inlining emplace_back into a
// function that saw the vector start empty, reports a false array-bounds error on its growth.
template <typename Fn>
[[gnu::noinline]] void spawn(std::vector<std::thread>& threads, Fn&& fn) {
  threads.emplace_back(std::forward<Fn>(fn));
}

// Per-producer "next expected seq" for a reader that must see a contiguous run.
struct OrderChecker {
  explicit OrderChecker(size_t producers) : next(producers, ~uint64_t{0}) {}
  // Returns false on a gap, a duplicate or a reordering.
  bool see(const Msg& m, bool contiguous) {
    uint64_t& n = next[m.producer];
    if (n != ~uint64_t{0} && (contiguous ? m.seq != n : m.seq < n))
      return false;
    n = m.seq + 1;
    return true;
  }
  std::vector<uint64_t> next;
};

}  // namespace
}  // namespace sluice::oq::stress
