// Gaussian-process regression (Matérn 5/2): likelihood, its gradient, fitting, prediction.
#include "wayfinder/gaussian_process.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

namespace sluice::wf {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

const double kSqrt5 = std::sqrt(5.0);

// Squared Euclidean distances between the rows of a and the rows of b, through one matrix
// product; the cancellation this risks for near points only matters at r ≈ 1e-7, where the
// kernel is flat.
MatrixXd squared_distances(const MatrixXd& a, const MatrixXd& b) {
  MatrixXd d = -2.0 * (a * b.transpose());
  d.colwise() += a.rowwise().squaredNorm();
  d.rowwise() += b.rowwise().squaredNorm().transpose();
  return d.cwiseMax(0.0);
}

MatrixXd scale_columns(const MatrixXd& x, const VectorXd& length_scales) {
  if (length_scales.size() == 1)
    return x / length_scales(0);
  return x * length_scales.cwiseInverse().asDiagonal();
}

// Kernel matrix from scaled squared distances.
MatrixXd matern_from_squared(const MatrixXd& r2, double signal_variance) {
  const MatrixXd r = r2.cwiseSqrt();
  return signal_variance *
         ((1.0 + kSqrt5 * r.array() + (5.0 / 3.0) * r2.array()) * (-kSqrt5 * r.array()).exp())
             .matrix();
}

// Factors k + σn² I, adding jitter to the diagonal when rounding makes it indefinite. Returns
// false when even the largest jitter fails.
bool factor(MatrixXd k, double signal_variance, Eigen::LLT<MatrixXd>* llt) {
  llt->compute(k);
  if (llt->info() == Eigen::Success)
    return true;
  const double base = std::max(signal_variance, 1e-300);
  double added = 0;
  for (double jitter = 1e-10 * base; jitter <= 1e-2 * base; jitter *= 10) {
    k.diagonal().array() += jitter - added;
    added = jitter;
    llt->compute(k);
    if (llt->info() == Eigen::Success)
      return true;
  }
  return false;
}

double log_det_and_fit(const Eigen::LLT<MatrixXd>& llt, const VectorXd& y, VectorXd* alpha) {
  *alpha = llt.solve(y);
  const double log_det = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
  const auto n = static_cast<double>(y.size());
  return -0.5 * y.dot(*alpha) - 0.5 * log_det - 0.5 * n * std::log(2.0 * std::numbers::pi);
}

// The likelihood with the pairwise geometry computed once: the unscaled squared distances for
// an isotropic kernel (rescaled per evaluation), the inputs themselves for ARD.
class Likelihood {
 public:
  Likelihood(const MatrixXd& x, const VectorXd& y, bool ard) : x_(x), y_(y), ard_(ard) {
    if (!ard_) {
      d2_ = squared_distances(x, x);
      d2_.diagonal().setZero();
    }
  }

  // Parameters: (log ℓ…, log σ², log σn²).
  std::optional<double> operator()(const VectorXd& theta, VectorXd* gradient) const {
    const Index nl = theta.size() - 2;
    const VectorXd ell = theta.head(nl).array().exp();
    const double s2 = std::exp(theta(nl));
    const double sn2 = std::exp(theta(nl + 1));
    MatrixXd xs, r2;
    if (ard_) {
      xs = scale_columns(x_, ell);
      r2 = squared_distances(xs, xs);
      r2.diagonal().setZero();
    } else {
      r2 = d2_ / (ell(0) * ell(0));
    }
    const MatrixXd r = r2.cwiseSqrt();
    const MatrixXd e = (-kSqrt5 * r.array()).exp().matrix();
    const MatrixXd kf =
        (s2 * (1.0 + kSqrt5 * r.array() + (5.0 / 3.0) * r2.array()) * e.array()).matrix();
    MatrixXd k = kf;
    k.diagonal().array() += sn2;
    Eigen::LLT<MatrixXd> llt;
    if (!factor(std::move(k), s2, &llt))
      return std::nullopt;
    VectorXd alpha;
    const double lml = log_det_and_fit(llt, y_, &alpha);
    if (!std::isfinite(lml))
      return std::nullopt;
    if (gradient) {
      // d lml / dθ = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ).
      const Index n = y_.size();
      const MatrixXd w = alpha * alpha.transpose() - llt.solve(MatrixXd::Identity(n, n));
      // ∂K/∂log ℓ = M ∘ (Δx/ℓ)², with M = (5/3) σ² (1 + √5 r) exp(−√5 r): no 1/r at r = 0.
      const MatrixXd g =
          (w.array() * ((5.0 / 3.0) * s2 * (1.0 + kSqrt5 * r.array()) * e.array())).matrix();
      gradient->resize(theta.size());
      if (ard_) {
        // ½ Σ_ik G_ik (x̃_ij − x̃_kj)² = Σ_i x̃_ij² (G1)_i − Σ_i x̃_ij (G x̃)_ij, G symmetric.
        const VectorXd row_sums = g.rowwise().sum();
        const MatrixXd gx = g * xs;
        gradient->head(nl) =
            xs.cwiseAbs2().transpose() * row_sums - xs.cwiseProduct(gx).colwise().sum().transpose();
      } else {
        (*gradient)(0) = 0.5 * (g.array() * r2.array()).sum();
      }
      (*gradient)(nl) = 0.5 * (w.array() * kf.array()).sum();
      (*gradient)(nl + 1) = 0.5 * sn2 * w.trace();
    }
    return lml;
  }

