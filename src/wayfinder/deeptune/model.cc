#include "wayfinder/deeptune/model.h"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::wf::deeptune {

torch::Tensor mean_squared_distances(const torch::Tensor& a, const torch::Tensor& b) {
  const double width = static_cast<double>(std::max<int64_t>(1, a.size(1)));
  // The expanded form costs one matrix product instead of an [A, B, width] difference tensor.
  const torch::Tensor aa = a.pow(2).sum(1, /*keepdim=*/true);
  const torch::Tensor bb = b.pow(2).sum(1).unsqueeze(0);
  return (aa + bb - 2 * torch::matmul(a, b.t())).clamp_min(0) / width;
}

torch::Tensor rbf_activation(const torch::Tensor& z, const torch::Tensor& centroids, double gamma) {
  return torch::exp(-mean_squared_distances(z, centroids) / (2 * gamma * gamma));
}

DtmImpl::DtmImpl(const ModelOptions& options) : options_(options) {
  int64_t in = options.inputs;
  int64_t rbf_in = options.inputs;
  for (int64_t l = 0; l < options.layers; ++l) {
    dense_.push_back(
        register_module(fmt::format("dense{}", l), torch::nn::Linear(in, options.hidden)));
    centroids_.push_back(register_parameter(fmt::format("rbf{}_centroids", l),
                                            torch::randn({options.centroids, rbf_in})));
    in = options.hidden;
    rbf_in = options.hidden + options.centroids;
  }
  head_ = register_module("head", torch::nn::Linear(in, 3));
  sigma_bias_ = register_parameter("sigma_bias", torch::zeros({1}));
  sigma_weight_ = register_parameter("sigma_weight", torch::zeros({options.centroids}));
}

ModelOutput DtmImpl::forward(const torch::Tensor& z) {
  ModelOutput out;
  torch::Tensor h = z;
  torch::Tensor r;
  for (size_t l = 0; l < dense_.size(); ++l) {
    torch::Tensor u = z;
    if (l > 0) {
      const torch::Tensor cat = torch::cat({h.detach(), r}, 1);
      u = torch::layer_norm(cat, {cat.size(1)});
    }
    r = rbf_activation(u, centroids_[l], options_.gamma);
    out.rbf_inputs.push_back(u);
    h = torch::dropout(torch::relu(dense_[l]->forward(h)), options_.dropout, is_training());
  }
  const torch::Tensor head = head_->forward(h);
  out.crash_logits = head.slice(1, 0, 2);
  out.crash = torch::softmax(out.crash_logits, 1).select(1, 1);
  out.y = head.select(1, 2);
  // Bounded so that exp(-s) in the regression loss cannot overflow.
  out.log_var = (sigma_bias_ - torch::matmul(r, torch::softplus(sigma_weight_))).clamp(-12, 12);
  out.sigma = torch::exp(0.5 * out.log_var);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> DtmImpl::named_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : named_parameters())
    out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace sluice::wf::deeptune
