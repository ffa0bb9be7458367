// Property test: OQueue<T> against a sequential model, for random sequences of attach, detach,
// try_put, try_take, try_strong_observe and history on one thread.
//
// The model keeps the ring as tickets: a head, the consumer group's tail, each strong observer's
// position and the values of the last `capacity` tickets; the history as the list of values
// stored for weak observers, with the ring size and the oldest ticket still readable after the
// ring was switched (growing or shrinking carries over the newest min(old, new) messages).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "sluice/common/knobs.h"
#include "sluice/oqueue/oqueue.h"

namespace sluice::oq {
namespace {

bool residue(const int& v, uint64_t arg) {
  return static_cast<uint64_t>(v) % 3 == arg;
}

struct Model {
  size_t cap = 0;
  uint64_t head = 0;
  std::map<uint64_t, int> ring;  // ticket → value, last `cap` tickets
  int consumers = 0;
  uint64_t tail = 0;
  struct Strong {
    uint64_t pos;
    int filter;  // -1: none, else the residue it wants
  };
  std::vector<Strong> strong;
  struct Weak {
    size_t n;
    int filter;
  };
  std::vector<Weak> weak;
  std::vector<int> history;  // history ticket → value
  size_t hist_size = 0;      // current history ring size (0: none yet)
  uint64_t hist_valid_from = 0;

  static bool wants(int filter, int v) { return filter < 0 || v % 3 == filter; }

  void select_history_ring() {
    size_t largest = 0;
    for (const Weak& w : weak)
      largest = std::max(largest, w.n);
    if (largest == 0)
      return;
    const size_t size = std::bit_ceil(std::max<size_t>(largest, 2));
    if (size == hist_size)
      return;
    const uint64_t h = history.size();
    if (hist_size != 0) {
      const uint64_t carried = std::min(size, hist_size);
      hist_valid_from = std::max(hist_valid_from, h > carried ? h - carried : 0);
    } else {
      hist_valid_from = h;
    }
    hist_size = size;
  }

  // Returns what try_put returns.
  bool put(int v) {
    bool to_ring = consumers > 0;
    for (const Strong& s : strong)
      to_ring = to_ring || wants(s.filter, v);
    bool to_history = false;
    for (const Weak& w : weak)
      to_history = to_history || wants(w.filter, v);
    if (to_ring) {
      uint64_t gate = ~uint64_t{0};
      if (consumers > 0)
        gate = tail;
      for (const Strong& s : strong)
        gate = std::min(gate, s.pos);
      if (gate != ~uint64_t{0} && head >= gate + cap)
        return false;
      ring[head] = v;
      ring.erase(head >= cap ? head - cap : ~uint64_t{0});
      ++head;
    }
    if (to_history)
      history.push_back(v);
    return true;
  }

  std::optional<int> take() {
    if (tail == head)
      return std::nullopt;
    return ring.at(tail++);
  }

  std::optional<int> observe(size_t i) {
    Strong& s = strong[i];
    while (s.pos < head) {
      const int v = ring.at(s.pos++);
      if (wants(s.filter, v))
        return v;
    }
    return std::nullopt;
  }

