// sluice::wf::Searcher — the pluggable search algorithm: propose from the history, observe.
//
// The study loop asks a searcher for the next configuration(s) and tells it every result. A
// searcher sees the whole history, crashes included: each Observation carries the outcome class
// (ok, build failure, start failure, crash, timeout, metric missing), the raw metrics, and the
// objective (higher is better; the metric itself for one metric, the Equation 4 score for
// several). On resume the study replays the stored history through observe() before the first
// propose(), so a searcher keeps no state the store does not have.
//
// propose(n) may return up to n configurations for batch evaluation; fewer (or none) means the
// searcher has nothing left to try (grid exhausted). Searchers are not thread-safe: the study
// loop calls them from one thread.
//
// Built in: "random", "grid", "bayes" (a Gaussian process with expected improvement), "optuna"
// (Optuna's TPE in a python3 child process, driven through this same interface) and "deeptune"
// (the paper's neural searcher; libtorch, loaded from the plugin sluice-deeptune.so on first use
// so that a sluice that never asks for it does not pay libtorch's start-up).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/wayfinder/space.h"

namespace sluice::wf {

enum class Outcome { kOk, kBuildFailure, kStartFailure, kCrash, kTimeout, kMetricMissing };
std::string_view outcome_name(Outcome o);  // "ok", "build_failure", …
Result<Outcome> parse_outcome(std::string_view name);
// Any outcome but ok counts as a crash for crash rates (the paper's "failures").
inline bool is_failure(Outcome o) {
  return o != Outcome::kOk;
}

struct Observation {
  int64_t iteration = 0;
  Configuration config;
  Outcome outcome = Outcome::kOk;
  std::map<std::string, double> metrics;  // medians over repetitions (ok trials)
  std::optional<double> objective;        // higher is better; set for ok trials
  bool is_default = false;                // the baseline measurement
  double seconds = 0;                     // wall time the evaluation took
};

// What a model-based searcher learned, for `sluice tune explain`.
struct ParameterEffect {
  std::string parameter;   // a job parameter (enum values folded into their parameter)
  double importance = 0;   // share of the model's sensitivity, 0..1, summing to 1 over all
  double effect = 0;       // signed: mean change of the objective (z-score units) from low to high
  std::string best_value;  // the value the model predicts best, as text
};
struct CrashAccuracy {
  int64_t evaluated = 0;  // held-out trials the model predicted before seeing them
  int64_t crashes = 0;    // of which failed
  double accuracy = 0, precision = 0, recall = 0;  // crash = positive class
};
struct Insight {
  std::vector<ParameterEffect> raise;  // strongest positive effects first
  std::vector<ParameterEffect> lower;  // strongest negative effects first
  std::vector<ParameterEffect> all;    // every parameter, most important first
  CrashAccuracy crashes;
  std::string notes;  // how the figures were made, in one paragraph
  // Non-empty when the history is too small for the ranking to be trusted, and why: the
  // reader should see it before the tables.
  std::string caution;
};

class Searcher {
 public:
  virtual ~Searcher() = default;
  virtual std::string_view name() const = 0;
  // Up to n configurations to evaluate next, given everything observed so far.
  virtual Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                                     size_t n) = 0;
  // One finished evaluation (also called for the stored history on resume).
  virtual void observe(const Observation& obs) = 0;

  // True for model-based searchers: save_model() and explain() work and SearchOptions::model_in
  // is honoured.
  virtual bool keeps_model() const { return false; }
  // Model-based searchers: write the trained model with its parameter space to `path`, so a
  // later study can start warm from it (SearchOptions::model_in). Others: unimplemented.
  virtual Status save_model(const std::string& path);
  // Model-based searchers: what the model learned from the observed history. Others:
  // unimplemented.
  virtual Result<Insight> explain(std::span<const Observation> history);
};

struct SearchOptions {
  uint64_t seed = 1;     // makes every searcher reproducible across a resume
  std::string model_in;  // warm start (transfer learning): a model saved by save_model()
};

using SearcherFactory =
    std::function<Result<std::unique_ptr<Searcher>>(const Space& space, const SearchOptions&)>;
// Adds a searcher under `name` (e.g. from a static initialiser). Returns true.
bool register_searcher(std::string name, SearcherFactory factory);

// "random", "grid", "bayes", "optuna", "deeptune", or a registered name.
Result<std::unique_ptr<Searcher>> make_searcher(std::string_view name, const Space& space,
                                                const SearchOptions& options);
inline Result<std::unique_ptr<Searcher>> make_searcher(std::string_view name, const Space& space,
                                                       uint64_t seed) {
  return make_searcher(name, space, SearchOptions{.seed = seed});
}
// Names make_searcher() accepts.
std::vector<std::string> searcher_names();

}  // namespace sluice::wf
