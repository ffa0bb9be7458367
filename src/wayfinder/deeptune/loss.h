// DeepTune's training loss (§3.2): L = L_CCE + L_Reg + L_Cham, each term on its own so it can be
// checked against a hand computation.
#pragma once

#include <torch/torch.h>

#include "wayfinder/deeptune/model.h"

namespace sluice::wf::deeptune {

// Categorical cross-entropy of the crash logits [N, 2] against labels [N] (int64: 0 ok, 1 any
// failure), mean over the batch.
torch::Tensor crash_loss(const torch::Tensor& logits, const torch::Tensor& crashed);

// Kendall & Gal's heteroscedastic regression loss, mean over the batch of
//   0.5·exp(-s)·(y - ŷ)² + 0.5·s,   s = log σ̂².
// An empty batch (no ok trial yet) costs 0.
torch::Tensor regression_loss(const torch::Tensor& y_pred, const torch::Tensor& log_var,
                              const torch::Tensor& y);

// The Chamfer distance between a point set [N, d] and centroids [K, d], both directions:
//   mean_i min_j ‖p_i - c_j‖²/d + mean_j min_i ‖p_i - c_j‖²/d
// (per-column squared distance, as Equation 1 uses it). 0 for identical sets.
torch::Tensor chamfer_loss(const torch::Tensor& points, const torch::Tensor& centroids);

struct LossTerms {
  torch::Tensor cce, reg, cham, total;
};
// The whole loss for one batch: `crashed` labels every row, `ok` indexes the rows with an
// objective and `y` holds their z-scored objectives. L_Cham sums over the RBF layers and pulls
// only the centroids (the layer inputs are detached).
LossTerms dtm_loss(DtmImpl& model, const ModelOutput& out, const torch::Tensor& crashed,
                   const torch::Tensor& ok, const torch::Tensor& y);

}  // namespace sluice::wf::deeptune