  std::vector<int> read_history(size_t i, size_t n) const {
    const Weak& w = weak[i];
    const size_t want = std::min(n, w.n);
    const uint64_t h = history.size();
    const uint64_t from = std::max(hist_valid_from, h > hist_size ? h - hist_size : 0);
    std::vector<int> out;
    for (uint64_t t = h; t > from && out.size() < want;) {
      --t;
      if (wants(w.filter, history[t]))
        out.push_back(history[t]);
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
};

// Runs one random sequence against the model on a queue built with `options`.
void check_against_model(QueueOptions options) {
  const size_t cap = size_t{1} << *rc::gen::inRange(1, 4);
  const auto ops = *rc::gen::container<std::vector<std::tuple<int, int, int>>>(
      rc::gen::tuple(rc::gen::inRange(0, 16), rc::gen::inRange(0, 8), rc::gen::inRange(-1, 3)));

  OQueue<int> q("property", cap, options);
  Model m;
  m.cap = q.capacity();
  RC_ASSERT(m.cap == cap);
  auto producer = q.attach_producer(WaitPolicy::kSpin);
  std::vector<OQueue<int>::Consumer> consumers;
  std::vector<OQueue<int>::StrongObserver> strong;
  std::vector<OQueue<int>::WeakObserver> weak;
  int next_value = 0;

  for (const auto& [kind, a, b] : ops) {
    const size_t ia = static_cast<size_t>(a);
    const int filter = b;
    switch (kind) {
      case 0:
      case 1:
      case 2:
      case 3: {  // try_put
        const int v = next_value++;
        RC_ASSERT(producer.try_put(v) == m.put(v));
        break;
      }
      case 4:
      case 5:  // try_take
        if (!consumers.empty()) {
          RC_ASSERT(consumers[ia % consumers.size()].try_take() == m.take());
        }
        break;
      case 6:
      case 7:  // try_strong_observe
        if (!strong.empty()) {
          const size_t i = ia % strong.size();
          RC_ASSERT(strong[i].try_strong_observe() == m.observe(i));
        }
        break;
      case 8: {  // history
        if (!weak.empty()) {
          const size_t i = ia % weak.size();
          const size_t n = static_cast<size_t>(b + 2) * 3;
          RC_ASSERT(weak[i].history(n) == m.read_history(i, n));
          RC_ASSERT(q.history_capacity() == m.hist_size);
        }
        break;
      }
      case 9:  // attach consumer
        if (consumers.size() < (options.single_consumer ? 1u : 3u)) {
          consumers.push_back(q.attach_consumer(WaitPolicy::kSpin));
          if (m.consumers++ == 0)
            m.tail = m.head;
        }
        break;
      case 10:  // detach consumer
        if (!consumers.empty()) {
          consumers.erase(consumers.begin() + static_cast<std::ptrdiff_t>(ia % consumers.size()));
          --m.consumers;
        }
        break;
      case 11:  // attach strong observer
        if (strong.size() < 4) {
          strong.push_back(q.attach_strong_observer(WaitPolicy::kSpin,
                                                    filter < 0 ? nullptr : &residue,
                                                    static_cast<uint64_t>(std::max(filter, 0))));
          m.strong.push_back({m.head, filter});
        }
        break;
      case 12:  // detach strong observer
        if (!strong.empty()) {
          const auto i = static_cast<std::ptrdiff_t>(ia % strong.size());
          strong.erase(strong.begin() + i);
          m.strong.erase(m.strong.begin() + i);
        }
        break;
      case 13:
      case 14: {  // attach weak observer
        if (weak.size() < 4) {
          const size_t n = ia * 5 + 1;
          weak.push_back(q.attach_weak_observer(n, filter < 0 ? nullptr : &residue,
                                                static_cast<uint64_t>(std::max(filter, 0))));
          m.weak.push_back({n, filter});
          m.select_history_ring();
        }
        break;
      }
      default:  // detach weak observer
        if (!weak.empty()) {
          const auto i = static_cast<std::ptrdiff_t>(ia % weak.size());
          weak.erase(weak.begin() + i);
          m.weak.erase(m.weak.begin() + i);
          m.select_history_ring();
        }
        break;
    }
  }
  QueueStats st = q.stats();
  RC_ASSERT(st.consumers == static_cast<uint64_t>(m.consumers));
  RC_ASSERT(st.strong_observers == m.strong.size());
  RC_ASSERT(st.weak_observers == m.weak.size());
}

RC_GTEST_PROP(OQueuePropertyTest, MatchesASequentialModel, ()) {
  check_against_model({});
}

RC_GTEST_PROP(OQueuePropertyTest, SingleProducerMatchesTheModel, ()) {
  check_against_model({.single_producer = true});
}

RC_GTEST_PROP(OQueuePropertyTest, SingleConsumerMatchesTheModel, ()) {
  check_against_model({.single_consumer = true});
}

RC_GTEST_PROP(OQueuePropertyTest, SingleProducerSingleConsumerMatchesTheModel, ()) {
  check_against_model({.single_producer = true, .single_consumer = true});
}

// The locked-RMW fallback a kernel without membarrier(2) gets.
RC_GTEST_PROP(OQueuePropertyTest, SingleModesWithoutMembarrierMatchTheModel, ()) {
  struct Fallback {
    Fallback() { RC_ASSERT(KnobRegistry::global().set("oqueue.membarrier", "false").is_ok()); }
    ~Fallback() { (void)KnobRegistry::global().set("oqueue.membarrier", "true"); }
  } fallback;
  const bool sp = *rc::gen::arbitrary<bool>();
  check_against_model(
      {.single_producer = sp, .single_consumer = !sp || *rc::gen::arbitrary<bool>()});
}

}  // namespace
}  // namespace sluice::oq
