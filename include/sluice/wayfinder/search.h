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

class Searcher {
 public:
  virtual ~Searcher() = default;
  virtual std::string_view name() const = 0;
  // Up to n configurations to evaluate next, given everything observed so far.
  virtual Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                                     size_t n) = 0;
  // One finished evaluation (also called for the stored history on resume).
  virtual void observe(const Observation& obs) = 0;
};

using SearcherFactory =
    std::function<Result<std::unique_ptr<Searcher>>(const Space& space, uint64_t seed)>;
// Adds a searcher under `name` (e.g. from a static initialiser). Returns true.
bool register_searcher(std::string name, SearcherFactory factory);

// "random", "grid", or a registered name. The seed makes random search reproducible across a
// resume.
Result<std::unique_ptr<Searcher>> make_searcher(std::string_view name, const Space& space,
                                                uint64_t seed);
// Names make_searcher() accepts.
std::vector<std::string> searcher_names();

}  // namespace sluice::wf
