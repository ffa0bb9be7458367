// Options and top level of the oqueue scenario benchmarks, shared by the `oqueue_pingpong`
// executable and `sluice oq bench`: both parse the same options and print the same tables.
#pragma once

#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "observers.h"
#include "report.h"
#include "scenarios.h"

namespace sluice::oq::bench {

struct BenchSettings {
  std::string scenarios = "pingpong";  // any of pingpong,strong,weak
  int repetitions = 7;
  double target_ms = 150;
  double weak_target_ms = 300;
  std::uint64_t iterations = 0;
  std::string queues;  // ping-pong entry ids, comma separated; empty: all
  std::string observers = "0,1,2,4,8";
  std::string strong_policies = "yield,block";
  std::string weak_policies = "spin";
  std::string histories = "2,64";
  int client_cpu = 0;
  int server_cpu = 1;
  std::string json;  // write Google-Benchmark-schema JSON here
  bool quick = false;
  bool list = false;
  bool progress = true;  // one line per run on stderr
  double settle_s = 0;   // wait up to this long for other work to fall below max_other_busy
  double max_other_busy = 0.25;
  // Set by add_bench_options: lets --quick shorten only what the user did not set.
  CLI::Option* reps_option = nullptr;
  CLI::Option* target_option = nullptr;
  CLI::Option* weak_target_option = nullptr;
};

inline void add_bench_options(CLI::App& app, BenchSettings& s) {
  app.add_option("--scenarios", s.scenarios,
                 "comma-separated: pingpong (OQueue vs peers), strong (strong-observer scaling), "
                 "weak (weak-observer scaling)")
      ->capture_default_str();
  s.reps_option = app.add_option("--reps", s.repetitions,
                                 "interleaved repetitions of every case (median over these)")
                      ->capture_default_str()
                      ->check(CLI::Range(1, 1000));
  s.target_option = app.add_option("--target-ms", s.target_ms,
                                   "timed length of each run; round trips are calibrated to it")
                        ->capture_default_str()
                        ->check(CLI::Range(1.0, 60000.0));
  s.weak_target_option =
      app.add_option("--weak-target-ms", s.weak_target_ms,
                     "timed length of each weak-observer run (observers read every 10 ms)")
          ->capture_default_str()
          ->check(CLI::Range(20.0, 60000.0));
  app.add_option("--iterations", s.iterations,
                 "fixed round trips per ping-pong run instead of --target-ms");
  app.add_option("--queues", s.queues, "ping-pong queues to run, comma-separated ids (see --list)");
  app.add_option("--observers", s.observers, "observer counts for the scaling scenarios")
      ->capture_default_str();
  app.add_option("--strong-policies", s.strong_policies,
                 "wait policies (spin,yield,block) of every thread in strong-observer runs")
      ->capture_default_str();
  app.add_option("--weak-policies", s.weak_policies,
                 "wait policies of client and server in weak-observer runs")
      ->capture_default_str();
  app.add_option("--histories", s.histories, "history lengths (and ring lengths) of weak runs")
      ->capture_default_str();
  app.add_option("--client-cpu", s.client_cpu, "CPU the client thread is pinned to (-1: none)")
      ->capture_default_str();
  app.add_option("--server-cpu", s.server_cpu, "CPU the server thread is pinned to (-1: none)")
      ->capture_default_str();
  app.add_option("--json", s.json,
                 "also write the results as Google Benchmark JSON (for tools/bench_report.py)");
  app.add_flag("--quick", s.quick, "5 repetitions of 20 ms runs (unless set explicitly)");
  app.add_flag("--list", s.list, "list the ping-pong queues and exit");
  app.add_flag("--progress,!--no-progress", s.progress, "print one line per run on stderr")
      ->capture_default_str();
  app.add_option("--settle-s", s.settle_s,
                 "before starting, wait up to this many seconds for other work on the machine to "
                 "fall below --max-other-busy")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--max-other-busy", s.max_other_busy,
                 "share of all CPU time (0..1) other processes may use for --settle-s to stop "
                 "waiting")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
}

inline bool parse_policies(const std::string& text, std::vector<WaitPolicy>& out,
                           std::string& error) {
  out.clear();
  for (const std::string& word : split_list(text)) {
    WaitPolicy p;
    if (!parse_policy(word, p)) {
      error = "unknown wait policy '" + word + "' (spin, yield or block)";
      return false;
    }
    out.push_back(p);
  }
  return true;
}

template <class T>
bool parse_numbers(const std::string& text, std::vector<T>& out, const char* what,
                   std::string& error) {
  out.clear();
  for (const std::string& word : split_list(text)) {
    char* end = nullptr;
    const long long v = std::strtoll(word.c_str(), &end, 10);
    if (end == word.c_str() || *end != '\0' || v < 0) {
      error = std::string("bad ") + what + " '" + word + "'";
      return false;
    }
    out.push_back(static_cast<T>(v));
  }
  return true;
}

