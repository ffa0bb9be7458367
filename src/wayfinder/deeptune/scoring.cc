#include "wayfinder/deeptune/scoring.h"

#include <algorithm>
#include <limits>

#include "wayfinder/deeptune/model.h"

namespace sluice::wf::deeptune {

torch::Tensor nearest_sq_distance(const torch::Tensor& candidates, const torch::Tensor& evaluated) {
  if (evaluated.size(0) == 0) {
    return torch::full({candidates.size(0)}, std::numeric_limits<float>::infinity(),
                       candidates.options());
  }
  return std::get<0>(mean_squared_distances(candidates, evaluated).min(1));
}

torch::Tensor dissimilarity_from_sq(const torch::Tensor& sq_distance) {
  return 1 - 1 / (1 + sq_distance);
}

torch::Tensor dissimilarity(const torch::Tensor& candidates, const torch::Tensor& evaluated) {
  return dissimilarity_from_sq(nearest_sq_distance(candidates, evaluated));
}

torch::Tensor score_function(const torch::Tensor& ds, const torch::Tensor& sigma, double alpha) {
  return alpha * ds + (1 - alpha) * sigma;
}

std::vector<int64_t> select_candidates(const torch::Tensor& candidates,
                                       const torch::Tensor& evaluated,
                                       const PoolPredictions* predictions, size_t n, double alpha,
                                       double crash_threshold) {
  const int64_t pool = candidates.size(0);
  std::vector<int64_t> picks;
  if (pool == 0 || n == 0)
    return picks;
  const auto want = static_cast<int64_t>(std::min<size_t>(n, static_cast<size_t>(pool)));
  torch::Tensor allowed = torch::ones({pool}, torch::kBool);
  if (predictions) {
    allowed = predictions->crash <= crash_threshold;
    if (allowed.sum().item<int64_t>() < want) {
      // Everything looks likely to crash: the least likely ones are still the best bet.
      const torch::Tensor order = std::get<1>(predictions->crash.topk(want, 0, /*largest=*/false));
      allowed = torch::zeros({pool}, torch::kBool);
      allowed.index_fill_(0, order, true);
    }
  }
  torch::Tensor sq = nearest_sq_distance(candidates, evaluated);
  const float minus_inf = -std::numeric_limits<float>::infinity();
  while (static_cast<int64_t>(picks.size()) < want) {
    const torch::Tensor ds = dissimilarity_from_sq(sq);
    torch::Tensor rank =
        predictions ? predictions->y + score_function(ds, predictions->sigma, alpha) : ds;
    rank = torch::where(allowed, rank, torch::full_like(rank, minus_inf));
    const int64_t best = rank.argmax().item<int64_t>();
    if (!allowed[best].item<bool>())
      break;
    picks.push_back(best);
    allowed[best] = false;
    const torch::Tensor row = candidates.slice(0, best, best + 1);
    sq = torch::minimum(sq, mean_squared_distances(candidates, row).squeeze(1));
  }
  return picks;
}

}  // namespace sluice::wf::deeptune
