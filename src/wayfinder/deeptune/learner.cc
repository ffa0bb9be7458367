#include "wayfinder/deeptune/learner.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "wayfinder/deeptune/loss.h"

namespace sluice::wf::deeptune {

TrainingSet make_training_set(std::span<const float> x, int64_t columns,
                              std::span<const uint8_t> crashed,
                              std::span<const std::optional<double>> objective) {
  TrainingSet t;
  const auto n = static_cast<int64_t>(crashed.size());
  t.x = torch::from_blob(const_cast<float*>(x.data()), {n, columns}, torch::kFloat32).clone();
  std::vector<int64_t> labels, ok;
  std::vector<double> ys;
  for (int64_t i = 0; i < n; ++i) {
    const auto u = static_cast<size_t>(i);
    labels.push_back(crashed[u] ? 1 : 0);
    if (!crashed[u] && objective[u] && std::isfinite(*objective[u])) {
      ok.push_back(i);
      ys.push_back(*objective[u]);
    }
  }
  double mean = 0, var = 0;
  for (double v : ys)
    mean += v;
  mean = ys.empty() ? 0 : mean / static_cast<double>(ys.size());
  for (double v : ys)
    var += (v - mean) * (v - mean);
  const double sd = ys.size() > 1 ? std::sqrt(var / static_cast<double>(ys.size() - 1)) : 0;
  t.y_mean = mean;
  t.y_std = sd > 1e-12 * std::max(1.0, std::abs(mean)) ? sd : 1;
  std::vector<float> yz;
  for (double v : ys)
    yz.push_back(static_cast<float>((v - t.y_mean) / t.y_std));
  t.crashed = torch::tensor(labels, torch::kInt64);
  t.ok = torch::tensor(ok, torch::kInt64);
  t.y = torch::tensor(yz, torch::kFloat32);
  return t;
}

Learner::Learner(const ModelOptions& options, double learning_rate)
    : learning_rate_(learning_rate), model_(options) {
  reset_optimizer();
}

void Learner::reset_optimizer() {
  optimizer_ = std::make_unique<torch::optim::Adam>(
      model_->parameters(), torch::optim::AdamOptions(learning_rate_).weight_decay(1e-4));
}

void Learner::fit(const TrainingSet& data, int64_t epochs, uint64_t seed) {
  const int64_t n = data.rows();
  if (n == 0)
    return;
  torch::manual_seed(seed);
  model_->train();
  constexpr int64_t kFullBatch = 512, kBatch = 256;
  // A row's position among the ok rows, for picking a batch's regression targets.
  std::vector<int64_t> ok_pos(static_cast<size_t>(n), -1);
  const auto ok_acc = data.ok.accessor<int64_t, 1>();
  for (int64_t k = 0; k < ok_acc.size(0); ++k)
    ok_pos[static_cast<size_t>(ok_acc[k])] = k;
  for (int64_t e = 0; e < epochs; ++e) {
    if (n <= kFullBatch) {
      optimizer_->zero_grad();
      const ModelOutput out = model_->forward(data.x);
      dtm_loss(*model_, out, data.crashed, data.ok, data.y).total.backward();
      optimizer_->step();
      continue;
    }
    const torch::Tensor order = torch::randperm(n, torch::kInt64);
    const auto order_acc = order.accessor<int64_t, 1>();
    for (int64_t b = 0; b < n; b += kBatch) {
      const int64_t end = std::min(n, b + kBatch);
      const torch::Tensor idx = order.slice(0, b, end);
      std::vector<int64_t> local_ok, target;
      for (int64_t i = b; i < end; ++i) {
        const int64_t pos = ok_pos[static_cast<size_t>(order_acc[i])];
        if (pos >= 0) {
          local_ok.push_back(i - b);
          target.push_back(pos);
        }
      }
      optimizer_->zero_grad();
      const ModelOutput out = model_->forward(data.x.index_select(0, idx));
      dtm_loss(*model_, out, data.crashed.index_select(0, idx),
               torch::tensor(local_ok, torch::kInt64),
               data.y.index_select(0, torch::tensor(target, torch::kInt64)))
          .total.backward();
      optimizer_->step();
    }
  }
}

torch::Tensor Learner::saliency(const torch::Tensor& x) {
  model_->eval();
  torch::Tensor in = x.detach().clone().set_requires_grad(true);
  model_->forward(in).y.sum().backward();
  torch::Tensor s = in.grad().abs().mean(0);
  optimizer_->zero_grad();
  return s;
}

PoolPredictions Learner::predict(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  model_->eval();
  const ModelOutput out = model_->forward(x);
  return {.crash = out.crash, .y = out.y, .sigma = out.sigma};
}

}  // namespace sluice::wf::deeptune
