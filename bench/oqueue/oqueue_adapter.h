// The OQueue side of the ping-pong harness: one OQueue<uint64_t> per adapter, every handle
// attached with the wait policy P. The adapter adds nothing to the call path: put/take forward
// to the handle.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pingpong.h"
#include "sluice/oqueue/oqueue.h"

namespace sluice::oq::bench {

inline const char* policy_name(WaitPolicy p) {
  switch (p) {
    case WaitPolicy::kSpin: return "spin";
    case WaitPolicy::kYield: return "yield";
    case WaitPolicy::kBlock: return "block";
  }
  return "?";
}

// Accepts spin (or busy), yield and block.
inline bool parse_policy(const std::string& word, WaitPolicy& out) {
  if (word == "spin" || word == "busy") {
    out = WaitPolicy::kSpin;
  } else if (word == "yield") {
    out = WaitPolicy::kYield;
  } else if (word == "block") {
    out = WaitPolicy::kBlock;
  } else {
    return false;
  }
  return true;
}

// Spsc: the queue is built single-producer and single-consumer (QueueOptions), the mode to
// compare with the SPSC peers; observers still attach as usual.
template <WaitPolicy P, bool Spsc = false>
class OQueueAdapter {
  using Queue = OQueue<std::uint64_t>;

 public:
  static constexpr std::string_view kName =
      Spsc ? (P == WaitPolicy::kSpin ? "sluice OQueue SPSC mode (spin)"
                                     : "sluice OQueue SPSC mode (block)")
           : (P == WaitPolicy::kSpin    ? "sluice OQueue (spin)"
              : P == WaitPolicy::kYield ? "sluice OQueue (yield)"
                                        : "sluice OQueue (block)");
  static constexpr QueueKind kKind = QueueKind::kOQueue;

  explicit OQueueAdapter(const char* name, std::size_t capacity = kRingLength)
      : q_(name, capacity, QueueOptions{.single_producer = Spsc, .single_consumer = Spsc}) {}

  struct Producer {
    Queue::Producer h;
    [[gnu::always_inline]] void put(std::uint64_t v) { h.put(v); }
  };
  struct Consumer {
    Queue::Consumer h;
    [[gnu::always_inline]] std::uint64_t take() { return h.take(); }
  };
  struct StrongObserver {
    Queue::StrongObserver h;
    std::uint64_t observe() { return h.strong_observe(); }
  };
  struct WeakObserver {
    Queue::WeakObserver h;
    std::vector<std::uint64_t> buffer;
    // Reads the last ≤ n values into the buffer (no allocation); returns how many.
    std::size_t read(std::size_t n) {
      if (buffer.size() < n)
        buffer.resize(n);
      return h.history(std::span<std::uint64_t>(buffer.data(), n));
    }
  };

  Producer producer() { return {q_.attach_producer(P)}; }
  Consumer consumer() { return {q_.attach_consumer(P)}; }
  StrongObserver strong_observer() { return {q_.attach_strong_observer(P)}; }
  WeakObserver weak_observer(std::size_t history) { return {q_.attach_weak_observer(history), {}}; }
  Queue& queue() { return q_; }

 private:
  Queue q_;
};

}  // namespace sluice::oq::bench
