// explain(): what the model learned (feature importance, effects, best values) and how well it
// predicts crashes (the paper's Table 3).
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "wayfinder/deeptune/searcher.h"

namespace sluice::wf::deeptune {
namespace {

constexpr size_t kListed = 10;  // parameters in Insight::raise and ::lower

double numeric_value(const std::string& text) {
  if (text == "true")
    return 1;
  if (text == "false")
    return 0;
  return std::strtod(text.c_str(), nullptr);
}

}  // namespace

Insight DeepTuneSearch::explain_unchecked(std::span<const Observation> history) {
  Insight ins;
  const auto width = static_cast<int64_t>(columns_.size());
  const auto rows = static_cast<int64_t>(crashed_.size());
  const torch::Tensor x = torch::from_blob(x_.data(), {rows, width}, torch::kFloat32).clone();

  // Partial dependence: every observed configuration with parameter p set to each of its grid
  // values in turn, predicted by the model; a parameter's importance is the mean (over the
  // configurations) spread of ŷ across its values.
  const Configuration defaults = space_.default_configuration();
  std::vector<double> raw(columns_.parameters.size(), 0);
  for (size_t k = 0; k < columns_.parameters.size(); ++k) {
    const ParameterColumns& pc = columns_.parameters[k];
    const Parameter& p = space_.parameters()[pc.parameter];
    const std::vector<std::string> values = space_.grid_values(pc.parameter);
    std::vector<torch::Tensor> variants;
    for (const std::string& v : values) {
      Configuration c = defaults;
      c[p.name] = v;
      std::vector<float> enc;
      append_normalized(space_, columns_, c, enc);
      const auto begin = static_cast<int64_t>(pc.begin), end = static_cast<int64_t>(pc.end);
      torch::Tensor block =
          torch::tensor(std::vector<float>(enc.begin() + begin, enc.begin() + end));
      torch::Tensor xv = x.clone();
      xv.slice(1, begin, end).copy_(block.unsqueeze(0).expand({rows, end - begin}));
      variants.push_back(xv);
    }
    const torch::Tensor y = learner_->predict(torch::cat(variants, 0))
                                .y.view({static_cast<int64_t>(values.size()), rows});
    const torch::Tensor spread = std::get<0>(y.max(0)) - std::get<0>(y.min(0));
    raw[k] = spread.mean().item<double>();
    const torch::Tensor mean = y.mean(1);
    const auto m = [&](size_t i) { return mean[static_cast<int64_t>(i)].item<double>(); };
    size_t best = 0;
    for (size_t i = 1; i < values.size(); ++i)
      best = m(i) > m(best) ? i : best;
    double effect = 0;
    if (p.type == ParamType::kEnum || p.type == ParamType::kString) {
      // No order among the values: what choosing the best one over the default gains.
      const auto d = std::find(values.begin(), values.end(), p.default_value);
      effect = m(best) - m(d == values.end() ? 0 : static_cast<size_t>(d - values.begin()));
    } else {
      size_t lo = 0, hi = 0;
      for (size_t i = 1; i < values.size(); ++i) {
        lo = numeric_value(values[i]) < numeric_value(values[lo]) ? i : lo;
        hi = numeric_value(values[i]) > numeric_value(values[hi]) ? i : hi;
      }
      effect = m(hi) - m(lo);
    }
    ins.all.push_back({.parameter = p.name, .effect = effect, .best_value = values[best]});
  }
  const double total = std::accumulate(raw.begin(), raw.end(), 0.0);
  for (size_t k = 0; k < ins.all.size(); ++k) {
    ins.all[k].importance = total > 0 ? raw[k] / total : 1.0 / static_cast<double>(ins.all.size());
  }
  std::stable_sort(ins.all.begin(), ins.all.end(),
                   [](const auto& a, const auto& b) { return a.importance > b.importance; });
  for (const ParameterEffect& e : ins.all) {
    if (e.effect > 0)
      ins.raise.push_back(e);
    else if (e.effect < 0)
      ins.lower.push_back(e);
  }
  std::stable_sort(ins.raise.begin(), ins.raise.end(),
                   [](const auto& a, const auto& b) { return a.effect > b.effect; });
  std::stable_sort(ins.lower.begin(), ins.lower.end(),
                   [](const auto& a, const auto& b) { return a.effect < b.effect; });
  ins.raise.resize(std::min(ins.raise.size(), kListed));
  ins.lower.resize(std::min(ins.lower.size(), kListed));

  // Crash prediction on trials the model has not seen: a fresh model trained on the first 70%
  // of the trials in the order they ran, asked about the rest.
  std::vector<size_t> order(history.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return history[a].iteration < history[b].iteration; });
  const size_t n_train = history.size() * 7 / 10;
  std::vector<float> tx;
  std::vector<uint8_t> tc;
  std::vector<std::optional<double>> to;
  for (size_t i = 0; i < n_train; ++i) {
    const size_t r = order[i];
    tx.insert(tx.end(), x_.begin() + static_cast<std::ptrdiff_t>(r * columns_.size()),
              x_.begin() + static_cast<std::ptrdiff_t>((r + 1) * columns_.size()));
    tc.push_back(crashed_[r]);
    to.push_back(objective_[r]);
  }
  const bool any_ok = std::any_of(to.begin(), to.end(), [](const auto& o) { return o; });
  if (any_ok && static_cast<int64_t>(n_train) >= hyper_.min_observations &&
      n_train < history.size()) {
    torch::manual_seed(seed_ ^ 0x7E57ull);
    Learner fresh(hyper_.model, hyper_.learning_rate);
    fresh.fit(make_training_set(tx, width, tc, to), hyper_.epochs * 10, seed_ ^ 0x7E57ull);
    std::vector<float> hx;
    for (size_t i = n_train; i < history.size(); ++i) {
      const size_t r = order[i];
      hx.insert(hx.end(), x_.begin() + static_cast<std::ptrdiff_t>(r * columns_.size()),
                x_.begin() + static_cast<std::ptrdiff_t>((r + 1) * columns_.size()));
    }
    const auto held = static_cast<int64_t>(history.size() - n_train);
    const torch::Tensor k =
        fresh.predict(torch::from_blob(hx.data(), {held, width}, torch::kFloat32)).crash;
    int64_t tp = 0, fp = 0, fn = 0, tn = 0;
    for (int64_t i = 0; i < held; ++i) {
      const bool predicted = k[i].item<float>() > 0.5f;
      const bool actual = crashed_[order[n_train + static_cast<size_t>(i)]] != 0;
      tp += predicted && actual;
      fp += predicted && !actual;
      fn += !predicted && actual;
      tn += !predicted && !actual;
    }
    CrashAccuracy& a = ins.crashes;
    a.evaluated = held;
    a.crashes = tp + fn;
    a.accuracy = static_cast<double>(tp + tn) / static_cast<double>(held);
    a.precision = tp + fp > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp)
                              : (a.crashes == 0 ? 1.0 : 0.0);
    a.recall = a.crashes > 0 ? static_cast<double>(tp) / static_cast<double>(a.crashes) : 1.0;
  }

  // With fewer ok trials than inputs the regression is underdetermined: many weightings of the
  // inputs fit the trials equally well, and which inert ones the model leans on is chance. On
  // the shipped 200-parameter `bowl` (409 inputs), seed 1's 100 random trials rank the five
  // parameters that matter 7th to 134th (docs/wayfinder.md, "Transfer learning").
  const auto ok_trials = std::count_if(objective_.begin(), objective_.end(),
                                       [](const auto& o) { return o.has_value(); });
  if (static_cast<size_t>(ok_trials) < columns_.size()) {
    ins.caution = fmt::format(
        "{} ok trials for {} model inputs (encoded columns): too few to tell most parameters "
        "apart; the ranking is partly chance and may change with more trials.",
        ok_trials, columns_.size());
  }

  ins.notes = fmt::format(
      "DeepTune's model, trained on all {} trials, predicted every observed configuration with "
      "each parameter set to each of its grid values in turn (partial dependence). Importance is "
      "a parameter's share of the mean spread of the predicted objective across its values; "
      "effect is the predicted change of the objective, in standard deviations of the ok trials "
      "(higher is better; a minimised metric is negated), from the lowest to the highest value "
      "(false to true), or from the default to the best value of an enum; best value is the "
      "value with the highest mean prediction. Crash prediction: a fresh model trained on the "
      "first {} trials in the order they ran predicted the remaining {} (crash when k > 0.5; "
      "precision is 1 when no crash was predicted and none happened, recall 1 when none "
      "happened){}.",
      history.size(), n_train, history.size() - n_train,
      ins.crashes.evaluated == 0 ? "; too few trials for it here" : "");
  return ins;
}

Result<Insight> DeepTuneSearch::explain(std::span<const Observation> history) {
  try {
    if (crashed_.size() != history.size())
      reset_observations(history);
    update();
    if (!trained_ && !warm_) {
      return failed_precondition(fmt::format(
          "deeptune: nothing to explain yet: the model needs {} trials, one of them ok ({} so "
          "far)",
          hyper_.min_observations, history.size()));
    }
    if (history.empty())
      return failed_precondition("deeptune: nothing to explain: the study has no trials");
    if (columns_.size() == 0)
      return failed_precondition("deeptune: every parameter of this space is pinned");
    return explain_unchecked(history);
  } catch (const std::exception& e) {
    return internal_error(fmt::format("deeptune: explaining the model: {}", e.what()));
  }
}

}  // namespace sluice::wf::deeptune
