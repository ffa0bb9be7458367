// DeepTune's scoring function (§3.2, Equations 2 and 3) and the choice of what to evaluate next.
//
// ‖x - X‖² in Equation 2 is the squared distance from candidate x to the nearest evaluated
// configuration, per column (divided by the number of encoded columns), in the z-scored
// encoding: the nearest point is what makes a region explored, and without the division every
// candidate of a space with hundreds of columns sits at distance ≫ 1 and ds saturates at 1.
//
// Candidates are ranked by
//   rank(x) = ŷ(x) + sf(x, X) = ŷ(x) + α·ds(x, X) + (1 - α)·σ̂(x)
// where ŷ and σ̂ are both in z-score units of the objective: ŷ + (1 - α)·σ̂ is an upper
// confidence bound, and α·ds, at most α standard deviations, is a bonus for novelty. No
// per-pool rescaling: it would blow tiny differences of σ̂ up to the size of real ones.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sluice::wf::deeptune {

// min_j ‖c_i - e_j‖² / width for each candidate: [P]; +inf when nothing was evaluated.
torch::Tensor nearest_sq_distance(const torch::Tensor& candidates, const torch::Tensor& evaluated);
// Equation 2 from the squared distance: 1 - 1/(1 + d²); 1 at infinity.
torch::Tensor dissimilarity_from_sq(const torch::Tensor& sq_distance);
// Equation 2: [P].
torch::Tensor dissimilarity(const torch::Tensor& candidates, const torch::Tensor& evaluated);
// Equation 3: α·ds + (1 - α)·σ̂.
torch::Tensor score_function(const torch::Tensor& ds, const torch::Tensor& sigma, double alpha);

struct PoolPredictions {
  torch::Tensor crash;  // [P] k̂
  torch::Tensor y;      // [P] ŷ, z-score units
  torch::Tensor sigma;  // [P] σ̂, z-score units
};

// Indices of up to n candidates (rows of `candidates`, z-scored) to evaluate, best first.
// With predictions: candidates with k̂ > crash_threshold drop out (if fewer than n would remain,
// the n least likely to crash stay), then picks go greedily by rank(x) above. Without (too little
// data for a model): greedily by ds alone, farthest first. After each pick ds is recomputed
// with the pick counted as evaluated, so a batch spreads out.
std::vector<int64_t> select_candidates(const torch::Tensor& candidates,
                                       const torch::Tensor& evaluated,
                                       const PoolPredictions* predictions, size_t n, double alpha,
                                       double crash_threshold);

}  // namespace sluice::wf::deeptune
