// The ping-pong scenario: every selected queue, interleaved over several repetitions, with
// medians, spread and OQueue/peer ratios. Shared by bench/oqueue/oqueue_pingpong.cc and
// `sluice oq bench`.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "oqueue_adapter.h"
#include "peers.h"
#include "pingpong.h"
#include "report.h"

namespace sluice::oq::bench {

// One queue the ping-pong scenario can run.
struct QueueEntry {
  std::string id;    // short name used by --queues and in JSON run names
  std::string name;  // printed name
  QueueKind kind = QueueKind::kMpmc;
  std::function<RunSample(std::uint64_t warmup, std::uint64_t iterations, const Pinning&)> run;
};

template <class Adapter>
QueueEntry make_entry(std::string id) {
  return {std::move(id), std::string(Adapter::kName), Adapter::kKind,
          [](std::uint64_t warmup, std::uint64_t iterations, const Pinning& pinning) {
            return run_adapter_pingpong<Adapter>(warmup, iterations, pinning);
          }};
}

// Every queue, in the order the scenario runs them within one repetition.
inline std::vector<QueueEntry> all_pingpong_entries() {
  return {
      make_entry<FloorAdapter>("floor"),
      make_entry<OQueueAdapter<WaitPolicy::kSpin>>("oq-spin"),
      make_entry<OQueueAdapter<WaitPolicy::kYield>>("oq-yield"),
      make_entry<OQueueAdapter<WaitPolicy::kBlock>>("oq-block"),
      make_entry<OQueueAdapter<WaitPolicy::kSpin, true>>("oq-spsc-spin"),
      make_entry<OQueueAdapter<WaitPolicy::kBlock, true>>("oq-spsc-block"),
      make_entry<AtomicQueueAdapter>("aq"),
      make_entry<OptimistAtomicQueueAdapter>("optimist-aq"),
      make_entry<XeniumVyukovAdapter>("xenium-vyukov"),
      make_entry<ReaderWriterQueueAdapter>("moodycamel-rwq"),
      make_entry<ConcurrentQueueAdapter>("moodycamel-cq"),
      make_entry<BoostSpscAdapter>("boost-spsc"),
      make_entry<BoostQueueAdapter>("boost-queue"),
  };
}

struct PingPongOptions {
  int repetitions = 7;
  double target_ms = 150;           // timed length of each run when iterations == 0
  std::uint64_t iterations = 0;     // fixed round trips per run; 0 calibrates to target_ms
  std::vector<std::string> queues;  // entry ids; empty runs them all
  Pinning pinning;
};

struct CaseResult {
  QueueEntry entry;
  std::uint64_t iterations = 0;  // round trips per timed run
  std::vector<double> ns;        // ns per round trip, one per repetition
  Summary summary;
  bool pinned = true;  // both threads were pinned in every run
  std::string error;   // first invalid run, if any
};

struct PingPongReport {
  PingPongOptions options;
  std::vector<CaseResult> cases;
  CpuBusy busy;                 // over the whole scenario
  double other_share_idle = 0;  // other work while we slept, measured before starting
  MachineInfo machine;
  std::string error;  // non-empty: nothing was run (e.g. unknown queue id)
};

// Splits "a,b,c" into its non-empty parts.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start)
      out.push_back(s.substr(start, end - start));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return out;
}

inline std::uint64_t calibrated_iterations(double ns_per_round_trip, double target_ms) {
  const double n = ns_per_round_trip > 0 ? target_ms * 1e6 / ns_per_round_trip : 1e4;
  return static_cast<std::uint64_t>(std::clamp(n, 1000.0, 2e8));
}

