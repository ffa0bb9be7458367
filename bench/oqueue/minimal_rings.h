// Two minimal rings for the one-thread benchmarks: a bounded single-producer, single-consumer
// queue with nothing else, no observers, names, counters or waiting. They are not peers (nobody
// would ship them); they say what a queued call costs any ring of each design on the machine at
// hand, so the call-overhead goal can be read against what is possible there.
//
//   MinimalIndexRing  a head and a tail index, each on its own cache line, each side caching the
//                     other's (the design of boost::lockfree::spsc_queue and ReaderWriterQueue)
//   MinimalTurnRing   a turn word in every slot, written by the side that hands the slot over
//                     (OQueue's design: the turn is also what a weak observer validates a copy
//                     against, and what lets several producers or consumers share the ring)
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "pingpong.h"

namespace sluice::oq::bench {

class MinimalIndexRing {
  struct Ring {
    alignas(64) std::atomic<std::uint64_t> head{0};
    alignas(64) std::uint64_t producer_cached_tail = 0;
    alignas(64) std::atomic<std::uint64_t> tail{0};
    alignas(64) std::uint64_t consumer_cached_head = 0;
    alignas(64) std::array<std::uint64_t, kRingLength> slots{};
  };

 public:
  static constexpr std::string_view kName = "minimal ring: head and tail indices";
  explicit MinimalIndexRing(const char* /*name*/) : ring_(std::make_unique<Ring>()) {}
  struct Producer {
    Ring* r;
    void put(std::uint64_t v) {
      const std::uint64_t h = r->head.load(std::memory_order_relaxed);
      while (h - r->producer_cached_tail == kRingLength) {
        r->producer_cached_tail = r->tail.load(std::memory_order_acquire);
        if (h - r->producer_cached_tail == kRingLength)
          cpu_relax();
      }
      r->slots[h % kRingLength] = v;
      r->head.store(h + 1, std::memory_order_release);
    }
  };
  struct Consumer {
    Ring* r;
    std::uint64_t take() {
      const std::uint64_t t = r->tail.load(std::memory_order_relaxed);
      while (t == r->consumer_cached_head) {
        r->consumer_cached_head = r->head.load(std::memory_order_acquire);
        if (t == r->consumer_cached_head)
          cpu_relax();
      }
      const std::uint64_t v = r->slots[t % kRingLength];
      r->tail.store(t + 1, std::memory_order_release);
      return v;
    }
  };
  Producer producer() { return {ring_.get()}; }
  Consumer consumer() { return {ring_.get()}; }

 private:
  std::unique_ptr<Ring> ring_;
};

class MinimalTurnRing {
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> turn{0};  // 2·lap: free for lap's put; 2·lap + 1: full
    std::uint64_t value = 0;
  };
  struct Ring {
    alignas(64) std::uint64_t head = 0;  // the producer's alone
    alignas(64) std::uint64_t tail = 0;  // the consumer's alone
    std::array<Slot, kRingLength> slots;
  };

 public:
  static constexpr std::string_view kName = "minimal ring: a turn word per slot";
  explicit MinimalTurnRing(const char* /*name*/) : ring_(std::make_unique<Ring>()) {}
  struct Producer {
    Ring* r;
    void put(std::uint64_t v) {
      Slot& s = r->slots[r->head % kRingLength];
      const std::uint64_t lap = r->head / kRingLength;
      while (s.turn.load(std::memory_order_acquire) != 2 * lap)
        cpu_relax();
      s.value = v;
      s.turn.store(2 * lap + 1, std::memory_order_release);
      ++r->head;
    }
  };
  struct Consumer {
    Ring* r;
    std::uint64_t take() {
      Slot& s = r->slots[r->tail % kRingLength];
      const std::uint64_t lap = r->tail / kRingLength;
      while (s.turn.load(std::memory_order_acquire) != 2 * lap + 1)
        cpu_relax();
      const std::uint64_t v = s.value;
      s.turn.store(2 * lap + 2, std::memory_order_release);
      ++r->tail;
      return v;
    }
  };
  Producer producer() { return {ring_.get()}; }
  Consumer consumer() { return {ring_.get()}; }

 private:
  std::unique_ptr<Ring> ring_;
};

}  // namespace sluice::oq::bench
