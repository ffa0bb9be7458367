// A DTM with its optimizer, trained incrementally: the network and Adam's moments persist
// between updates, and each update runs a few more epochs over everything observed so far.
//
// Thread safety: one thread at a time. Errors: libtorch throws c10::Error; callers catch.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "wayfinder/deeptune/model.h"
#include "wayfinder/deeptune/scoring.h"

namespace sluice::wf::deeptune {

struct TrainingSet {
  torch::Tensor x;        // [N, D] z-scored inputs
  torch::Tensor crashed;  // [N] int64, 1 for any failure
  torch::Tensor ok;       // [M] int64 row indices of trials with an objective
  torch::Tensor y;        // [M] their objectives, z-scored over the M
  double y_mean = 0, y_std = 1;
  int64_t rows() const { return x.defined() ? x.size(0) : 0; }
};

// `x` holds rows of `columns` floats; `crashed` and `objective` one entry per row.
TrainingSet make_training_set(std::span<const float> x, int64_t columns,
                              std::span<const uint8_t> crashed,
                              std::span<const std::optional<double>> objective);

class Learner {
 public:
  Learner(const ModelOptions& options, double learning_rate);

  // `epochs` passes over `data` (full batch up to 512 rows, shuffled batches of 256 beyond),
  // with dropout drawn from `seed`.
  void fit(const TrainingSet& data, int64_t epochs, uint64_t seed);
  // Inference (no dropout, no gradients).
  PoolPredictions predict(const torch::Tensor& x);
  // How strongly the predicted performance reacts to each input column around the rows of `x`:
  // the mean over rows of |∂ŷ/∂x| ([D]; no dropout; the weights' gradients are left zeroed).
  torch::Tensor saliency(const torch::Tensor& x);

  Dtm& model() { return model_; }
  // After the weights were replaced (a loaded model): Adam's moments no longer match them.
  void reset_optimizer();

 private:
  double learning_rate_;
  Dtm model_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
};

}  // namespace sluice::wf::deeptune
