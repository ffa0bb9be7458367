// Ping-pong adapters for the peer queues OQueue is compared with, plus the "floor" (one atomic
// word per direction: what moving a cache line between the two CPUs costs with no queue at all).
//
// Each peer is used the way its authors benchmark it: atomic_queue's AtomicQueue through
// try_push/try_pop in a retry loop and OptimistAtomicQueue through its blocking push/pop (as in
// atomic_queue's own benchmarks), moodycamel ConcurrentQueue with producer/consumer tokens. Every
// peer only busy-waits; the adapters spin with cpu_relax() between attempts.
#pragma once

#include <atomic_queue/atomic_queue.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
// GCC 12 reports -Wnull-dereference inside ConcurrentQueue's inlined token code (a pointer the
// queue never leaves null on these paths); the pragma covers that header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <concurrentqueue/concurrentqueue.h>
#pragma GCC diagnostic pop
#include <readerwriterqueue/readerwriterqueue.h>

#include <xenium/vyukov_bounded_queue.hpp>

#include "pingpong.h"

namespace sluice::oq::bench {

// Adapter for any queue with bool try_push(T) / bool try_pop(T&): spins until the call succeeds.
template <class Q>
struct TryLoopEnds {
  struct Producer {
    Q* q;
    void put(std::uint64_t v) {
      while (!q->try_push(v))
        cpu_relax();
    }
  };
  struct Consumer {
    Q* q;
    std::uint64_t take() {
      std::uint64_t v = 0;
      while (!q->try_pop(v))
        cpu_relax();
      return v;
    }
  };
};

// One cache-line-aligned atomic word per direction, written only by its producer: the consumer
// waits until the word changes. Not a queue (no back-pressure, valid only while requests and
// replies strictly alternate, as in the ping-pong, where values only grow); it is the least a
// round trip can cost on this machine, two cache-line transfers, so the other rows read as
// "floor + what the queue adds".
class FloorAdapter {
 public:
  static constexpr std::string_view kName = "floor (one atomic word)";
  static constexpr QueueKind kKind = QueueKind::kFloor;
  explicit FloorAdapter(const char* /*name*/) {}

  struct Producer {
    std::atomic<std::uint64_t>* word;
    void put(std::uint64_t v) { word->store(v, std::memory_order_release); }
  };
  struct Consumer {
    std::atomic<std::uint64_t>* word;
    std::uint64_t last = 0;
    std::uint64_t take() {
      std::uint64_t v;
      while ((v = word->load(std::memory_order_acquire)) == last)
        cpu_relax();
      last = v;
      return v;
    }
  };
  Producer producer() { return {&word_}; }
  Consumer consumer() { return {&word_, word_.load(std::memory_order_relaxed)}; }

 private:
  alignas(64) std::atomic<std::uint64_t> word_{0};  // alone on its cache line
};

// atomic_queue::AtomicQueue (MPMC) through try_push/try_pop, as atomic_queue's benchmarks name
// "AtomicQueue".
class AtomicQueueAdapter {
  using Q = atomic_queue::AtomicQueue<std::uint64_t, kRingLength>;

 public:
  static constexpr std::string_view kName = "atomic_queue AtomicQueue";
  static constexpr QueueKind kKind = QueueKind::kMpmc;
  explicit AtomicQueueAdapter(const char* /*name*/) : q_(std::make_unique<Q>()) {}
  using Producer = TryLoopEnds<Q>::Producer;
  using Consumer = TryLoopEnds<Q>::Consumer;
  Producer producer() { return {q_.get()}; }
  Consumer consumer() { return {q_.get()}; }

 private:
  std::unique_ptr<Q> q_;
};

// atomic_queue::AtomicQueue through its blocking push/pop: atomic_queue's "OptimistAtomicQueue".
class OptimistAtomicQueueAdapter {
  using Q = atomic_queue::AtomicQueue<std::uint64_t, kRingLength>;

 public:
  static constexpr std::string_view kName = "atomic_queue OptimistAtomicQueue";
  static constexpr QueueKind kKind = QueueKind::kMpmc;
  explicit OptimistAtomicQueueAdapter(const char* /*name*/) : q_(std::make_unique<Q>()) {}
  struct Producer {
    Q* q;
    void put(std::uint64_t v) { q->push(v); }
  };
  struct Consumer {
    Q* q;
    std::uint64_t take() { return q->pop(); }
  };
  Producer producer() { return {q_.get()}; }
  Consumer consumer() { return {q_.get()}; }

 private:
  std::unique_ptr<Q> q_;
};

// xenium::vyukov_bounded_queue (MPMC, Dmitry Vyukov's bounded queue).
class XeniumVyukovAdapter {
  using Q = xenium::vyukov_bounded_queue<std::uint64_t>;

