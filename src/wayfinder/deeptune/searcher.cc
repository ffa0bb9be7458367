#include "wayfinder/deeptune/searcher.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <random>
#include <set>

#include "sluice/common/log.h"
#include "wayfinder/deeptune/deeptune.h"
#include "wayfinder/deeptune_knobs.h"

namespace sluice::wf::deeptune {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
// Epochs per update are capped at this many observations' worth.
constexpr int64_t kMaxCatchUp = 10;
// The neighbours in the pool are drawn around this many of the best ok configurations.
constexpr size_t kNeighbourBases = 5;
// TPE's split (Optuna's default γ): the best tenth of the ok trials, at least a few, at most 25.
size_t density_parents(size_t ok) {
  return std::clamp<size_t>((ok + 9) / 10, std::min<size_t>(ok, 3), 25);
}
// Crossovers draw from the best fifth of the ok configurations, within these bounds.
constexpr size_t kMinParents = 3;
constexpr size_t kMaxParents = 10;
// A saved model carries its study's best ok configurations, at most this many.
constexpr size_t kCarriedTrials = 8;

Status torch_error(std::string_view what, const std::exception& e) {
  std::string msg = e.what();
  // c10::Error appends a C++ backtrace; its first line says what went wrong.
  if (auto nl = msg.find('\n'); nl != std::string::npos)
    msg.resize(nl);
  return internal_error(fmt::format("deeptune: {}: {}", what, msg));
}

}  // namespace

Hyper hyper_from_knobs() {
  Hyper h;
  h.model.layers = kDeepTuneLayers.get();
  h.model.hidden = kDeepTuneHidden.get();
  h.model.centroids = kDeepTuneCentroids.get();
  h.model.dropout = kDeepTuneDropout.get();
  h.model.gamma = kDeepTuneGamma.get();
  h.learning_rate = kDeepTuneLearningRate.get();
  h.epochs = kDeepTuneEpochs.get();
  h.pool = kDeepTunePool.get();
  h.local_share = kDeepTuneLocalShare.get();
  h.recombine_share = kDeepTuneRecombineShare.get();
  h.guided_share = kDeepTuneGuidedShare.get();
  h.density_share = kDeepTuneDensityShare.get();
  h.alpha = kDeepTuneAlpha.get();
  h.crash_threshold = kDeepTuneCrashThreshold.get();
  h.min_observations = kDeepTuneMinObservations.get();
  h.threads = kDeepTuneThreads.get();
  h.warm_hedge = kDeepTuneWarmHedge.get();
  return h;
}

DeepTuneSearch::DeepTuneSearch(const Space& space, uint64_t seed, Hyper hyper)
    : space_(space), seed_(seed), hyper_(hyper), columns_(make_columns(space)) {
  hyper_.model.inputs = static_cast<int64_t>(columns_.size());
  torch::manual_seed(seed_);
  learner_ = std::make_unique<Learner>(hyper_.model, hyper_.learning_rate);
}

void DeepTuneSearch::observe(const Observation& obs) {
  append_normalized(space_, columns_, obs.config, x_);
  crashed_.push_back(is_failure(obs.outcome) ? 1 : 0);
  objective_.push_back(is_failure(obs.outcome) ? std::nullopt : obs.objective);
  if (is_failure(obs.outcome) || !obs.objective)
    return;
  auto at = std::find_if(top_.begin(), top_.end(),
                         [&](const auto& t) { return t.first < *obs.objective; });
  if (static_cast<size_t>(at - top_.begin()) < kCarriedTrials) {
    top_.insert(at, {*obs.objective, obs.config});
    if (top_.size() > kCarriedTrials)
      top_.pop_back();
  }
}

void DeepTuneSearch::reset_observations(std::span<const Observation> history) {
  x_.clear();
  crashed_.clear();
  objective_.clear();
  top_.clear();
  trained_rows_ = 0;
  for (const Observation& o : history)
    observe(o);
}

