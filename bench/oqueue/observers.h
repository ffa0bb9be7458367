// Observer scaling (the paper's Figure 2): RPC ping-pong throughput over OQueue while strong or
// weak observers watch the request queue.
//
//   strong  k strong observer threads on the request queue, each of which must see every request
//           exactly once (the run checks the counts). With a ring of length 2 the client cannot
//           put request i+2 before every observer has seen request i, so observers are on the
//           critical path. On a machine with fewer CPUs than 2 + k threads the observers share
//           CPUs with the pinned client and server, so these runs use the yield or block policy
//           for every thread (busy-waiting threads would spin away the time slices the thread
//           they wait for needs).
//   weak    k weak observer threads, each waking every 10 ms to read the last n values (n = 2
//           or 64, with a ring of the same length). Client and server busy-wait (or use the
//           policy asked for); the observers sleep between reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "oqueue_adapter.h"
#include "pingpong.h"
#include "report.h"

namespace sluice::oq::bench {

struct ObserverOptions {
  int repetitions = 5;
  double target_ms = 150;       // timed length of each strong run
  double weak_target_ms = 300;  // of each weak run (spans ~30 observer periods)
  std::vector<int> counts = {0, 1, 2, 4, 8};
  std::vector<WaitPolicy> strong_policies = {WaitPolicy::kYield, WaitPolicy::kBlock};
  std::vector<WaitPolicy> weak_policies = {WaitPolicy::kSpin};
  std::vector<std::size_t> histories = {2, 64};
  int weak_period_ms = 10;
  Pinning pinning;
};

struct SeriesPoint {
  std::string series;  // "strong/yield", "weak/spin/history:64"
  int observers = 0;
  std::uint64_t iterations = 0;
  std::vector<double> ns;  // ns per round trip, one per repetition
  Summary summary;
  std::vector<double> observer_work;  // per repetition: mean messages seen / reads per observer
  std::string error;
};

struct ObserverReport {
  ObserverOptions options;
  std::vector<SeriesPoint> points;
  CpuBusy busy;
  double other_share_idle = 0;
  MachineInfo machine;
};

// One strong-observer run: `k` observers on the request queue, every thread waiting with P.
template <WaitPolicy P>
RunSample run_strong_observers(int k, std::uint64_t warmup, std::uint64_t iterations,
                               const Pinning& pinning) {
  OQueueAdapter<P> request("oqb.request");
  OQueueAdapter<P> reply("oqb.reply");
  const std::uint64_t last = warmup + iterations;
  ExtraThreads extra;
  extra.count = k;
  extra.attach = [&request, last](int) {
    auto observer =
        std::make_shared<typename OQueueAdapter<P>::StrongObserver>(request.strong_observer());
    return std::function<std::uint64_t(const std::atomic<bool>&)>(
        [observer, last](const std::atomic<bool>&) {
          std::uint64_t seen = 0;
          for (;;) {
            const std::uint64_t v = observer->observe();
            ++seen;
            if (v >= last)
              break;
          }
          return seen;
        });
  };
  RunSample s = run_pingpong(request, reply, warmup, iterations, pinning, extra);
  for (std::uint64_t seen : s.observer_counts) {
    if (seen != last && s.error.empty()) {
      s.error = "a strong observer saw " + std::to_string(seen) + " of " + std::to_string(last) +
                " requests";
    }
  }
  return s;
}

// One weak-observer run: `k` observers of the request queue (ring length `history`), each reading
// the last `history` values every `period_ms`. Returns the reads per observer in observer_counts.
template <WaitPolicy P>
RunSample run_weak_observers(int k, std::size_t history, int period_ms, std::uint64_t warmup,
                             std::uint64_t iterations, const Pinning& pinning) {
  OQueueAdapter<P> request("oqb.request", history);
  OQueueAdapter<P> reply("oqb.reply", history);
  ExtraThreads extra;
  extra.count = k;
  extra.attach = [&request, history, period_ms](int) {
    auto observer =
        std::make_shared<typename OQueueAdapter<P>::WeakObserver>(request.weak_observer(history));
    return std::function<std::uint64_t(const std::atomic<bool>&)>(
        [observer, history, period_ms](const std::atomic<bool>& stop) {
          std::uint64_t reads = 0;
          std::uint64_t values = 0;
          auto next = std::chrono::steady_clock::now();
          while (!stop.load(std::memory_order_acquire)) {
            next += std::chrono::milliseconds(period_ms);
            std::this_thread::sleep_until(next);
            values += observer->read(history);
            ++reads;
          }
          static_cast<void>(values);  // the reads themselves are the work being measured
          return reads;
        });
  };
  return run_pingpong(request, reply, warmup, iterations, pinning, extra);
}

namespace detail {

template <WaitPolicy P>
std::function<RunSample(int, std::uint64_t, std::uint64_t, const Pinning&)> strong_runner() {
  return [](int k, std::uint64_t w, std::uint64_t n, const Pinning& p) {
    return run_strong_observers<P>(k, w, n, p);
  };
}

template <WaitPolicy P>
std::function<RunSample(int, std::uint64_t, std::uint64_t, const Pinning&)> weak_runner(
    std::size_t history, int period_ms) {
  return [history, period_ms](int k, std::uint64_t w, std::uint64_t n, const Pinning& p) {
    return run_weak_observers<P>(k, history, period_ms, w, n, p);
  };
}

template <template <WaitPolicy> class F, class... Args>
auto by_policy(WaitPolicy p, Args... args) {
  switch (p) {
    case WaitPolicy::kSpin: return F<WaitPolicy::kSpin>::make(args...);
    case WaitPolicy::kYield: return F<WaitPolicy::kYield>::make(args...);
    case WaitPolicy::kBlock: break;
  }
  return F<WaitPolicy::kBlock>::make(args...);
}

template <WaitPolicy P>
struct StrongFactory {
  static auto make() { return strong_runner<P>(); }
};
template <WaitPolicy P>
struct WeakFactory {
  static auto make(std::size_t history, int period_ms) {
    return weak_runner<P>(history, period_ms);
  }
};

}  // namespace detail

// Runs every (series, observer count) point, interleaved over the repetitions.
inline ObserverReport run_observer_suite(const ObserverOptions& options, bool strong, bool weak,
                                         std::FILE* progress) {
  struct Case {
    SeriesPoint point;
    double target_ms;
    std::function<RunSample(int, std::uint64_t, std::uint64_t, const Pinning&)> run;
  };
  std::vector<Case> cases;
  if (strong) {
    for (WaitPolicy p : options.strong_policies) {
      for (int k : options.counts) {
        Case c{{}, options.target_ms, detail::by_policy<detail::StrongFactory>(p)};
        c.point.series = std::string("strong/") + policy_name(p);
        c.point.observers = k;
        cases.push_back(std::move(c));
      }
    }
  }
  if (weak) {
    for (WaitPolicy p : options.weak_policies) {
      for (std::size_t h : options.histories) {
        for (int k : options.counts) {
          Case c{{},
                 options.weak_target_ms,
                 detail::by_policy<detail::WeakFactory>(p, h, options.weak_period_ms)};
          c.point.series = std::string("weak/") + policy_name(p) + "/history:" + std::to_string(h);
          c.point.observers = k;
          cases.push_back(std::move(c));
        }
      }
    }
  }

  ObserverReport report;
  report.options = options;
  report.machine = machine_info();
  report.other_share_idle = idle_probe_other_share(200);
  const CpuSnapshot before = take_cpu_snapshot();
  for (Case& c : cases) {  // calibration, not reported
    const RunSample probe = c.run(c.point.observers, 100, 1000, options.pinning);
    const double ns = probe.ns_per_round_trip > 0 ? probe.ns_per_round_trip : 1e4;
    c.point.iterations =
        static_cast<std::uint64_t>(std::clamp(c.target_ms * 1e6 / ns, 1000.0, 2e8));
  }
  for (int rep = 0; rep < options.repetitions; ++rep) {
    for (Case& c : cases) {
      const std::uint64_t warmup = std::max<std::uint64_t>(c.point.iterations / 50, 100);
      const RunSample s = c.run(c.point.observers, warmup, c.point.iterations, options.pinning);
      c.point.ns.push_back(s.ns_per_round_trip);
      double work = 0;
      for (std::uint64_t w : s.observer_counts)
        work += static_cast<double>(w);
      c.point.observer_work.push_back(
          s.observer_counts.empty() ? 0 : work / static_cast<double>(s.observer_counts.size()));
      if (!s.error.empty() && c.point.error.empty())
        c.point.error = s.error;
      if (progress != nullptr) {
        std::fprintf(progress, "  rep %d/%d  %-24s observers %d  %10.1f ns/round trip%s\n", rep + 1,
                     options.repetitions, c.point.series.c_str(), c.point.observers,
                     s.ns_per_round_trip, s.error.empty() ? "" : "  INVALID");
        std::fflush(progress);
      }
    }
  }
  report.busy = cpu_busy_between(before, take_cpu_snapshot());
  for (Case& c : cases) {
    c.point.summary = summarize(c.point.ns);
    report.points.push_back(std::move(c.point));
  }
  return report;
}

inline void print_observer_report(const ObserverReport& r, std::FILE* out) {
  std::fprintf(out,
               "RPC throughput with observers on the request queue; client cpu %d, server cpu %d, "
               "observers unpinned; %d interleaved repetitions\n",
               r.options.pinning.client_cpu, r.options.pinning.server_cpu, r.options.repetitions);
  std::fprintf(out,
               "other work on the machine: %.1f%% while idle before, %.1f%% during (loadavg %s -> "
               "%s)\n",
               r.other_share_idle * 100, r.busy.other_share * 100, r.busy.loadavg_before.c_str(),
               r.busy.loadavg_after.c_str());
  std::fprintf(out, "\n%-26s %9s %12s %10s %10s %10s %9s %12s\n", "series", "observers",
               "round trips/s", "median ns", "min", "max", "vs 0 obs", "obs work");
  const SeriesPoint* zero = nullptr;
  for (const SeriesPoint& p : r.points) {
    if (p.observers == 0)
      zero = &p;
    const bool same_series = zero != nullptr && zero->series == p.series;
    char slowdown[32] = "-";
    if (same_series)
      std::snprintf(slowdown, sizeof slowdown, "%.2fx", paired_ratio(p.ns, zero->ns));
    std::fprintf(out, "%-26s %9d %12.0f %10.1f %10.1f %10.1f %9s %12.0f%s\n", p.series.c_str(),
                 p.observers, p.summary.median > 0 ? 1e9 / p.summary.median : 0, p.summary.median,
                 p.summary.min, p.summary.max, slowdown, median_of(p.observer_work),
                 p.error.empty() ? "" : "  INVALID");
  }
  std::fprintf(out,
               "\n'vs 0 obs' is the median per-repetition ratio of round-trip time to the same "
               "series without observers.\n'obs work' is the median per observer of messages seen "
               "(strong) or history reads made (weak).\n");
  // Goal: 8 weak observers cost < 5%.
  for (const SeriesPoint& p : r.points) {
    if (p.series.rfind("weak/", 0) != 0 || p.observers != 8)
      continue;
    for (const SeriesPoint& z : r.points) {
      if (z.series == p.series && z.observers == 0) {
        const double ratio = paired_ratio(p.ns, z.ns);
        std::fprintf(out, "goal: 8 weak observers cost < 5%% (%s): %+.1f%% -> %s\n",
                     p.series.c_str(), (ratio - 1) * 100, ratio < 1.05 ? "met" : "MISSED");
      }
    }
  }
}

inline void append_observer_json(const ObserverReport& r, std::vector<JsonRow>& rows) {
  for (const SeriesPoint& p : r.points) {
    for (std::size_t i = 0; i < p.ns.size(); ++i) {
      JsonRow row;
      row.run_name = p.series + "/observers:" + std::to_string(p.observers);
      row.repetition_index = static_cast<int>(i);
      row.repetitions = static_cast<int>(p.ns.size());
      row.iterations = p.iterations;
      row.real_time_ns = p.ns[i];
      row.cpu_time_ns = p.ns[i];
      row.counters.emplace_back("items_per_second", p.ns[i] > 0 ? 1e9 / p.ns[i] : 0);
      row.counters.emplace_back("observer_work", p.observer_work[i]);
      rows.push_back(std::move(row));
    }
  }
}

}  // namespace sluice::oq::bench