 public:
  static constexpr std::string_view kName = "xenium vyukov_bounded_queue";
  static constexpr QueueKind kKind = QueueKind::kMpmc;
  explicit XeniumVyukovAdapter(const char* /*name*/) : q_(std::make_unique<Q>(kRingLength)) {}
  using Producer = TryLoopEnds<Q>::Producer;
  using Consumer = TryLoopEnds<Q>::Consumer;
  Producer producer() { return {q_.get()}; }
  Consumer consumer() { return {q_.get()}; }

 private:
  std::unique_ptr<Q> q_;
};

// moodycamel::ReaderWriterQueue (SPSC).
class ReaderWriterQueueAdapter {
  using Q = moodycamel::ReaderWriterQueue<std::uint64_t>;

 public:
  static constexpr std::string_view kName = "moodycamel ReaderWriterQueue";
  static constexpr QueueKind kKind = QueueKind::kSpsc;
  explicit ReaderWriterQueueAdapter(const char* /*name*/) : q_(std::make_unique<Q>(kRingLength)) {}
  struct Producer {
    Q* q;
    void put(std::uint64_t v) {
      while (!q->try_enqueue(v))
        cpu_relax();
    }
  };
  struct Consumer {
    Q* q;
    std::uint64_t take() {
      std::uint64_t v = 0;
      while (!q->try_dequeue(v))
        cpu_relax();
      return v;
    }
  };
  Producer producer() { return {q_.get()}; }
  Consumer consumer() { return {q_.get()}; }

 private:
  std::unique_ptr<Q> q_;
};

// moodycamel::ConcurrentQueue (MPMC) with a producer token and a consumer token per thread.
class ConcurrentQueueAdapter {
  using Q = moodycamel::ConcurrentQueue<std::uint64_t>;

 public:
  static constexpr std::string_view kName = "moodycamel ConcurrentQueue";
  static constexpr QueueKind kKind = QueueKind::kMpmc;
  explicit ConcurrentQueueAdapter(const char* /*name*/) : q_(std::make_unique<Q>(kRingLength)) {}
  struct Producer {
    Q* q;
    moodycamel::ProducerToken token;
    void put(std::uint64_t v) {
      while (!q->try_enqueue(token, v))
        cpu_relax();
    }
  };
  struct Consumer {
    Q* q;
    moodycamel::ConsumerToken token;
    std::uint64_t take() {
      std::uint64_t v = 0;
      while (!q->try_dequeue(token, v))
        cpu_relax();
      return v;
    }
  };
  Producer producer() { return {q_.get(), moodycamel::ProducerToken(*q_)}; }
  Consumer consumer() { return {q_.get(), moodycamel::ConsumerToken(*q_)}; }

 private:
  std::unique_ptr<Q> q_;
};

// boost::lockfree::spsc_queue (SPSC), compile-time capacity.
class BoostSpscAdapter {
  using Q = boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<kRingLength>>;

 public:
  static constexpr std::string_view kName = "boost::lockfree spsc_queue";
  static constexpr QueueKind kKind = QueueKind::kSpsc;
  explicit BoostSpscAdapter(const char* /*name*/) : q_(std::make_unique<Q>()) {}
  struct Producer {
    Q* q;
    void put(std::uint64_t v) {
      while (!q->push(v))
        cpu_relax();
    }
  };
  struct Consumer {
    Q* q;
    std::uint64_t take() {
      std::uint64_t v = 0;
      while (!q->pop(v))
        cpu_relax();
      return v;
    }
  };
  Producer producer() { return {q_.get()}; }
  Consumer consumer() { return {q_.get()}; }

 private:
  std::unique_ptr<Q> q_;
};

// boost::lockfree::queue (MPMC, Michael-Scott with a fixed node pool).
class BoostQueueAdapter {
  using Q = boost::lockfree::queue<std::uint64_t, boost::lockfree::capacity<kRingLength>>;

 public:
  static constexpr std::string_view kName = "boost::lockfree queue";
  static constexpr QueueKind kKind = QueueKind::kMpmc;
  explicit BoostQueueAdapter(const char* /*name*/) : q_(std::make_unique<Q>()) {}
  struct Producer {
    Q* q;
    void put(std::uint64_t v) {
      while (!q->bounded_push(v))
        cpu_relax();
    }
  };
  struct Consumer {
    Q* q;
    std::uint64_t take() {
      std::uint64_t v = 0;
      while (!q->pop(v))
        cpu_relax();
      return v;
    }
  };
  Producer producer() { return {q_.get()}; }
  Consumer consumer() { return {q_.get()}; }

 private:
  std::unique_ptr<Q> q_;
};

}  // namespace sluice::oq::bench
