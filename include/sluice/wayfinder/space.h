// sluice::wf::Space — the configuration space of a job: sampling, grids, encodings.
//
// A Configuration maps every parameter name to its canonical text value. The space samples
// uniformly (log-uniformly for log-scale parameters), enumerates grids, and encodes a
// configuration as numbers for model-based searchers (numeric parameters scaled to [0, 1],
// categorical ones one-hot). Pinned parameters always take their fixed value.
//
// Thread safety: a Space is immutable after construction; use one RNG per thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "sluice/wayfinder/job.h"

namespace sluice::wf {

using Configuration = std::map<std::string, std::string>;

// Stable text form ("a=1,b=x", sorted by name) and a 64-bit hash of it.
std::string configuration_key(const Configuration& c);
uint64_t configuration_hash(const Configuration& c);
// Hash of the compile-stage values only: the build cache's key (hex).
std::string compile_hash(const Job& job, const Configuration& c);

class Space {
 public:
  explicit Space(const Job& job);

  const std::vector<Parameter>& parameters() const { return params_; }
  // Every parameter at its default (pinned ones at their fixed value).
  Configuration default_configuration() const;
  // One uniformly random configuration.
  Configuration sample(std::mt19937_64& rng) const;
  // The values grid search tries for parameter i (the default first when it is on the grid).
  std::vector<std::string> grid_values(size_t i) const;
  // Number of grid points overall; nullopt when it overflows 2^63.
  std::optional<uint64_t> grid_size() const;
  // The index-th grid configuration in mixed-radix order, the last parameter varying fastest.
  Configuration grid_point(uint64_t index) const;

  // Whether parameter i can take more than one value (not pinned, a non-empty range).
  bool can_vary(size_t i) const;
  // A neighbour of `c` for local search: 1..max_changes unpinned parameters changed — numbers
  // by a Gaussian step of 0.02, 0.1 or 0.3 of their (log) range (integers by at least one),
  // booleans flipped, enums to another value. Returns `c` unchanged when nothing can vary.
  Configuration neighbour(Configuration c, std::mt19937_64& rng, size_t max_changes = 3) const;
  // The same, choosing which parameters change with probability proportional to `weights`
  // (one per parameter, ≥ 0; those that cannot vary are skipped). All zero: uniform.
  Configuration neighbour(Configuration c, std::mt19937_64& rng, size_t max_changes,
                          std::span<const double> weights) const;

  // Uniform crossover: each unpinned parameter takes its value from one of `parents`, chosen
  // uniformly and independently per parameter (pinned ones keep their fixed value). In a space
  // where the objective is mostly a sum over a few parameters, this joins good values that
  // different good configurations found. REQUIRES: parents is not empty.
  Configuration recombine(std::span<const Configuration* const> parents,
                          std::mt19937_64& rng) const;

  // A draw from a product of per-parameter densities around `parents`, the "good" density l(x)
  // of a tree-structured Parzen estimator: each unpinned parameter is drawn uniformly with
  // probability prior_weight, and otherwise takes the value of one of `parents` (chosen per
  // parameter), a number then moved by a Gaussian as wide as the parents' spread of it
  // (`spreads`, from unit_spreads(parents)), kept within [0.02, 0.3] of its (log) unit range.
  // Parameters on which the parents agree stay close to their value; those they disagree on
  // are explored widely.
  // REQUIRES: parents is not empty; spreads has one entry per parameter; 0 <= prior_weight <= 1.
  Configuration sample_around(std::span<const Configuration* const> parents,
                              std::span<const double> spreads, std::mt19937_64& rng,
                              double prior_weight) const;
  // Per parameter, the standard deviation of the parents' values in its (log) unit range (0 for
  // parameters that are not numbers). Computed once for many draws of sample_around.
  std::vector<double> unit_spreads(std::span<const Configuration* const> parents) const;

  // Numeric encoding: one column per numeric/bool parameter (scaled to [0,1], log scale in log
  // space) and one per value of each enum/string parameter (one-hot). Pinned parameters are left
  // out. encoded_names() names the columns.
  std::vector<double> encode(const Configuration& c) const;
  std::vector<std::string> encoded_names() const;

 private:
  std::vector<Parameter> params_;
};

}  // namespace sluice::wf
