// The RPC ("ping-pong") harness shared by the oqueue scenario driver and `sluice oq bench`.
//
// Two threads, each pinned to its own CPU, talk through two queues of ring length 2 (the setup of
// the OQueue paper's Figure 2): the client puts i on the request queue and waits for the reply; the
// server takes the request and puts it back on the reply queue. One round trip is one put and one
// take on each queue, so the figure reported is nanoseconds per round trip.
//
// Every queue is driven through an adapter with this shape (peers in peers.h, OQueue in
// oqueue_adapter.h):
//
//   struct Adapter {
//     static constexpr std::string_view kName;   // as printed and as named in JSON
//     static constexpr QueueKind kKind;          // floor, SPSC, MPMC or OQueue
//     explicit Adapter(const char* name);        // one queue of ring length kRingLength
//     Producer producer();                       // called on the thread that will put
//     Consumer consumer();                       // called on the thread that will take
//   };
//   Producer::put(std::uint64_t)   blocks (however the queue waits) until the value is in
//   Consumer::take() -> uint64_t   blocks until a value is out
//
// Values are never 0 (atomic_queue reserves 0 as its empty marker). Header-only so that the
// benchmark executables and the `sluice` program share it without a library of their own.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sluice::oq::bench {

// Ring length used by every ping-pong queue: RPC never has more than one message in flight.
inline constexpr unsigned kRingLength = 2;

enum class QueueKind {
  kFloor,   // not a queue: the cost of moving one cache line back and forth
  kSpsc,    // single-producer single-consumer peer
  kMpmc,    // multi-producer multi-consumer peer
  kOQueue,  // sluice::oq::OQueue (MPMC with observers)
};

inline const char* to_string(QueueKind kind) {
  switch (kind) {
    case QueueKind::kFloor: return "floor";
    case QueueKind::kSpsc: return "SPSC";
    case QueueKind::kMpmc: return "MPMC";
    case QueueKind::kOQueue: return "OQueue";
  }
  return "?";
}

// One iteration of a busy-wait loop. Every peer adapter spins with this, as atomic_queue does.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Pins the calling thread to `cpu`. Returns false (and leaves the thread unpinned) when the CPU
// does not exist or the call is refused, e.g. inside a cpuset that excludes it.
inline bool pin_current_thread(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE)
    return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu), &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

inline void name_current_thread(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

// Where the two ping-pong threads run. A CPU < 0 leaves that thread to the scheduler.
struct Pinning {
  int client_cpu = 0;
  int server_cpu = 1;
};

// Releases a known number of threads at once. Waiters yield rather than spin: the gate may hold
// more threads than there are CPUs (observer runs on a 2-CPU machine).
class StartGate {
 public:
  explicit StartGate(int expected) : expected_(expected) {}
  void arrive_and_wait() {
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    while (arrived_.load(std::memory_order_acquire) < expected_)
      std::this_thread::yield();
  }

 private:
  const int expected_;
  std::atomic<int> arrived_{0};
};

// What one timed ping-pong run measured.
struct RunSample {
  double ns_per_round_trip = 0;
  std::uint64_t iterations = 0;  // timed round trips (warm-up excluded)
  double seconds = 0;            // wall time of the timed part
  bool client_pinned = false;
  bool server_pinned = false;
  std::string error;  // non-empty when the run was invalid (a reply did not match its request)
  // Filled by observer runs: messages each observer saw / history reads it made.
  std::vector<std::uint64_t> observer_counts;
};

// Extra threads that run beside the client and server for one run (observers). `attach` is
// called once per extra thread on that thread, before the start gate opens; `run` is then called
// on the same thread and must return once `stop` is set or its own end condition is reached.
// Its return value is stored in RunSample::observer_counts.
struct ExtraThreads {
  int count = 0;
  std::function<std::function<std::uint64_t(const std::atomic<bool>& stop)>(int index)> attach;
};

// Runs `warmup` untimed and then `iterations` timed round trips between a client and a server
// thread over `request` and `reply`. The client checks that each reply carries its request.
template <class Queue>
RunSample run_pingpong(Queue& request, Queue& reply, std::uint64_t warmup, std::uint64_t iterations,
                       const Pinning& pinning, const ExtraThreads& extra = {}) {
  RunSample sample;
  sample.iterations = iterations;
  StartGate gate(2 + extra.count);
  std::atomic<bool> stop{false};
  const std::uint64_t total = warmup + iterations;
  std::chrono::steady_clock::time_point t0;
  std::chrono::steady_clock::time_point t1;
  std::uint64_t mismatches = 0;

  std::thread server([&] {
    name_current_thread("oqb-server");
    if (pinning.server_cpu >= 0)
      sample.server_pinned = pin_current_thread(pinning.server_cpu);
    auto in = request.consumer();
    auto out = reply.producer();
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < total; ++i)
      out.put(in.take());
  });

  std::vector<std::thread> extras;
  sample.observer_counts.assign(static_cast<std::size_t>(extra.count), 0);
  for (int e = 0; e < extra.count; ++e) {
    extras.emplace_back([&, e] {
      name_current_thread("oqb-observer");
      auto body = extra.attach(e);
      gate.arrive_and_wait();
      sample.observer_counts[static_cast<std::size_t>(e)] = body(stop);
    });
  }

  std::thread client([&] {
    name_current_thread("oqb-client");
    if (pinning.client_cpu >= 0)
      sample.client_pinned = pin_current_thread(pinning.client_cpu);
    auto out = request.producer();
    auto in = reply.consumer();
    gate.arrive_and_wait();
    std::uint64_t i = 1;
    for (; i <= warmup; ++i) {
      out.put(i);
      if (in.take() != i)
        ++mismatches;
    }
    t0 = std::chrono::steady_clock::now();
    for (; i <= total; ++i) {
      out.put(i);
      if (in.take() != i)
        ++mismatches;
    }
    t1 = std::chrono::steady_clock::now();
    stop.store(true, std::memory_order_release);
  });

  client.join();
  server.join();
  for (auto& t : extras)
    t.join();

  sample.seconds = std::chrono::duration<double>(t1 - t0).count();
  sample.ns_per_round_trip =
      iterations == 0 ? 0.0 : sample.seconds * 1e9 / static_cast<double>(iterations);
  if (mismatches != 0) {
    sample.error = std::to_string(mismatches) + " replies did not match their request";
  }
  return sample;
}

// Convenience: builds the two queues of `Adapter` and runs one ping-pong over them.
template <class Adapter>
RunSample run_adapter_pingpong(std::uint64_t warmup, std::uint64_t iterations,
                               const Pinning& pinning) {
  Adapter request("oqb.request");
  Adapter reply("oqb.reply");
  return run_pingpong(request, reply, warmup, iterations, pinning);
}

}  // namespace sluice::oq::bench
