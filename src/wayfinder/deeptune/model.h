// The DeepTune model (DTM, §3.2 and Figure 4): F(x) → (k̂, ŷ, σ̂).
//
// The prediction branch F^p is a stack of dense layers with ReLU and dropout; its last layer
// gives two crash logits (ok, crash), whose softmax is k̂, and the expected performance ŷ (in
// z-score units of the study's objective). The uncertainty branch F^u has one Gaussian RBF layer
// parallel to each dense layer (Equation 1). RBF layer 0 sees the model's input (z-scored
// columns); RBF layer l > 0 sees the concatenation of dense layer l-1's features and RBF layer
// l-1's activations, z-scored per sample (layer norm without affine) so that γ keeps the meaning
// the paper gives it ("γ = 0.1 on z-score normalized inputs").
//
// Choices the paper leaves open:
//   - ‖z - c‖² in Equation 1 is taken per column (the squared distance divided by the width of
//     z): with hundreds of z-scored columns the plain squared norm of unrelated points is in the
//     hundreds, and every activation would underflow to 0 whatever the data.
//   - σ̂ comes from the last RBF layer as log σ̂² = b - Σ_j softplus(w_j)·φ_j: every weight on
//     an activation is non-negative, so a configuration far from every centroid (all φ ≈ 0) gets
//     the largest uncertainty the model knows, exp(b/2) — the paper's "when an outlier appears,
//     the output is low" turned into a high σ̂.
//   - The dense features enter the RBF branch detached: the uncertainty branch learns from them
//     but cannot bend the prediction branch.
//
// Thread safety: a module is used by one thread at a time.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sluice::wf::deeptune {

struct ModelOptions {
  int64_t inputs = 0;  // encoded columns
  int64_t layers = 2;
  int64_t hidden = 64;
  int64_t centroids = 32;  // per RBF layer
  double dropout = 0.1;
  double gamma = 0.1;
};

struct ModelOutput {
  torch::Tensor crash_logits;             // [B, 2]: ok, crash
  torch::Tensor crash;                    // [B] k̂ in [0, 1]
  torch::Tensor y;                        // [B] ŷ
  torch::Tensor log_var;                  // [B] s = log σ̂²
  torch::Tensor sigma;                    // [B] σ̂ ≥ 0
  std::vector<torch::Tensor> rbf_inputs;  // [B, width of layer l]: what each RBF layer saw
};

// ‖a_i - b_j‖² / width for every pair: [A, B].
torch::Tensor mean_squared_distances(const torch::Tensor& a, const torch::Tensor& b);
// Equation 1 with the per-column distance above: exp(-‖z - c‖²/width / (2γ²)), [B, K].
torch::Tensor rbf_activation(const torch::Tensor& z, const torch::Tensor& centroids, double gamma);

class DtmImpl : public torch::nn::Module {
 public:
  explicit DtmImpl(const ModelOptions& options);
  ModelOutput forward(const torch::Tensor& z);

  const ModelOptions& options() const { return options_; }
  // Named tensors, as the model file stores them.
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() const;

  torch::nn::Linear& dense(size_t l) { return dense_[l]; }
  torch::Tensor& centroids(size_t l) { return centroids_[l]; }

 private:
  ModelOptions options_;
  std::vector<torch::nn::Linear> dense_;
  std::vector<torch::Tensor> centroids_;
  torch::nn::Linear head_{nullptr};
  torch::Tensor sigma_bias_;
  torch::Tensor sigma_weight_;
};
TORCH_MODULE(Dtm);

}  // namespace sluice::wf::deeptune
