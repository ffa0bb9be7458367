// sluice::wf::Evaluator — evaluates one configuration safely and reproducibly (§3.1):
//
//   build (only when the compile-stage values are new: builds are cached by their hash)
//   → apply (templates, env, flags, knobs; namespaced sysctls; journalled host-wide settings)
//   → start → wait until ready → benchmark (repetitions, median) → stop → restore
//
// and classifies the outcome: ok, build failure, start failure (start exited or never became
// ready), crash (the server died during the benchmark, or the benchmark failed), timeout (the
// benchmark ran past its limit) or metric missing (the benchmark ran but printed no metric).
//
// Isolation: with job.isolate_netns each evaluation gets a fresh network namespace (loopback up)
// that every command runs in, so net.* sysctls and ports are private to it. Host-wide settings
// (non-net sysctls, `file` parameters) are refused unless job.allow_host_changes; each is
// written to the store's journal before it is applied and restored after the evaluation, or by
// HostJournal::restore_all() on the next start after sluice itself died.
//
// Commands run under `bash -c` in their own process group; a timeout sends SIGTERM to the group,
// then SIGKILL. request_stop() (from a signal handler) aborts the evaluation in progress, which
// then returns `cancelled` after stopping and restoring everything.
//
// Thread safety: one Evaluator per thread; request_stop() is async-signal-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/space.h"
#include "sluice/wayfinder/store.h"

namespace sluice::wf {

// Asks every running evaluation to stop (safe in a signal handler); cleared by clear_stop().
void request_stop();
void clear_stop();
bool stop_requested();

// What a command did.
struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  std::string out;  // stdout (capped at 1 MiB)
  std::string err;  // stderr tail (capped at 64 KiB)
  double seconds = 0;
};

struct RunSpec {
  std::string command;  // bash -c
  std::string cwd;
  std::map<std::string, std::string> env;  // added to the environment
  std::string netns;                       // run inside this named namespace ("" = current)
  double timeout_s = 60;
  // A cleanup (deleting a namespace, the job's stop command) runs to completion even after a
  // stop request: Ctrl-C must not cut short the undoing of what the trial set up.
  bool cleanup = false;
};
// Runs a command to completion (or timeout / stop request, unless it is a cleanup).
CommandResult run_command(const RunSpec& spec);

// Replaces {{name}} with values[name]; an unknown name is an error naming it.
Result<std::string> render_template(std::string_view text,
                                    const std::map<std::string, std::string>& values);

// Extracts one metric from a benchmark's stdout; nullopt when absent or not a number.
std::optional<double> extract_metric(const MetricSpec& m, const std::string& out);

// Host-wide changes, journalled in the store before they happen.
class HostJournal {
 public:
  explicit HostJournal(StudyStore& store) : store_(store) {}
  // Reads the current value of `path`, journals it, writes `value`. Fails when the write fails
  // (and then leaves the file as it was).
  Status set_file(const std::string& path, const std::string& value);
  // Journals a network namespace so a crashed run's namespace is deleted on the next start.
  Result<int64_t> add_netns(const std::string& name);
  // Restores every open entry (written by this or any earlier process) newest first.
  // Returns how many it restored.
  Result<int> restore_all();

 private:
  StudyStore& store_;
};

struct EvalResult {
  Outcome outcome = Outcome::kOk;
  std::map<std::string, double> metrics;               // medians
  std::map<std::string, std::vector<double>> samples;  // per repetition
  std::string message;
  double build_s = 0;
  bool build_cached = false;
  double eval_s = 0;
};

struct EvaluatorOptions {
  std::string work_dir;    // builds/ and runs/ go here
  bool keep_runs = false;  // keep each trial's run directory (logs, rendered files)
};

class Evaluator {
 public:
  Evaluator(const Job& job, StudyStore& store, EvaluatorOptions options);
  // Evaluates `c` as trial `iteration`. Returns `cancelled` when stopped by request_stop()
  // (after cleaning up); other statuses are errors of sluice itself (store, work directory),
  // never of the system under test, whose failures are outcomes.
  Result<EvalResult> evaluate(const Configuration& c, int64_t iteration);

  // Number of builds actually run (cache misses) by this evaluator.
  int builds_run() const { return builds_run_; }

 private:
  Result<EvalResult> evaluate_in(const Configuration& c, int64_t iteration,
                                 const std::string& netns, HostJournal& journal);
  const Job& job_;
  StudyStore& store_;
  EvaluatorOptions options_;
  int builds_run_ = 0;
};

}  // namespace sluice::wf
