// sluice::wf — running a study: the loop that proposes, evaluates, stores and observes.
//
// A study is named (by default after its job). Iteration 0 measures the job's default
// configuration as the baseline; the searcher proposes the rest until the budget (iterations,
// wall time) is spent. Running a study that exists resumes it: the stored history is replayed
// into the searcher, a trial left pending is evaluated again, and host settings a crashed run
// left changed are restored first. `confirm` re-measures the default and the best configuration
// alternately at the end so the comparison is made under the same conditions.
//
// Thread safety: run_study() blocks the calling thread; request_stop() (pipeline.h) ends it early.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/search.h"
#include "sluice/wayfinder/store.h"

namespace sluice::wf {

struct StudyOptions {
  std::string study;  // "" = the job's name
  std::string search = "random";
  uint64_t seed = 1;
  std::optional<int64_t> budget;  // iterations; overrides the job's
  std::optional<double> time_s;   // wall time; overrides the job's
  int confirm = 0;                // pairs of default/best re-measurements at the end
  std::string work_dir;           // "" = the knob wayfinder.work_dir
  std::FILE* progress = nullptr;  // a progress line (\r-updated when it is a terminal)
  // Model-based searchers (deeptune): start warm from a saved model (transfer learning, §3.3),
  // and save the trained model at the end ("" = WORK/<study>/<search>.model). The starting
  // model is stored with the study: a resume without model_in uses it, another one is refused.
  std::string model_in;
  std::string model_out;
};

struct StudySummary {
  int64_t study_id = 0;
  int64_t trials = 0;  // finished, all roles
  int64_t failures = 0;
  int builds_run = 0;
  bool stopped = false;    // ended by request_stop()
  std::string model_path;  // where a model-based searcher saved its model, else ""
};

Result<StudySummary> run_study(const Job& job, StudyStore& store, const StudyOptions& options);

// Objective of every ok trial (higher is better): the metric itself (negated when minimised)
// for one metric; for several, Equation 4: Σ weight·±minmax(metric) over the study's ok trials.
// Indexed like `trials`; nullopt for failures and pending trials.
std::vector<std::optional<double>> objectives(const Job& job, const std::vector<Trial>& trials);

// What a searcher is shown: every finished default and search trial, oldest first, with its
// objective (confirm re-runs and pending trials left out).
std::vector<Observation> history_of(const Job& job, const std::vector<Trial>& trials);

// The trial with the best objective among role default/search, or nullopt.
std::optional<size_t> best_trial(const Job& job, const std::vector<Trial>& trials);

// The best configuration as a ready-to-use file in the job's export format (sysctl.conf lines,
// nginx directives, redis.conf lines, sluice config YAML, or env assignments).
std::string export_configuration(const Job& job, const Configuration& c);

// Trials as CSV: iteration, role, outcome, objective, metrics, timings, then every parameter.
std::string trials_csv(const Job& job, const std::vector<Trial>& trials);

// `sluice tune discover`: writable namespaced /proc/sys/net parameters probed in a fresh
// network namespace (×10 and ÷10 steps, §3.4), or sluice's knobs from `sluice knobs --json`
// text. Returns a job file's YAML text (parameters plus placeholders for the commands).
struct DiscoverOptions {
  std::string source = "net";  // "net" or "knobs"
  std::string knobs_json;      // for "knobs"
  std::string prefix;          // only parameters whose name starts with this
  int probe_steps = 3;         // ×10 / ÷10 steps tried each way
};
struct DiscoverReport {
  std::string yaml;
  int found = 0, numeric = 0, skipped = 0;
};
Result<DiscoverReport> discover(const DiscoverOptions& options);

}  // namespace sluice::wf