// Runs the scenario. `progress` (may be null) gets one line per run.
inline PingPongReport run_pingpong_suite(const PingPongOptions& options, std::FILE* progress) {
  PingPongReport report;
  report.options = options;
  report.machine = machine_info();
  std::vector<QueueEntry> all = all_pingpong_entries();
  if (options.queues.empty()) {
    for (auto& e : all)
      report.cases.push_back({e, 0, {}, {}, true, {}});
  } else {
    for (const std::string& id : options.queues) {
      auto it =
          std::find_if(all.begin(), all.end(), [&](const QueueEntry& e) { return e.id == id; });
      if (it == all.end()) {
        std::string known;
        for (const auto& e : all)
          known += (known.empty() ? "" : ", ") + e.id;
        report.error = "unknown queue '" + id + "'; known: " + known;
        return report;
      }
      report.cases.push_back({*it, 0, {}, {}, true, {}});
    }
  }
  if (options.repetitions < 1) {
    report.error = "repetitions must be at least 1";
    return report;
  }

  report.other_share_idle = idle_probe_other_share(200);
  const CpuSnapshot before = take_cpu_snapshot();

  // Round 0: warm-up and calibration, not reported. Two interleaved passes; the faster estimate
  // sets the round trips, so a queue probed during a burst of other work does not get a short
  // run (short runs dodge preemption and would look faster under load).
  if (options.iterations != 0) {
    for (CaseResult& c : report.cases) {
      c.iterations = options.iterations;
      c.entry.run(std::min<std::uint64_t>(options.iterations / 10 + 100, 20000),
                  std::min<std::uint64_t>(options.iterations, 20000), options.pinning);
    }
  } else {
    std::vector<double> best(report.cases.size(), 0);
    for (int pass = 0; pass < 2; ++pass) {
      for (std::size_t i = 0; i < report.cases.size(); ++i) {
        CaseResult& c = report.cases[i];
        RunSample probe = c.entry.run(200, 2000, options.pinning);
        probe =
            c.entry.run(200, calibrated_iterations(probe.ns_per_round_trip, options.target_ms / 10),
                        options.pinning);
        if (best[i] == 0 || probe.ns_per_round_trip < best[i])
          best[i] = probe.ns_per_round_trip;
      }
    }
    for (std::size_t i = 0; i < report.cases.size(); ++i) {
      report.cases[i].iterations = calibrated_iterations(best[i], options.target_ms);
    }
  }
  // Interleaved repetitions: A B C … A B C …
  for (int rep = 0; rep < options.repetitions; ++rep) {
    for (CaseResult& c : report.cases) {
      const std::uint64_t warmup = std::max<std::uint64_t>(c.iterations / 50, 100);
      const RunSample s = c.entry.run(warmup, c.iterations, options.pinning);
      c.ns.push_back(s.ns_per_round_trip);
      c.pinned = c.pinned && s.client_pinned && s.server_pinned;
      if (!s.error.empty() && c.error.empty())
        c.error = s.error;
      if (progress != nullptr) {
        std::fprintf(progress, "  rep %d/%d  %-34s %9.1f ns/round trip%s\n", rep + 1,
                     options.repetitions, c.entry.name.c_str(), s.ns_per_round_trip,
                     s.error.empty() ? "" : "  INVALID");
        std::fflush(progress);
      }
    }
  }
  report.busy = cpu_busy_between(before, take_cpu_snapshot());
  for (CaseResult& c : report.cases)
    c.summary = summarize(c.ns);
  return report;
}

inline const CaseResult* find_case(const PingPongReport& r, const std::string& id) {
  for (const auto& c : r.cases) {
    if (c.entry.id == id)
      return &c;
  }
  return nullptr;
}

inline void print_machine_header(const MachineInfo& m, std::FILE* out) {
  std::fprintf(out, "machine: %s, %u CPUs, %s\n", m.cpu_model.c_str(), m.num_cpus,
               m.kernel.c_str());
}

inline void print_busy(const PingPongReport& r, std::FILE* out) {
  std::fprintf(out,
               "other work on the machine: %.1f%% of all CPU time while idle before the run, "
               "%.1f%% during it (loadavg %s before, %s after)\n",
               r.other_share_idle * 100, r.busy.other_share * 100, r.busy.loadavg_before.c_str(),
               r.busy.loadavg_after.c_str());
}

