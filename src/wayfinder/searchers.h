// The built-in model-based searchers, each in its own file; search.cc registers them.
#pragma once

#include <memory>

#include "sluice/common/result.h"
#include "sluice/wayfinder/search.h"

namespace sluice::wf {

// bayes.cc: a Gaussian process (Matérn 5/2) with expected improvement, the paper's competitor.
Result<std::unique_ptr<Searcher>> make_bayes_search(const Space& space,
                                                    const SearchOptions& options);

// optuna_search.cc: Optuna's TPE sampler in a python3 child process (tools/optuna_bridge.py).
Result<std::unique_ptr<Searcher>> make_optuna_search(const Space& space,
                                                     const SearchOptions& options);

}  // namespace sluice::wf
