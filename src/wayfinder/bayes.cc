// The "bayes" searcher: Bayesian optimization with a Matérn 5/2 Gaussian process and expected
// improvement (the competitor of the paper's §2.3 and §4).
//
// Every propose() refits the model from the history alone, so a resumed study proposes exactly
// what the uninterrupted one would have: the hyper-parameter fit is deterministic and the
// candidate pool is drawn from an RNG seeded by (seed, history size).
//
// Failed trials carry no objective. The model sees them at the worst observed objective minus a
// margin (wayfinder.bayes_failure_margin standard deviations), so the posterior mean dips around
// crashes and expected improvement steers away from them without a separate crash classifier.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "sluice/common/knobs.h"
#include "wayfinder/gaussian_process.h"
#include "wayfinder/searchers.h"

namespace sluice::wf {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

const IntKnob kMaxDims({.name = "wayfinder.bayes_max_dims",
                        .default_value = 1024,
                        .min = 1,
                        .max = 1 << 20,
                        .stage = KnobStage::kRuntime,
                        .help = "largest encoded space (numeric parameters plus enum values) the "
                                "bayes search accepts"});
const IntKnob kMaxHistory({.name = "wayfinder.bayes_max_history",
                           .default_value = 2000,
                           .min = 2,
                           .max = 1 << 20,
                           .stage = KnobStage::kRuntime,
                           .help = "most observations the bayes search conditions on; O(n^3) "
                                   "time and O(n^2) memory per proposal"});
const IntKnob kFitPoints({.name = "wayfinder.bayes_fit_points",
                          .default_value = 300,
                          .min = 2,
                          .max = 1 << 20,
                          .stage = KnobStage::kRuntime,
                          .help = "observations (an even subsample) the bayes hyper-parameter fit "
                                  "uses; the posterior uses all"});
const IntKnob kCandidates({.name = "wayfinder.bayes_candidates",
                           .default_value = 2000,
                           .min = 16,
                           .max = 1000000,
                           .stage = KnobStage::kRuntime,
                           .help = "configurations the bayes search scores by expected "
                                   "improvement per proposal"});
const IntKnob kInitialRandom({.name = "wayfinder.bayes_initial_random",
                              .default_value = 5,
                              .min = 2,
                              .max = 1000000,
                              .stage = KnobStage::kRuntime,
                              .help = "observations before the bayes search uses its model; it "
                                      "samples at random until then"});
const IntKnob kArdMaxDims({.name = "wayfinder.bayes_ard_max_dims",
                           .default_value = 32,
                           .min = 0,
                           .max = 1 << 20,
                           .stage = KnobStage::kRuntime,
                           .help = "up to this many encoded dimensions the bayes kernel fits one "
                                   "length scale per dimension, above it one for all"});
const FloatKnob kXi({.name = "wayfinder.bayes_xi",
                     .default_value = 0.01,
                     .min = 0,
                     .max = 10,
                     .stage = KnobStage::kRuntime,
                     .help = "expected-improvement margin, in standard deviations of the "
                             "objective; larger explores more"});
const FloatKnob kFailureMargin({.name = "wayfinder.bayes_failure_margin",
                                .default_value = 1,
                                .min = 0,
                                .max = 100,
                                .stage = KnobStage::kRuntime,
                                .help = "failed trials are modelled this many standard deviations "
                                        "below the worst successful one"});

// Local search around good configurations: how many of the best observations are mutated, and
// how the best candidates are refined after the first scoring.
constexpr size_t kTopObserved = 5;
constexpr int kRefineRounds = 2;
constexpr size_t kRefineTop = 10;
constexpr size_t kRefineMutations = 20;
constexpr int kRandomAttempts = 100;

class BayesSearch final : public Searcher {
 public:
  BayesSearch(const Space& space, uint64_t seed)
      : space_(space), seed_(seed), dims_(space.encoded_names().size()) {
    const auto& params = space.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      if (space.can_vary(i))
        free_.push_back(i);
    }
  }