// Prints the table, the OQueue/peer ratios and the goals.
inline void print_pingpong_report(const PingPongReport& r, std::FILE* out) {
  print_machine_header(r.machine, out);
  std::fprintf(out,
               "RPC ping-pong, ring length %u, client thread on cpu %d, server thread on cpu %d; "
               "%d interleaved repetitions\n",
               kRingLength, r.options.pinning.client_cpu, r.options.pinning.server_cpu,
               r.options.repetitions);
  print_busy(r, out);
  std::fprintf(out, "\n%-34s %-6s %10s %10s %9s %9s %7s\n", "queue", "kind", "round trips",
               "median ns", "min", "max", "MAD");
  for (const CaseResult& c : r.cases) {
    std::fprintf(out, "%-34s %-6s %10llu %10.1f %9.1f %9.1f %7.1f%s%s\n", c.entry.name.c_str(),
                 to_string(c.entry.kind), static_cast<unsigned long long>(c.iterations),
                 c.summary.median, c.summary.min, c.summary.max, c.summary.mad,
                 c.pinned ? "" : "  (not pinned)", c.error.empty() ? "" : "  INVALID");
  }

  std::vector<const CaseResult*> oqs;
  std::vector<const CaseResult*> peers;
  for (const CaseResult& c : r.cases) {
    if (c.entry.kind == QueueKind::kOQueue)
      oqs.push_back(&c);
    if (c.entry.kind == QueueKind::kSpsc || c.entry.kind == QueueKind::kMpmc)
      peers.push_back(&c);
  }
  if (oqs.empty() || peers.empty())
    return;
  std::fprintf(out,
               "\nOQueue / peer (median of per-repetition ratios; below 1.00 OQueue is faster)\n");
  std::fprintf(out, "%-34s", "peer");
  for (const auto* o : oqs)
    std::fprintf(out, " %10s", o->entry.id.c_str());
  std::fprintf(out, "\n");
  for (const auto* p : peers) {
    std::fprintf(out, "%-34s", p->entry.name.c_str());
    for (const auto* o : oqs)
      std::fprintf(out, " %10.2f", paired_ratio(o->ns, p->ns));
    std::fprintf(out, "\n");
  }

  const CaseResult* spin = find_case(r, "oq-spin");
  if (spin == nullptr)
    return;
  const CaseResult* fastest = nullptr;
  const CaseResult* fastest_mpmc = nullptr;
  for (const auto* p : peers) {
    if (fastest == nullptr || p->summary.median < fastest->summary.median)
      fastest = p;
    if (p->entry.kind == QueueKind::kMpmc &&
        (fastest_mpmc == nullptr || p->summary.median < fastest_mpmc->summary.median)) {
      fastest_mpmc = p;
    }
  }
  std::fprintf(out, "\ngoals (OQueue busy-wait, no observer):\n");
  if (fastest_mpmc != nullptr) {
    const double ratio = paired_ratio(spin->ns, fastest_mpmc->ns);
    std::fprintf(out, "  at least as fast as every MPMC peer: %.2f x %s -> %s\n", ratio,
                 fastest_mpmc->entry.name.c_str(), ratio <= 1.0 ? "met" : "MISSED");
  }
  const double ratio = paired_ratio(spin->ns, fastest->ns);
  std::fprintf(out, "  within 10%% of the fastest peer:     %.2f x %s -> %s\n", ratio,
               fastest->entry.name.c_str(), ratio <= 1.10 ? "met" : "MISSED");
  // The same goal for a queue built single-producer/single-consumer, the mode a user who would
  // pick an SPSC peer picks.
  if (const CaseResult* spsc = find_case(r, "oq-spsc-spin"); spsc != nullptr) {
    const double spsc_ratio = paired_ratio(spsc->ns, fastest->ns);
    std::fprintf(out, "  SPSC mode within 10%% of the fastest: %.2f x %s -> %s\n", spsc_ratio,
                 fastest->entry.name.c_str(), spsc_ratio <= 1.10 ? "met" : "MISSED");
  }
}

inline void append_pingpong_json(const PingPongReport& r, std::vector<JsonRow>& rows) {
  for (const CaseResult& c : r.cases) {
    for (std::size_t i = 0; i < c.ns.size(); ++i) {
      JsonRow row;
      row.run_name = "pingpong/" + c.entry.id;
      row.label = c.entry.name + ", " + to_string(c.entry.kind);
      row.repetition_index = static_cast<int>(i);
      row.repetitions = static_cast<int>(c.ns.size());
      row.iterations = c.iterations;
      row.real_time_ns = c.ns[i];
      row.cpu_time_ns = c.ns[i];
      row.counters.emplace_back("items_per_second", c.ns[i] > 0 ? 1e9 / c.ns[i] : 0);
      rows.push_back(std::move(row));
    }
  }
}

inline std::vector<std::pair<std::string, std::string>> busy_context(double idle_other,
                                                                     const CpuBusy& busy) {
  char idle[32];
  char during[32];
  std::snprintf(idle, sizeof idle, "%.3f", idle_other);
  std::snprintf(during, sizeof during, "%.3f", busy.other_share);
  return {{"other_busy_share_idle", idle},
          {"other_busy_share_during", during},
          {"loadavg_before", busy.loadavg_before},
          {"loadavg_after", busy.loadavg_after}};
}

}  // namespace sluice::oq::bench