 private:
  const MatrixXd& x_;
  const VectorXd& y_;
  bool ard_;
  MatrixXd d2_;
};

// Minimizes f over ℝᵏ by L-BFGS with a backtracking (Armijo) line search. f returns nullopt
// where it is undefined; the line search steps back from there.
template <typename F>
VectorXd lbfgs_minimize(const F& f, VectorXd u, int max_iterations, double* value) {
  constexpr size_t kMemory = 8;
  VectorXd g;
  std::optional<double> fu = f(u, &g);
  if (!fu || !g.allFinite()) {
    *value = std::numeric_limits<double>::infinity();
    return u;
  }
  std::deque<std::pair<VectorXd, VectorXd>> memory;  // (s, y) pairs, newest last
  for (int it = 0; it < max_iterations; ++it) {
    // Two-loop recursion: d = −H g.
    VectorXd q = g;
    std::vector<double> a(memory.size());
    for (size_t i = memory.size(); i-- > 0;) {
      const auto& [s, y] = memory[i];
      a[i] = s.dot(q) / y.dot(s);
      q -= a[i] * y;
    }
    if (!memory.empty()) {
      const auto& [s, y] = memory.back();
      q *= s.dot(y) / y.dot(y);
    } else {
      q /= std::max(1.0, g.lpNorm<Eigen::Infinity>());
    }
    for (size_t i = 0; i < memory.size(); ++i) {
      const auto& [s, y] = memory[i];
      q += (a[i] - y.dot(q) / y.dot(s)) * s;
    }
    VectorXd d = -q;
    double slope = g.dot(d);
    if (!(slope < 0)) {
      memory.clear();
      d = -g / std::max(1.0, g.lpNorm<Eigen::Infinity>());
      slope = g.dot(d);
    }
    double step = 1;
    bool accepted = false;
    VectorXd u_new, g_new;
    double f_new = 0;
    for (int back = 0; back < 30; ++back, step *= 0.5) {
      u_new = u + step * d;
      const auto v = f(u_new, &g_new);
      if (v && std::isfinite(*v) && g_new.allFinite() && *v <= *fu + 1e-4 * step * slope) {
        f_new = *v;
        accepted = true;
        break;
      }
    }
    if (!accepted)
      break;
    VectorXd s = u_new - u;
    VectorXd y = g_new - g;
    if (s.dot(y) > 1e-12) {
      memory.emplace_back(std::move(s), std::move(y));
      if (memory.size() > kMemory)
        memory.pop_front();
    }
    const double improvement = *fu - f_new;
    u = std::move(u_new);
    g = std::move(g_new);
    fu = f_new;
    if (improvement < 1e-9 * (1 + std::abs(f_new)) || g.lpNorm<Eigen::Infinity>() < 1e-6)
      break;
  }
  *value = *fu;
  return u;
}

double sigmoid(double u) {
  return 1.0 / (1.0 + std::exp(-u));
}

}  // namespace

double matern52(double scaled_distance, double signal_variance) {
  const double r = std::abs(scaled_distance);
  return signal_variance * (1.0 + kSqrt5 * r + (5.0 / 3.0) * r * r) * std::exp(-kSqrt5 * r);
}

std::optional<double> log_marginal_likelihood(const MatrixXd& x, const VectorXd& y,
                                              const GpHyperparameters& h, VectorXd* gradient) {
  const Index nl = h.length_scales.size();
  VectorXd theta(nl + 2);
  theta.head(nl) = h.length_scales.array().log();
  theta(nl) = std::log(h.signal_variance);
  theta(nl + 1) = std::log(h.noise_variance);
  return Likelihood(x, y, nl > 1)(theta, gradient);
}