  std::string_view name() const override { return "bayes"; }
  void observe(const Observation&) override {}

  Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                             size_t n) override {
    const auto max_history = static_cast<size_t>(kMaxHistory.get());
    if (history.size() > max_history) {
      return resource_exhausted(fmt::format(
          "bayes: {} observations exceed wayfinder.bayes_max_history={}; a Gaussian process "
          "costs O(n^3) time and O(n^2) memory per proposal. Continue the study with --search "
          "deeptune or random, or raise the knob",
          history.size(), max_history));
    }
    std::set<uint64_t> seen;
    for (const auto& o : history)
      seen.insert(configuration_hash(o.config));
    // Seeded by the history's length: a resumed study proposes what it would have.
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + history.size());
    std::vector<Configuration> out;
    if (n == 0)
      return out;

    std::vector<size_t> ok;
    for (size_t i = 0; i < history.size(); ++i) {
      const auto& o = history[i];
      if (!is_failure(o.outcome) && o.objective && std::isfinite(*o.objective))
        ok.push_back(i);
    }
    if (dims_ == 0 || free_.empty() || ok.size() < 2 ||
        history.size() < static_cast<size_t>(kInitialRandom.get())) {
      add_random(seen, rng, n, &out);
      return out;
    }

    // Targets: ok objectives standardized; failures below the worst (see the file comment);
    // ok trials without an objective say nothing about the objective and are left out.
    double mean = 0;
    for (size_t i : ok)
      mean += *history[i].objective;
    mean /= static_cast<double>(ok.size());
    double var = 0;
    for (size_t i : ok)
      var += (*history[i].objective - mean) * (*history[i].objective - mean);
    double sd = std::sqrt(var / static_cast<double>(ok.size()));
    if (!(sd > 1e-12 * std::max(1.0, std::abs(mean))))
      sd = 1;  // all equal so far: nothing to scale by
    double best = -std::numeric_limits<double>::infinity();
    double worst = std::numeric_limits<double>::infinity();
    for (size_t i : ok) {
      const double z = (*history[i].objective - mean) / sd;
      best = std::max(best, z);
      worst = std::min(worst, z);
    }
    const double failed_target = worst - kFailureMargin.get();
    std::vector<size_t> rows;
    for (size_t i = 0; i < history.size(); ++i) {
      const auto& o = history[i];
      if (is_failure(o.outcome) || (o.objective && std::isfinite(*o.objective)))
        rows.push_back(i);
    }
    const auto n_rows = static_cast<Index>(rows.size());
    const auto n_dims = static_cast<Index>(dims_);
    MatrixXd x(n_rows, n_dims);
    VectorXd y(n_rows);
    for (Index r = 0; r < n_rows; ++r) {
      const Observation& o = history[rows[static_cast<size_t>(r)]];
      x.row(r) = encode(o.config);
      y(r) = is_failure(o.outcome) ? failed_target : (*o.objective - mean) / sd;
    }

    const GpHyperparameters h = fit(x, y);
    auto gp = GaussianProcess::fit(x, y, h);
    if (!gp) {
      // Unreachable with the noise floor the fit keeps; sampling still makes progress.
      add_random(seen, rng, n, &out);
      return out;
    }

    // The pool: half uniform samples, half mutations of the best observations.
    const auto pool_size = static_cast<size_t>(kCandidates.get());
    Pool pool;
    std::set<uint64_t> pooled = seen;
    const auto add = [&](Configuration c) {
      if (pooled.insert(configuration_hash(c)).second)
        pool.configs.push_back(std::move(c));
    };
    for (size_t i = 0; i < pool_size / 2; ++i)
      add(space_.sample(rng));
    std::vector<size_t> top = ok;
    std::stable_sort(top.begin(), top.end(), [&](size_t a, size_t b) {
      return *history[a].objective > *history[b].objective;
    });
    top.resize(std::min(top.size(), kTopObserved));
    const size_t per_top = (pool_size - pool_size / 2) / top.size();
    for (size_t t : top) {
      for (size_t k = 0; k < per_top; ++k)
        add(mutate(history[t].config, rng));
    }
    const double xi = kXi.get();
    score(*gp, best, xi, 0, &pool);
    // Hill-climb from the most promising candidates: the pool is coarse in many dimensions.
    for (int round = 0; round < kRefineRounds && !pool.configs.empty(); ++round) {
      const size_t first_new = pool.configs.size();
      for (size_t i : pool.ranked(kRefineTop)) {
        const Configuration base = pool.configs[i];
        for (size_t k = 0; k < kRefineMutations; ++k)
          add(mutate(base, rng));
      }
      score(*gp, best, xi, first_new, &pool);
    }

    // Batches by the kriging believer: each pick joins the model at its predicted mean, which
    // shrinks the variance around it so the next pick goes elsewhere.
    std::vector<bool> taken(pool.configs.size(), false);
    for (size_t pick = 0; pick < n; ++pick) {
      size_t choice = pool.configs.size();
      for (size_t i = 0; i < pool.configs.size(); ++i) {
        if (taken[i])
          continue;
        if (choice == pool.configs.size() || pool.better(i, choice))
          choice = i;
      }
      if (choice == pool.configs.size())
        break;
      taken[choice] = true;
      out.push_back(pool.configs[choice]);
      seen.insert(configuration_hash(pool.configs[choice]));
      if (pick + 1 == n)
        break;
      const auto k = gp->inputs().rows();
      MatrixXd xb(k + 1, n_dims);
      xb.topRows(k) = gp->inputs();
      xb.row(k) = pool.x.row(static_cast<Index>(choice));
      VectorXd yb(k + 1);
      yb.head(k) = gp->targets();
      yb(k) = pool.mean[choice];
      best = std::max(best, pool.mean[choice]);
      auto next = GaussianProcess::fit(std::move(xb), std::move(yb), h);
      if (!next)
        break;
      gp = std::move(next);
      score(*gp, best, xi, 0, &pool);
    }
    if (out.size() < n)
      add_random(seen, rng, n - out.size(), &out);
    return out;
  }

 private:
  // Candidates with their encodings and scores.
  struct Pool {
    std::vector<Configuration> configs;
    MatrixXd x;  // encodings, one row per config
    std::vector<double> mean, ei;

    // Higher expected improvement first; where the model sees none anywhere (σ ≈ 0 and the
    // mean below the best), the higher mean.
    bool better(size_t a, size_t b) const {
      if (ei[a] != ei[b])
        return ei[a] > ei[b];
      return mean[a] > mean[b];
    }
    std::vector<size_t> ranked(size_t k) const {
      std::vector<size_t> idx(configs.size());
      std::iota(idx.begin(), idx.end(), size_t{0});
      k = std::min(k, idx.size());
      std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                        [&](size_t a, size_t b) { return better(a, b); });
      idx.resize(k);
      return idx;
    }
  };

  Eigen::RowVectorXd encode(const Configuration& c) const {
    const std::vector<double> e = space_.encode(c);
    return Eigen::Map<const Eigen::RowVectorXd>(e.data(), static_cast<Index>(e.size()));
  }

  GpHyperparameters fit(const MatrixXd& x, const VectorXd& y) const {
    const GpFitOptions options{.ard = dims_ <= static_cast<size_t>(kArdMaxDims.get())};
    const auto limit = static_cast<Index>(kFitPoints.get());
    if (x.rows() <= limit)
      return fit_hyperparameters(x, y, options);
    // An even subsample keeps crashes and successes in their proportions; hyper-parameters are
    // global properties of the objective that a few hundred points pin down.
    MatrixXd xs(limit, x.cols());
    VectorXd ys(limit);
    for (Index i = 0; i < limit; ++i) {
      const Index from = i * x.rows() / limit;
      xs.row(i) = x.row(from);
      ys(i) = y(from);
    }
    return fit_hyperparameters(xs, ys, options);
  }

  // Scores pool entries from `first` on (or, with first = 0, all of them) under `gp`.
  void score(const GaussianProcess& gp, double best, double xi, size_t first, Pool* pool) const {
    const size_t total = pool->configs.size();
    const auto n_dims = static_cast<Index>(dims_);
    const auto old_rows = pool->x.rows();
    if (static_cast<size_t>(old_rows) < total) {
      pool->x.conservativeResize(static_cast<Index>(total), n_dims);
      for (size_t i = static_cast<size_t>(old_rows); i < total; ++i)
        pool->x.row(static_cast<Index>(i)) = encode(pool->configs[i]);
    }
    if (first >= total)
      return;
    VectorXd mean, var;
    gp.predict(pool->x.middleRows(static_cast<Index>(first), static_cast<Index>(total - first)),
               &mean, &var);
    pool->mean.resize(total);
    pool->ei.resize(total);
    for (size_t i = first; i < total; ++i) {
      const auto r = static_cast<Index>(i - first);
      pool->mean[i] = mean(r);
      pool->ei[i] = expected_improvement(mean(r), std::sqrt(var(r)), best, xi);
    }
  }

  // Changes one to three free parameters: numbers by a Gaussian step in the unit scale the
  // model sees (a small, medium or large one), booleans flipped, enums to another value.
  Configuration mutate(const Configuration& c, std::mt19937_64& rng) const {
    return space_.neighbour(c, rng);
  }

  void add_random(std::set<uint64_t>& seen, std::mt19937_64& rng, size_t n,
                  std::vector<Configuration>* out) const {
    for (size_t i = 0; i < n; ++i) {
      Configuration c = space_.sample(rng);
      for (int attempt = 0; attempt < kRandomAttempts && seen.contains(configuration_hash(c));
           ++attempt) {
        c = space_.sample(rng);
      }
      if (!seen.insert(configuration_hash(c)).second)
        break;  // the space looks exhausted
      out->push_back(std::move(c));
    }
  }

  const Space& space_;
  uint64_t seed_;
  size_t dims_;
  std::vector<size_t> free_;  // parameters a mutation may change
};

}  // namespace

Result<std::unique_ptr<Searcher>> make_bayes_search(const Space& space,
                                                    const SearchOptions& options) {
  const size_t dims = space.encoded_names().size();
  const auto limit = static_cast<size_t>(kMaxDims.get());
  if (dims > limit) {
    return invalid_argument(fmt::format(
        "bayes: the space encodes to {} dimensions ({} parameters, enum values one-hot), more "
        "than wayfinder.bayes_max_dims={}; a Gaussian process models such spaces poorly. Use "
        "--search deeptune or random, pin parameters, or raise the knob",
        dims, space.parameters().size(), limit));
  }
  if (!options.model_in.empty()) {
    return invalid_argument(fmt::format(
        "bayes cannot start warm from a saved model ({}): it refits from the study's own "
        "history; drop --warm-start or use --search deeptune",
        options.model_in));
  }
  return std::unique_ptr<Searcher>(std::make_unique<BayesSearch>(space, options.seed));
}

}  // namespace sluice::wf