// Runs what `s` asks for, printing tables to `out` and progress to stderr. Returns an error
// message, or an empty string on success.
inline std::string run_bench(BenchSettings s, std::FILE* out, const std::string& executable) {
  if (s.list) {
    for (const QueueEntry& e : all_pingpong_entries()) {
      std::fprintf(out, "%-16s %-6s %s\n", e.id.c_str(), to_string(e.kind), e.name.c_str());
    }
    return {};
  }
  if (s.quick) {
    if (s.reps_option == nullptr || s.reps_option->count() == 0)
      s.repetitions = 5;
    if (s.target_option == nullptr || s.target_option->count() == 0)
      s.target_ms = 20;
    if (s.weak_target_option == nullptr || s.weak_target_option->count() == 0) {
      s.weak_target_ms = 100;
    }
  }
  bool want_pingpong = false;
  bool want_strong = false;
  bool want_weak = false;
  for (const std::string& word : split_list(s.scenarios)) {
    if (word == "pingpong") {
      want_pingpong = true;
    } else if (word == "strong") {
      want_strong = true;
    } else if (word == "weak") {
      want_weak = true;
    } else {
      return "unknown scenario '" + word + "' (pingpong, strong or weak)";
    }
  }
  if (!want_pingpong && !want_strong && !want_weak) {
    return "no scenario chosen (--scenarios pingpong, strong or weak)";
  }
  if (!s.json.empty()) {
    // Found out now, not after minutes of runs: the file can be written.
    std::FILE* probe = std::fopen(s.json.c_str(), "a");
    if (probe == nullptr) {
      return "cannot write " + s.json + ": " + std::strerror(errno);
    }
    std::fclose(probe);
  }
  for (int cpu : {s.client_cpu, s.server_cpu}) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    const bool known = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
    if (cpu < -1 || (cpu >= 0 && (cpu >= CPU_SETSIZE ||
                                  (known && !CPU_ISSET(static_cast<size_t>(cpu), &allowed))))) {
      return "CPU " + std::to_string(cpu) +
             " is not one this process may run on (--client-cpu, --server-cpu; -1: not pinned)";
    }
  }
  Pinning pinning{s.client_cpu, s.server_cpu};
  if (s.settle_s > 0) {
    const auto give_up = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(static_cast<std::int64_t>(s.settle_s * 1000));
    double other = idle_probe_other_share(500);
    while (other > s.max_other_busy && std::chrono::steady_clock::now() < give_up) {
      if (s.progress) {
        std::fprintf(stderr, "waiting for a quieter machine: other work uses %.0f%% of the CPUs\n",
                     other * 100);
      }
      other = idle_probe_other_share(1000);
    }
    std::fprintf(out, "settle: other work at %.0f%% of all CPU time when the runs started%s\n",
                 other * 100, other > s.max_other_busy ? " (gave up waiting)" : "");
  }
  std::vector<JsonRow> rows;
  std::vector<std::pair<std::string, std::string>> context;

  if (want_pingpong) {
    PingPongOptions o;
    o.repetitions = s.repetitions;
    o.target_ms = s.target_ms;
    o.iterations = s.iterations;
    o.queues = split_list(s.queues);
    o.pinning = pinning;
    const PingPongReport r = run_pingpong_suite(o, s.progress ? stderr : nullptr);
    if (!r.error.empty())
      return r.error;
    print_pingpong_report(r, out);
    append_pingpong_json(r, rows);
    for (auto& kv : busy_context(r.other_share_idle, r.busy)) {
      context.emplace_back("pingpong_" + kv.first, kv.second);
    }
    std::fprintf(out, "\n");
  }
  if (want_strong || want_weak) {
    ObserverOptions o;
    o.repetitions = s.repetitions;
    o.target_ms = s.target_ms;
    o.weak_target_ms = s.weak_target_ms;
    o.pinning = pinning;
    std::string error;
    if (!parse_numbers(s.observers, o.counts, "observer count", error) ||
        !parse_numbers(s.histories, o.histories, "history length", error) ||
        !parse_policies(s.strong_policies, o.strong_policies, error) ||
        !parse_policies(s.weak_policies, o.weak_policies, error)) {
      return error;
    }
    for (std::size_t h : o.histories) {
      if (h < 2 || (h & (h - 1)) != 0) {
        return "history length " + std::to_string(h) + " is not a power of two >= 2";
      }
    }
    const ObserverReport r =
        run_observer_suite(o, want_strong, want_weak, s.progress ? stderr : nullptr);
    print_machine_header(r.machine, out);
    print_observer_report(r, out);
    append_observer_json(r, rows);
    for (auto& kv : busy_context(r.other_share_idle, r.busy)) {
      context.emplace_back("observers_" + kv.first, kv.second);
    }
  }
  if (!s.json.empty()) {
    if (!write_benchmark_json(s.json, executable, rows, context)) {
      return "cannot write " + s.json;
    }
    std::fprintf(stderr, "wrote %s\n", s.json.c_str());
  }
  return {};
}

}  // namespace sluice::oq::bench