GpHyperparameters fit_hyperparameters(const MatrixXd& x, const VectorXd& y,
                                      const GpFitOptions& options) {
  const Index d = std::max<Index>(1, x.cols());
  const bool ard = options.ard && x.cols() > 1;
  const Index nl = ard ? d : 1;
  const double root_d = std::sqrt(static_cast<double>(d));
  // The box, in log space. An ARD length scale of 100 already makes a unit-range column
  // irrelevant; an isotropic one spans all d columns at once.
  VectorXd lo(nl + 2), hi(nl + 2);
  lo.head(nl).setConstant(std::log(0.01));
  hi.head(nl).setConstant(std::log(ard ? 100.0 : 100.0 * root_d));
  lo(nl) = std::log(0.01);
  hi(nl) = std::log(100.0);
  lo(nl + 1) = std::log(1e-6);
  hi(nl + 1) = std::log(10.0);
  const VectorXd width = hi - lo;

  // Optimized in u, θ = lo + (hi − lo)·sigmoid(u): unconstrained for L-BFGS, never outside the
  // box, and the likelihood itself is untouched inside it.
  const Likelihood lml(x, y, ard);
  const auto theta_of = [&](const VectorXd& u) {
    return VectorXd(lo.array() + width.array() * u.unaryExpr(&sigmoid).array());
  };
  const auto objective = [&](const VectorXd& u, VectorXd* grad_u) -> std::optional<double> {
    VectorXd grad_theta;
    const auto v = lml(theta_of(u), &grad_theta);
    if (!v)
      return std::nullopt;
    const VectorXd s = u.unaryExpr(&sigmoid);
    *grad_u = -(grad_theta.array() * width.array() * s.array() * (1.0 - s.array())).matrix();
    return -*v;
  };
  const auto u_of = [&](const VectorXd& theta) {
    VectorXd p = ((theta - lo).array() / width.array()).cwiseMax(1e-6).cwiseMin(1 - 1e-6);
    return VectorXd((p.array() / (1.0 - p.array())).log());
  };

  // Starting points: a grid of length scales relative to the √d a unit cube's diagonal grows
  // with, times noise levels, screened by the likelihood alone (one Cholesky each, no inverse);
  // L-BFGS then climbs from the best few. The likelihood is multimodal (a short length scale
  // with little noise against a long one with much), so one start is not enough.
  struct Start {
    double value;
    VectorXd theta;
  };
  std::vector<Start> starts;
  for (double ell_factor : {0.1, 0.25, 0.5, 1.0, 2.0}) {
    for (double noise : {1e-3, 0.05, 0.5}) {
      VectorXd theta(nl + 2);
      theta.head(nl).setConstant(std::log(ell_factor * root_d));
      theta(nl) = 0;  // σ² = 1: the targets are standardized
      theta(nl + 1) = std::log(noise);
      if (const auto v = lml(theta, nullptr))
        starts.push_back({-*v, std::move(theta)});
    }
  }
  std::stable_sort(starts.begin(), starts.end(),
                   [](const Start& a, const Start& b) { return a.value < b.value; });
  starts.resize(std::min<size_t>(starts.size(), static_cast<size_t>(options.restarts)));
  double best_value = std::numeric_limits<double>::infinity();
  VectorXd best_theta;
  for (const Start& start : starts) {
    double value = 0;
    const VectorXd u = lbfgs_minimize(objective, u_of(start.theta), options.max_iterations, &value);
    if (value < best_value) {
      best_value = value;
      best_theta = theta_of(u);
    }
  }
  GpHyperparameters h;
  if (best_theta.size() == 0) {
    // Not even a start could be factored; a moderate prior keeps the searcher going.
    h.length_scales = VectorXd::Constant(nl, 0.5 * root_d);
    return h;
  }
  h.length_scales = best_theta.head(nl).array().exp();
  h.signal_variance = std::exp(best_theta(nl));
  h.noise_variance = std::exp(best_theta(nl + 1));
  return h;
}

std::optional<GaussianProcess> GaussianProcess::fit(MatrixXd x, VectorXd y, GpHyperparameters h) {
  GaussianProcess gp;
  gp.scaled_x_ = scale_columns(x, h.length_scales);
  MatrixXd r2 = squared_distances(gp.scaled_x_, gp.scaled_x_);
  r2.diagonal().setZero();
  MatrixXd k = matern_from_squared(r2, h.signal_variance);
  k.diagonal().array() += h.noise_variance;
  if (!factor(std::move(k), h.signal_variance, &gp.llt_))
    return std::nullopt;
  gp.lml_ = log_det_and_fit(gp.llt_, y, &gp.alpha_);
  gp.x_ = std::move(x);
  gp.y_ = std::move(y);
  gp.h_ = std::move(h);
  return gp;
}

void GaussianProcess::predict(const MatrixXd& xs, VectorXd* mean, VectorXd* variance) const {
  const MatrixXd ks =
      matern_from_squared(squared_distances(scale_columns(xs, h_.length_scales), scaled_x_),
                          h_.signal_variance);  // m × n
  *mean = ks * alpha_;
  if (variance) {
    const MatrixXd v = llt_.matrixL().solve(ks.transpose());  // n × m
    *variance = (h_.signal_variance - v.colwise().squaredNorm().transpose().array()).cwiseMax(0.0);
  }
}

double expected_improvement(double mean, double sd, double best, double xi) {
  const double gain = mean - best - xi;
  if (!(sd > 0))
    return std::max(gain, 0.0);
  const double z = gain / sd;
  const double cdf = 0.5 * std::erfc(-z / std::numbers::sqrt2);
  const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi);
  return gain * cdf + sd * pdf;
}

}  // namespace sluice::wf
