// DeepTune as a Searcher (§3.2, Figure 3): each propose() draws a pool of unique random
// configurations (①), predicts them with the DTM (②), drops the likely crashes and ranks the rest
// with the scoring function (③, scoring.h); the study evaluates the best (④) and observe() adds
// the result to the training set, on which the next propose() updates the model (⑤).
//
// Training is lazy: observe() only records, and propose(), save_model() and explain() first bring
// the model up to date, running `epochs` passes per observation that arrived since the last
// update, at most ten observations' worth (so a resumed study, which replays its whole history
// and then proposes, starts from a well-trained model without paying for every past update).
// The network and Adam's state persist between updates. Until there are min_observations
// observations with at least one ok trial (and no warm model), proposals are diverse random
// ones: the candidate farthest from everything evaluated (ds alone).
//
// Reproducible: the pool is seeded from (seed, history size) like random search, torch from
// (seed, observations) before every update; libtorch runs on `threads` intra-op threads.
//
// Errors: no exception leaves this class; libtorch's become Status kInternal.
// Thread safety: one thread at a time (the study loop's).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/wayfinder/search.h"
#include "wayfinder/deeptune/columns.h"
#include "wayfinder/deeptune/learner.h"

namespace sluice::wf::deeptune {

struct Hyper {
  ModelOptions model;  // .inputs is set from the space
  double learning_rate = 0.01;
  int64_t epochs = 10;
  int64_t pool = 1000;
  double local_share = 0.5;      // of the pool: neighbours of the best ok configurations
  double recombine_share = 0.5;  // of those: crossovers of the best, then one move
  double guided_share = 0.5;     // of a neighbour's parameter choices: by the model's sensitivity
  double density_share = 0.5;    // of the rest of the pool: around the best tenth (TPE's l(x))
  double alpha = 0.5;
  double crash_threshold = 0.5;
  int64_t min_observations = 3;
  int64_t threads = 1;
  // In a warm start, the share of proposals ranked by a second model that starts untrained and
  // learns from this study alone (the rest by the transferred model).
  double warm_hedge = 0.5;
};
// The wayfinder.deeptune_* knobs' current values.
Hyper hyper_from_knobs();

class DeepTuneSearch final : public Searcher {
 public:
  // REQUIRES: `space` outlives the searcher.
  DeepTuneSearch(const Space& space, uint64_t seed, Hyper hyper);

  std::string_view name() const override { return "deeptune"; }
  Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                             size_t n) override;
  void observe(const Observation& obs) override;
  bool keeps_model() const override { return true; }
  Status save_model(const std::string& path) override;
  Result<Insight> explain(std::span<const Observation> history) override;

  // Transfer learning (§3.3, model_io.cc): starts from the model in `path`, saved by
  // save_model() for this or another space. Errors: not found, data loss (not a DeepTune model,
  // truncated, inconsistent), with the path.
  Status load_model(const std::string& path);

  // For tests and explain(): the model brought up to date with everything observed, and its
  // predictions for some configurations (ŷ and σ̂ in the objective's z-score units).
  Status train();
  Result<PoolPredictions> predict(std::span<const Configuration> configs);
  const Columns& columns() const { return columns_; }
  // Per parameter of the space, how likely a neighbour in the candidate pool changes it: a
  // guided_share by the trained model's sensitivity to it (mean |∂ŷ/∂x| over the trials), the
  // rest uniform; sums to 1. Empty before the model has been trained or loaded.
  std::vector<double> neighbour_weights();
  // Whether the proposal after `observations` observations is ranked by the study's own model
  // rather than the transferred one (a warm start with warm_hedge > 0, once that model trained).
  bool own_model_proposes(size_t observations) const;
  Learner& learner() { return *learner_; }
  // A warm start's own model (own_ below), or null.
  Learner* own_model() { return own_.get(); }
  const Hyper& hyper() const { return hyper_; }
  bool warm() const { return warm_; }
  // The configurations a warm start carried over from the model's study, mapped into this space.
  const std::vector<Configuration>& carried() const { return carried_; }
  size_t observations() const { return crashed_.size(); }

 private:
  void reset_observations(std::span<const Observation> history);
  bool has_enough_data() const;
  void update();  // throws c10::Error
  std::vector<double> neighbour_weights(Learner& learner);
  torch::Tensor encode(std::span<const Configuration> configs) const;
  std::vector<Configuration> propose_unchecked(std::span<const Observation> history, size_t n);
  Insight explain_unchecked(std::span<const Observation> history);
  void save_unchecked(const std::string& path);

  const Space& space_;
  uint64_t seed_;
  Hyper hyper_;
  Columns columns_;
  std::unique_ptr<Learner> learner_;
  // A warm start's second model, initialized as a cold study's and trained on this study's
  // observations only: a transferred model can be sure of what no longer holds (a value that
  // was bad in the source and is the best here), and ranks what would show it last.
  std::unique_ptr<Learner> own_;
  std::vector<float> x_;  // observed configurations, z-scored, row-major
  std::vector<uint8_t> crashed_;
  std::vector<std::optional<double>> objective_;
  // This study's best ok configurations, best first (at most kCarriedTrials): saved with the
  // model, so that a warm start can draw around them.
  std::vector<std::pair<double, Configuration>> top_;
  // A warm start's carried configurations, mapped into this space (load_model): parents of the
  // pool's neighbours and density draws until the study has ok trials of its own.
  std::vector<Configuration> carried_;
  size_t trained_rows_ = 0;
  bool trained_ = false;  // fitted at least once on this study's observations
  bool warm_ = false;     // started from a saved, trained model
  double y_mean_ = 0, y_std_ = 1;
};

}  // namespace sluice::wf::deeptune
