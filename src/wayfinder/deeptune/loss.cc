#include "wayfinder/deeptune/loss.h"

namespace sluice::wf::deeptune {

torch::Tensor crash_loss(const torch::Tensor& logits, const torch::Tensor& crashed) {
  return torch::nn::functional::cross_entropy(logits, crashed);
}

torch::Tensor regression_loss(const torch::Tensor& y_pred, const torch::Tensor& log_var,
                              const torch::Tensor& y) {
  if (y.numel() == 0)
    return torch::zeros({}, y_pred.options());
  return (0.5 * torch::exp(-log_var) * (y - y_pred).pow(2) + 0.5 * log_var).mean();
}

torch::Tensor chamfer_loss(const torch::Tensor& points, const torch::Tensor& centroids) {
  if (points.size(0) == 0 || centroids.size(0) == 0)
    return torch::zeros({}, centroids.options());
  const torch::Tensor d = mean_squared_distances(points, centroids);
  return std::get<0>(d.min(1)).mean() + std::get<0>(d.min(0)).mean();
}

LossTerms dtm_loss(DtmImpl& model, const ModelOutput& out, const torch::Tensor& crashed,
                   const torch::Tensor& ok, const torch::Tensor& y) {
  LossTerms t;
  t.cce = crash_loss(out.crash_logits, crashed);
  t.reg = regression_loss(out.y.index_select(0, ok), out.log_var.index_select(0, ok), y);
  t.cham = torch::zeros({}, out.y.options());
  for (size_t l = 0; l < out.rbf_inputs.size(); ++l)
    t.cham = t.cham + chamfer_loss(out.rbf_inputs[l].detach(), model.centroids(l));
  t.total = t.cce + t.reg + t.cham;
  return t;
}

}  // namespace sluice::wf::deeptune