bool DeepTuneSearch::has_enough_data() const {
  const bool any_ok = std::any_of(objective_.begin(), objective_.end(),
                                  [](const auto& o) { return o.has_value(); });
  return any_ok && static_cast<int64_t>(crashed_.size()) >= hyper_.min_observations;
}

void DeepTuneSearch::update() {
  if (!has_enough_data() || trained_rows_ == crashed_.size())
    return;
  const auto fresh =
      static_cast<int64_t>(crashed_.size() - std::min(trained_rows_, crashed_.size()));
  const TrainingSet data =
      make_training_set(x_, static_cast<int64_t>(columns_.size()), crashed_, objective_);
  learner_->fit(data, hyper_.epochs * std::clamp<int64_t>(fresh, 1, kMaxCatchUp),
                seed_ * kGolden + crashed_.size());
  // The same epochs and dropout draws as a cold study's model: own_ is that model.
  if (own_ != nullptr)
    own_->fit(data, hyper_.epochs * std::clamp<int64_t>(fresh, 1, kMaxCatchUp),
              seed_ * kGolden + crashed_.size());
  y_mean_ = data.y_mean;
  y_std_ = data.y_std;
  trained_rows_ = crashed_.size();
  trained_ = true;
}

Status DeepTuneSearch::train() {
  try {
    update();
    return Status();
  } catch (const std::exception& e) {
    return torch_error("training the model", e);
  }
}

bool DeepTuneSearch::own_model_proposes(size_t observations) const {
  if (own_ == nullptr || !trained_ || hyper_.warm_hedge <= 0)
    return false;
  // Spread evenly: the proposal after n observations is the own model's when n·h crosses an
  // integer on the way to (n + 1)·h.
  const double h = hyper_.warm_hedge;
  return std::floor(static_cast<double>(observations + 1) * h) >
         std::floor(static_cast<double>(observations) * h);
}

std::vector<double> DeepTuneSearch::neighbour_weights() {
  return neighbour_weights(*learner_);
}

std::vector<double> DeepTuneSearch::neighbour_weights(Learner& learner) {
  if ((!trained_ && !warm_) || hyper_.guided_share <= 0 || crashed_.empty())
    return {};
  const auto width = static_cast<int64_t>(columns_.size());
  const torch::Tensor x =
      torch::from_blob(x_.data(), {static_cast<int64_t>(crashed_.size()), width}, torch::kFloat32);
  torch::Tensor s;
  try {
    s = learner.saliency(x);
  } catch (const std::exception& e) {
    // Uniform moves are still a valid pool; nothing is lost but the guidance.
    SLUICE_LOG(warn, "deeptune: neighbour guidance off for this proposal: {}", e.what());
    return {};
  }
  const auto acc = s.accessor<float, 1>();
  std::vector<double> raw(space_.parameters().size(), 0);
  double total = 0;
  for (const ParameterColumns& pc : columns_.parameters) {
    for (size_t col = pc.begin; col < pc.end; ++col)
      raw[pc.parameter] += static_cast<double>(acc[static_cast<int64_t>(col)]);
    total += raw[pc.parameter];
  }
  if (!(total > 0))
    return {};
  // Mixed with a uniform share: a parameter the model has not yet seen matter (it never varied
  // among the trials that did well) must still get moved now and then.
  const double uniform =
      (1 - hyper_.guided_share) / static_cast<double>(columns_.parameters.size());
  std::vector<double> w(raw.size(), 0);
  for (const ParameterColumns& pc : columns_.parameters)
    w[pc.parameter] = uniform + hyper_.guided_share * raw[pc.parameter] / total;
  return w;
}

torch::Tensor DeepTuneSearch::encode(std::span<const Configuration> configs) const {
  std::vector<float> rows;
  rows.reserve(configs.size() * columns_.size());
  for (const Configuration& c : configs)
    append_normalized(space_, columns_, c, rows);
  return torch::from_blob(
             rows.data(),
             {static_cast<int64_t>(configs.size()), static_cast<int64_t>(columns_.size())},
             torch::kFloat32)
      .clone();
}

