// Gaussian-process regression with a Matérn 5/2 kernel, for the "bayes" searcher.
//
// Inputs are the rows of a matrix (one training point per row), targets a vector; the prior mean
// is zero, so callers standardize their targets first. The kernel is
//
//   k(x, x') = σ² (1 + √5 r + 5r²/3) exp(−√5 r),   r = ‖(x − x') / ℓ‖
//
// with one length scale ℓ for every input column (isotropic) or one per column (ARD), plus
// observation noise σn² on the diagonal. Hyper-parameters are fitted by maximizing the log
// marginal likelihood over their logarithms inside a fixed box (fit_hyperparameters).
//
// Cost: conditioning is O(n³) time and O(n²) memory in the number of training points n; one
// prediction is O(n·d) for the mean and O(n²) for the variance.
//
// Thread safety: a GaussianProcess is immutable after fit(); the free functions keep no state.
#pragma once

#include <optional>

#include <Eigen/Dense>

namespace sluice::wf {

// The Matérn 5/2 covariance at a distance already divided by the length scale.
double matern52(double scaled_distance, double signal_variance);
inline double matern52(double distance, double length_scale, double signal_variance) {
  return matern52(distance / length_scale, signal_variance);
}

struct GpHyperparameters {
  Eigen::VectorXd length_scales = Eigen::VectorXd::Ones(1);  // size 1: isotropic; d: ARD
  double signal_variance = 1;
  double noise_variance = 1e-2;
};

// log p(y | x, h), or nullopt when the covariance cannot be factored even with jitter. With
// `gradient`, also its gradient with respect to (log ℓ₁ … log ℓ_L, log σ², log σn²).
// REQUIRES: x.rows() == y.size() > 0; h.length_scales has size 1 or x.cols().
std::optional<double> log_marginal_likelihood(const Eigen::MatrixXd& x, const Eigen::VectorXd& y,
                                              const GpHyperparameters& h,
                                              Eigen::VectorXd* gradient = nullptr);

struct GpFitOptions {
  bool ard = false;         // one length scale per input column
  int restarts = 2;         // L-BFGS runs, from the best points of a fixed grid
  int max_iterations = 60;  // of L-BFGS, per run
};
// Hyper-parameters maximizing the log marginal likelihood: a fixed grid of starting points is
// screened, and L-BFGS climbs from the best `restarts` of them (deterministic: the same data
// gives the same answer). Length scales stay within
// [0.01, 100·√d] (isotropic) or [0.01, 100] (ARD), σ² within [0.01, 100], σn² within [1e-6, 10].
// REQUIRES: x.rows() == y.size() > 0.
GpHyperparameters fit_hyperparameters(const Eigen::MatrixXd& x, const Eigen::VectorXd& y,
                                      const GpFitOptions& options = {});

class GaussianProcess {
 public:
  // The posterior given the training data; nullopt when the covariance cannot be factored even
  // with jitter (which a noise variance ≥ 1e-6 rules out in practice).
  // REQUIRES: x.rows() == y.size() > 0; h.length_scales has size 1 or x.cols().
  static std::optional<GaussianProcess> fit(Eigen::MatrixXd x, Eigen::VectorXd y,
                                            GpHyperparameters h);

  // Posterior mean and variance of the latent function (noise excluded) at the rows of `xs`.
  void predict(const Eigen::MatrixXd& xs, Eigen::VectorXd* mean, Eigen::VectorXd* variance) const;

  double log_marginal_likelihood() const { return lml_; }
  const GpHyperparameters& hyperparameters() const { return h_; }
  const Eigen::MatrixXd& inputs() const { return x_; }
  const Eigen::VectorXd& targets() const { return y_; }

 private:
  GaussianProcess() = default;

  Eigen::MatrixXd x_;
  Eigen::VectorXd y_;
  GpHyperparameters h_;
  Eigen::MatrixXd scaled_x_;  // x_ with each column divided by its length scale
  Eigen::LLT<Eigen::MatrixXd> llt_;
  Eigen::VectorXd alpha_;  // K⁻¹ y
  double lml_ = 0;
};

// Expected improvement of a maximization over `best` by at least `xi`:
//   EI = (μ − best − ξ) Φ(z) + σ φ(z),  z = (μ − best − ξ) / σ;  max(μ − best − ξ, 0) when σ = 0.
double expected_improvement(double mean, double sd, double best, double xi);

}  // namespace sluice::wf