Result<PoolPredictions> DeepTuneSearch::predict(std::span<const Configuration> configs) {
  try {
    update();
    return learner_->predict(encode(configs));
  } catch (const std::exception& e) {
    return torch_error("predicting", e);
  }
}

std::vector<Configuration> DeepTuneSearch::propose_unchecked(std::span<const Observation> history,
                                                             size_t n) {
  if (crashed_.size() != history.size())
    reset_observations(history);  // the history is the truth; observe() calls were missed
  std::set<uint64_t> seen;
  for (const Observation& o : history)
    seen.insert(configuration_hash(o.config));
  // ① A pool of unique, unseen configurations, seeded like random search so that a resumed
  // study proposes what it would have: neighbours of the best ok configurations (a share of
  // the pool) and uniform samples. Uniform samples alone almost never land near an optimum
  // that needs several of hundreds of parameters right at once, however well the model ranks
  // them; the neighbours let the model exploit what it learned, the samples keep exploring.
  std::mt19937_64 rng(seed_ * kGolden + history.size());
  const auto pool_size = static_cast<size_t>(std::max<int64_t>(hyper_.pool, 1));
  const size_t wanted = std::max(pool_size, n);
  std::vector<Configuration> pool;
  pool.reserve(wanted);
  std::vector<size_t> best;
  for (size_t i = 0; i < history.size(); ++i) {
    if (!is_failure(history[i].outcome) && history[i].objective)
      best.push_back(i);
  }
  // A warm start also draws around the configurations it carried over (§3.3 transfers the
  // model; these are where that model's study did best): all of them while the study has no ok
  // trial, fewer as its own arrive, none once it has twice as many ok trials as it carried.
  const size_t carried = warm_ ? carried_.size() : 0;
  const size_t borrowed =
      carried == 0 || best.size() >= 2 * carried
          ? 0
          : (carried * (2 * carried - best.size()) + 2 * carried - 1) / (2 * carried);
  const size_t bases = std::min(kNeighbourBases, best.size());
  const size_t parents =
      std::min(best.size(), std::clamp(best.size() / 5, kMinParents, kMaxParents));
  std::partial_sort(
      best.begin(), best.begin() + static_cast<std::ptrdiff_t>(std::max(bases, parents)),
      best.end(),
      [&](size_t a, size_t b) { return *history[a].objective > *history[b].objective; });
  // The parents of the draws around the best (below): the best tenth, in full order.
  std::vector<size_t> good_trials = best;
  std::sort(good_trials.begin(), good_trials.end(),
            [&](size_t a, size_t b) { return *history[a].objective > *history[b].objective; });
  good_trials.resize(density_parents(good_trials.size()));
  std::vector<const Configuration*> elite;
  for (size_t i = 0; i < parents; ++i)
    elite.push_back(&history[best[i]].config);
  std::vector<const Configuration*> base_configs;
  for (size_t i = 0; i < bases; ++i)
    base_configs.push_back(&history[best[i]].config);
  for (size_t i = 0; i < borrowed; ++i) {
    elite.push_back(&carried_[i]);
    base_configs.push_back(&carried_[i]);
    // The carried configurations themselves are candidates too: the warm model ranks them.
    if (seen.insert(configuration_hash(carried_[i])).second)
      pool.push_back(carried_[i]);
  }
  const size_t local =
      (has_enough_data() || warm_) && !base_configs.empty()
          ? static_cast<size_t>(std::llround(hyper_.local_share * static_cast<double>(wanted)))
          : 0;
  update();
  // A warm start hedges: some proposals are ranked by the study's own model (own_).
  Learner& ranker = own_model_proposes(history.size()) ? *own_ : *learner_;
  // Neighbours move the parameters the model's prediction is most sensitive to more often: in a
  // space of hundreds of parameters of which a few matter, uniform moves rarely touch those.
  const std::vector<double> weights = local > 0 ? neighbour_weights(ranker) : std::vector<double>{};
  // Some neighbours are crossovers of the best instead: each parameter from one of them, then
  // one move. Where the objective is mostly a sum over a few parameters (as configuration
  // spaces often are), this joins the good values that different trials found; moving around
  // one base only keeps that base's mistakes.
  const size_t recombined =
      elite.size() >= 2
          ? static_cast<size_t>(std::llround(hyper_.recombine_share * static_cast<double>(local)))
          : 0;
  for (size_t attempt = 0; pool.size() < local && attempt < 4 * local + 100; ++attempt) {
    const bool cross = pool.size() < recombined;
    const Configuration& base = *base_configs[attempt % base_configs.size()];
    Configuration c = cross ? space_.neighbour(space_.recombine(elite, rng), rng, 1, weights)
                      : weights.empty() ? space_.neighbour(base, rng)
                                        : space_.neighbour(base, rng, 3, weights);
    if (seen.insert(configuration_hash(c)).second)
      pool.push_back(std::move(c));
  }
  // Part of the rest is drawn around the best tenth of the ok trials, each parameter from its
  // own density (TPE's l(x)): where few of hundreds of parameters matter, their good values
  // show up in the best trials long before a model can say which parameters they are.
  std::vector<const Configuration*> good;
  for (size_t i : good_trials)
    good.push_back(&history[i].config);
  for (size_t i = 0; i < borrowed; ++i)
    good.push_back(&carried_[i]);
  const size_t dense =
      (has_enough_data() || warm_) && !good.empty()
          ? pool.size() + static_cast<size_t>(std::llround(
                              hyper_.density_share * static_cast<double>(wanted - pool.size())))
          : pool.size();
  const double prior_weight = 1.0 / static_cast<double>(good.size() + 1);
  const std::vector<double> spreads = space_.unit_spreads(good);
  for (size_t attempt = 0; pool.size() < dense && attempt < 4 * wanted + 100; ++attempt) {
    Configuration c = space_.sample_around(good, spreads, rng, prior_weight);
    if (seen.insert(configuration_hash(c)).second)
      pool.push_back(std::move(c));
  }
  for (size_t attempt = 0; pool.size() < wanted && attempt < 4 * pool_size + 100; ++attempt) {
    Configuration c = space_.sample(rng);
    if (seen.insert(configuration_hash(c)).second)
      pool.push_back(std::move(c));
  }
  if (pool.empty() || n == 0)
    return {};
  const torch::Tensor candidates = encode(pool);
  const auto width = static_cast<int64_t>(columns_.size());
  const torch::Tensor evaluated =
      x_.empty() ? torch::zeros({0, width})
                 : torch::from_blob(x_.data(), {static_cast<int64_t>(crashed_.size()), width},
                                    torch::kFloat32);
  std::optional<PoolPredictions> predictions;
  if (trained_ || warm_)
    predictions = ranker.predict(candidates);  // ②
  const std::vector<int64_t> picks =           // ③
      select_candidates(candidates, evaluated, predictions ? &*predictions : nullptr, n,
                        hyper_.alpha, hyper_.crash_threshold);
  std::vector<Configuration> out;
  for (int64_t i : picks)
    out.push_back(std::move(pool[static_cast<size_t>(i)]));
  return out;
}

Result<std::vector<Configuration>> DeepTuneSearch::propose(std::span<const Observation> history,
                                                           size_t n) {
  try {
    return propose_unchecked(history, n);
  } catch (const std::exception& e) {
    return torch_error("proposing configurations", e);
  }
}

Result<std::unique_ptr<Searcher>> make_deeptune_search(const Space& space,
                                                       const SearchOptions& options) {
  try {
    const Hyper hyper = hyper_from_knobs();
    // Intra-op threads only: the benchmarks being tuned usually run on the same cores.
    torch::set_num_threads(static_cast<int>(hyper.threads));
    auto searcher = std::make_unique<DeepTuneSearch>(space, options.seed, hyper);
    if (!options.model_in.empty())
      SLUICE_RETURN_IF_ERROR(searcher->load_model(options.model_in));
    return std::unique_ptr<Searcher>(std::move(searcher));
  } catch (const std::exception& e) {
    return torch_error("creating the searcher", e);
  }
}

}  // namespace sluice::wf::deeptune
