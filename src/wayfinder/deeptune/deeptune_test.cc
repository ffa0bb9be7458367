// DeepTune: the model's parts against hand computations, then the searcher on synthetic spaces
// (in process, through the Searcher API) against random search with the same seeds, the model
// file (round trip, transfer, bad files), explain(), and one small study end to end.
#include "wayfinder/deeptune/deeptune.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "sluice/common/knobs.h"
#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/search.h"
#include "sluice/wayfinder/store.h"
#include "sluice/wayfinder/study.h"
#include "wayfinder/deeptune/learner.h"
#include "wayfinder/deeptune/loss.h"
#include "wayfinder/deeptune/model.h"
#include "wayfinder/deeptune/scoring.h"
#include "wayfinder/deeptune/searcher.h"

namespace sluice::wf::deeptune {
namespace {

namespace fs = std::filesystem;

torch::Tensor t2(std::vector<std::vector<float>> rows) {
  std::vector<torch::Tensor> r;
  for (auto& row : rows)
    r.push_back(torch::tensor(row));
  return torch::stack(r);
}

// ---------------------------------------------------------------------------------------------
// The model and its loss

TEST(DeepTuneModel, OutputsHaveTheirShapesAndRanges) {
  torch::manual_seed(3);
  Dtm model(ModelOptions{.inputs = 7, .layers = 3, .hidden = 16, .centroids = 8});
  const ModelOutput out = model->forward(torch::randn({5, 7}));
  EXPECT_EQ(out.crash_logits.sizes(), (std::vector<int64_t>{5, 2}));
  for (const torch::Tensor& t : {out.crash, out.y, out.sigma, out.log_var})
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{5}));
  EXPECT_GE(out.crash.min().item<float>(), 0);
  EXPECT_LE(out.crash.max().item<float>(), 1);
  EXPECT_GE(out.sigma.min().item<float>(), 0);
  ASSERT_EQ(out.rbf_inputs.size(), 3u);
  EXPECT_EQ(out.rbf_inputs[0].size(1), 7);
  EXPECT_EQ(out.rbf_inputs[1].size(1), 16 + 8);  // the dense features and the RBF activations
}

TEST(DeepTuneModel, RbfActivationIsEquation1PerColumn) {
  const torch::Tensor z = t2({{0, 0}, {0.1f, 0.3f}});
  const torch::Tensor c = t2({{0, 0}, {0.1f, 0.1f}});
  const torch::Tensor phi = rbf_activation(z, c, 0.1);
  // ‖z - c‖² / 2 columns, over 2γ² = 0.02.
  EXPECT_NEAR(phi[0][0].item<float>(), 1.0, 1e-6);
  EXPECT_NEAR(phi[0][1].item<float>(), std::exp(-(0.02 / 2) / 0.02), 1e-5);
  EXPECT_NEAR(phi[1][0].item<float>(), std::exp(-(0.1 / 2) / 0.02), 1e-5);
  EXPECT_NEAR(phi[1][1].item<float>(), std::exp(-(0.04 / 2) / 0.02), 1e-5);
  // An outlier activates nothing.
  EXPECT_LT(rbf_activation(t2({{5, 5}}), c, 0.1).max().item<float>(), 1e-10);
}

TEST(DeepTuneLoss, CrashLossIsCategoricalCrossEntropy) {
  const torch::Tensor logits = t2({{0, 0}, {2, 0}, {0, 3}});
  const torch::Tensor labels = torch::tensor(std::vector<int64_t>{0, 1, 1});
  const double expected =
      (std::log(2.0) + std::log(1 + std::exp(2.0)) + std::log(1 + std::exp(-3.0))) / 3;
  EXPECT_NEAR(crash_loss(logits, labels).item<double>(), expected, 1e-5);
}

TEST(DeepTuneLoss, RegressionLossIsKendallAndGal) {
  const torch::Tensor y_pred = torch::tensor({1.0f, 0.0f});
  const torch::Tensor s = torch::tensor({0.0f, static_cast<float>(std::log(4.0))});
  const torch::Tensor y = torch::tensor({3.0f, 1.0f});
  // 0.5·e^0·(3-1)² + 0 = 2;  0.5·(1/4)·1 + 0.5·ln 4.
  const double expected = (2 + (0.125 + 0.5 * std::log(4.0))) / 2;
  EXPECT_NEAR(regression_loss(y_pred, s, y).item<double>(), expected, 1e-5);
  EXPECT_EQ(regression_loss(torch::zeros({0}), torch::zeros({0}), torch::zeros({0})).item<float>(),
            0);
}

TEST(DeepTuneLoss, ChamferIsZeroForIdenticalSetsAndBothDirectionsOtherwise) {
  const torch::Tensor p = t2({{0, 1}, {2, 3}, {-1, 4}});
  EXPECT_NEAR(chamfer_loss(p, p).item<float>(), 0, 1e-5);
  // Points {0, 2}, centroid {1}: each point is 1 away, the centroid 1 from its nearest.
  EXPECT_NEAR(chamfer_loss(t2({{0}, {2}}), t2({{1}})).item<float>(), 2, 1e-5);
  // Point {0}, centroids {0, 3}: 0 one way; (0 + 9)/2 the other.
  EXPECT_NEAR(chamfer_loss(t2({{0}}), t2({{0}, {3}})).item<float>(), 4.5, 1e-5);
}

TEST(DeepTuneLoss, TotalIsTheSumOfTheTermsAndTrainsOnlyCentroidsThroughChamfer) {
  torch::manual_seed(1);
  Dtm model(ModelOptions{.inputs = 4, .layers = 2, .hidden = 8, .centroids = 4});
  const torch::Tensor x = torch::randn({6, 4});
  const ModelOutput out = model->forward(x);
  const torch::Tensor crashed = torch::tensor(std::vector<int64_t>{0, 1, 0, 0, 1, 0});
  const torch::Tensor ok = torch::tensor(std::vector<int64_t>{0, 2, 3, 5});
  const torch::Tensor y = torch::randn({4});
  const LossTerms t = dtm_loss(*model, out, crashed, ok, y);
  EXPECT_NEAR(t.total.item<float>(), (t.cce + t.reg + t.cham).item<float>(), 1e-5);
  EXPECT_NEAR(
      t.reg.item<float>(),
      regression_loss(out.y.index_select(0, ok), out.log_var.index_select(0, ok), y).item<float>(),
      1e-6);
  EXPECT_GT(t.cham.item<float>(), 0);
}

// ---------------------------------------------------------------------------------------------
// Scoring

TEST(DeepTuneScoring, DissimilarityIsEquation2ToTheNearestEvaluatedPoint) {
  const torch::Tensor cand = t2({{0, 0}, {1, 1}, {3, 2}});
  const torch::Tensor seen = t2({{1, 1}, {3, 3}});
  const torch::Tensor ds = dissimilarity(cand, seen);
  EXPECT_NEAR(ds[0].item<float>(), 0.5, 1e-6);          // ‖·‖²/2 = 1
  EXPECT_NEAR(ds[1].item<float>(), 0.0, 1e-6);          // already evaluated
  EXPECT_NEAR(ds[2].item<float>(), 1 - 1 / 1.5, 1e-6);  // (0 + 1)/2 from (3, 3)
  EXPECT_NEAR(dissimilarity(cand, torch::zeros({0, 2})).min().item<float>(), 1, 1e-6);
}

TEST(DeepTuneScoring, ScoreFunctionIsEquation3) {
  const torch::Tensor ds = torch::tensor({0.2f, 0.9f});
  const torch::Tensor sigma = torch::tensor({1.5f, 0.1f});
  EXPECT_TRUE(torch::allclose(score_function(ds, sigma, 1.0), ds));
  EXPECT_TRUE(torch::allclose(score_function(ds, sigma, 0.0), sigma));
  EXPECT_TRUE(torch::allclose(score_function(ds, sigma, 0.5), (ds + sigma) / 2));
}

TEST(DeepTuneScoring, LikelyCrashesDropOutUnlessEverythingLooksLikeOne) {
  const torch::Tensor cand = t2({{0}, {1}, {2}, {3}});
  const torch::Tensor seen = t2({{10}});
  PoolPredictions p{.crash = torch::tensor({0.9f, 0.1f, 0.2f, 0.4f}),
                    .y = torch::tensor({10.0f, 0.0f, 1.0f, 0.5f}),
                    .sigma = torch::zeros({4})};
  EXPECT_EQ(select_candidates(cand, seen, &p, 1, 0.5, 0.5), (std::vector<int64_t>{2}));
  EXPECT_EQ(select_candidates(cand, seen, &p, 3, 0.5, 0.5), (std::vector<int64_t>{2, 3, 1}));
  p.crash = torch::tensor({0.9f, 0.8f, 0.95f, 0.99f});
  EXPECT_EQ(select_candidates(cand, seen, &p, 1, 0.5, 0.5), (std::vector<int64_t>{1}));
  // No model: the farthest from what was evaluated, then the farthest from that too.
  EXPECT_EQ(select_candidates(cand, t2({{1.4f}}), nullptr, 2, 0.5, 0.5),
            (std::vector<int64_t>{3, 0}));
}

// ---------------------------------------------------------------------------------------------
// The searcher on synthetic spaces

Job make_job(const std::string& params) {
  auto j = parse_job("name: synth\nparameters:\n" + params +
                     "commands: {bench: 'true'}\nmetric: {name: s, json: s}\n");
  EXPECT_TRUE(j.is_ok()) << j.status().to_string();
  return *j;
}

std::string floats(int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += "  - {name: x" + std::to_string(i) + ", type: float, range: [0, 1], default: 0.5}\n";
  return s;
}

double num(const Configuration& c, const std::string& k) {
  return std::stod(c.at(k));
}

using Evaluate = std::function<Observation(const Configuration&)>;

// The study loop in miniature: the default first, then one proposal per iteration.
std::vector<Observation> drive(Searcher& s, const Space& space, const Evaluate& eval,
                               int iterations) {
  std::vector<Observation> history;
  const auto add = [&](const Configuration& c, bool is_default) {
    Observation o = eval(c);
    o.iteration = static_cast<int64_t>(history.size());
    o.config = c;
    o.is_default = is_default;
    s.observe(o);
    history.push_back(o);
  };
  add(space.default_configuration(), true);
  while (static_cast<int>(history.size()) < iterations) {
    auto next = s.propose(history, 1);
    EXPECT_TRUE(next.is_ok()) << next.status().to_string();
    if (!next.is_ok() || next->empty())
      break;
    add(next->front(), false);
  }
  return history;
}

Observation ok(double objective) {
  return {.outcome = Outcome::kOk, .objective = objective};
}
Observation crashed() {
  return {.outcome = Outcome::kCrash};
}

std::unique_ptr<Searcher> searcher(const std::string& name, const Space& space, uint64_t seed,
                                   const std::string& model_in = "") {
  auto s = make_searcher(name, space, SearchOptions{.seed = seed, .model_in = model_in});
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? std::move(*s) : nullptr;
}

class DeepTuneSearchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_searcher("deeptune", make_deeptune_search); }
};

TEST_F(DeepTuneSearchTest, LearnsToAvoidTheCrashingRegion) {
  // x0 > 0.7 always crashes: 30% of random configurations. (When the objective itself climbs
  // towards the crash region's edge, DeepTune hugs the edge and crashes about half as often as
  // random search; that case is not asserted.)
  const Job job = make_job(floats(8));
  const Space space(job);
  const Evaluate eval = [](const Configuration& c) {
    if (num(c, "x0") > 0.7)
      return crashed();
    return ok(num(c, "x1") + num(c, "x2"));
  };
  int deeptune_crashes = 0, random_crashes = 0, proposals = 0;
  for (uint64_t seed : {1u, 2u, 3u}) {
    auto dt = searcher("deeptune", space, seed);
    auto rnd = searcher("random", space, seed);
    const auto h_dt = drive(*dt, space, eval, 60);
    const auto h_rnd = drive(*rnd, space, eval, 60);
    for (size_t i = 40; i < 60; ++i) {
      deeptune_crashes += is_failure(h_dt[i].outcome);
      random_crashes += is_failure(h_rnd[i].outcome);
      ++proposals;
    }
  }
  RecordProperty("deeptune_crashes", deeptune_crashes);
  RecordProperty("random_crashes", random_crashes);
  // Measured: 0 crashes against random's 11 in these 60 proposals; up to 4 against 17 for other
  // seed sets and training settings.
  EXPECT_LE(deeptune_crashes, 6);
  EXPECT_LT(deeptune_crashes * 2, random_crashes)
      << deeptune_crashes << " vs " << random_crashes << " of " << proposals;
}

TEST_F(DeepTuneSearchTest, FindsBetterConfigurationsThanRandomWhenTwoOf50ParametersMatter) {
  // The best is 1 (x7 = 1, x31 = 0). Measured at 40 iterations: DeepTune 0.91-0.97, random
  // 0.48-0.88; DeepTune ahead on 7 of these 7 seeds, and on 5 to 7 of 7 for other seed sets
  // and learning rates. (A peaked objective, -(x7 - 0.8)² - (x31 - 0.25)², is harder: DeepTune
  // wins 3 to 5 of 5 there.)
  const Job job = make_job(floats(50));
  const Space space(job);
  const Evaluate eval = [](const Configuration& c) { return ok(num(c, "x7") - num(c, "x31")); };
  const auto best = [](const std::vector<Observation>& h) {
    double b = -1e9;
    for (const auto& o : h)
      b = std::max(b, *o.objective);
    return b;
  };
  int wins = 0;
  std::string figures;
  for (uint64_t seed : {31u, 32u, 33u, 34u, 35u, 36u, 37u}) {
    auto dt = searcher("deeptune", space, seed);
    auto rnd = searcher("random", space, seed);
    const double b_dt = best(drive(*dt, space, eval, 40));
    const double b_rnd = best(drive(*rnd, space, eval, 40));
    wins += b_dt > b_rnd;
    figures += " " + std::to_string(b_dt) + "/" + std::to_string(b_rnd);
  }
  EXPECT_GE(wins, 5) << "deeptune/random best per seed:" << figures;
}

TEST_F(DeepTuneSearchTest, ProposesDistinctUnseenConfigurationsInABatch) {
  const Job job =
      make_job(floats(4) + "  - {name: e, type: enum, values: [a, b, c], default: a}\n");
  const Space space(job);
  auto dt = searcher("deeptune", space, 4);
  std::vector<Observation> history;
  std::mt19937_64 rng(9);
  for (int i = 0; i < 10; ++i) {
    Observation o =
        ok(num(history.empty() ? space.default_configuration() : space.sample(rng), "x0"));
    o.config = space.sample(rng);
    o.iteration = i;
    dt->observe(o);
    history.push_back(o);
  }
  auto batch = dt->propose(history, 5);
  ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
  ASSERT_EQ(batch->size(), 5u);
  std::set<std::string> keys;
  for (const auto& o : history)
    keys.insert(configuration_key(o.config));
  for (const auto& c : *batch)
    EXPECT_TRUE(keys.insert(configuration_key(c)).second) << configuration_key(c);
  // Deterministic: the same seed and history propose the same batch.
  auto again = searcher("deeptune", space, 4);
  for (const auto& o : history)
    again->observe(o);
  auto batch2 = again->propose(history, 5);
  ASSERT_TRUE(batch2.is_ok());
  EXPECT_EQ(*batch, *batch2);
}

// ---------------------------------------------------------------------------------------------
// The model file

class DeepTuneModelFileTest : public DeepTuneSearchTest {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("deeptune-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::vector<Observation> random_history(const Space& space, const Evaluate& eval, int n,
                                        uint64_t seed) {
  std::vector<Observation> h;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i) {
    Configuration c = space.sample(rng);
    Observation o = eval(c);
    o.config = c;
    o.iteration = i;
    h.push_back(o);
  }
  return h;
}

DeepTuneSearch& as_deeptune(Searcher& s) {
  return dynamic_cast<DeepTuneSearch&>(s);
}

TEST_F(DeepTuneModelFileTest, SavedAndLoadedModelPredictsTheSame) {
  const Job job = make_job(floats(5) + "  - {name: e, type: enum, values: [a, b], default: a}\n");
  const Space space(job);
  const Evaluate eval = [](const Configuration& c) {
    return num(c, "x1") > 0.8 ? crashed() : ok(num(c, "x0") + (c.at("e") == "b" ? 1 : 0));
  };
  const auto history = random_history(space, eval, 30, 5);
  auto a = searcher("deeptune", space, 7);
  for (const auto& o : history)
    a->observe(o);
  const std::string path = (dir_ / "m" / "a.model").string();  // the folder is created
  ASSERT_TRUE(a->save_model(path).is_ok());
  auto b = searcher("deeptune", space, 8, path);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(as_deeptune(*b).warm());
  std::vector<Configuration> probe;
  std::mt19937_64 rng(77);
  for (int i = 0; i < 20; ++i)
    probe.push_back(space.sample(rng));
  auto pa = as_deeptune(*a).predict(probe);
  auto pb = as_deeptune(*b).predict(probe);
  ASSERT_TRUE(pa.is_ok() && pb.is_ok());
  EXPECT_TRUE(torch::allclose(pa->crash, pb->crash, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(pa->y, pb->y, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(pa->sigma, pb->sigma, 1e-5, 1e-5));
  // A warm model drives the very first proposal.
  auto first = b->propose({}, 1);
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(first->size(), 1u);
}

TEST_F(DeepTuneModelFileTest, SavingTrainsOnEverythingObservedFirst) {
  // A resumed study with no trials left observes its history and saves at once; the model it
  // writes must be the trained one, as if the searcher had proposed after the last observation.
  const Space space(make_job(floats(6)));
  const Evaluate eval = [](const Configuration& c) { return ok(4 * num(c, "x2")); };
  const auto history = random_history(space, eval, 30, 9);
  const auto saved_after = [&](bool observe, bool train) {
    auto s = searcher("deeptune", space, 5);
    if (observe) {
      for (const auto& o : history)
        s->observe(o);
    }
    if (train) {
      EXPECT_TRUE(as_deeptune(*s).train().is_ok());
    }
    const std::string path =
        (dir_ / ("m" + std::to_string(observe) + std::to_string(train) + ".model")).string();
    EXPECT_TRUE(s->save_model(path).is_ok());
    return searcher("deeptune", space, 6, path);
  };
  auto only_observed = saved_after(true, false);
  auto trained = saved_after(true, true);
  auto untrained = saved_after(false, false);
  ASSERT_TRUE(only_observed && trained && untrained);
  std::vector<Configuration> probe;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20; ++i)
    probe.push_back(space.sample(rng));
  auto p_observed = as_deeptune(*only_observed).predict(probe);
  auto p_trained = as_deeptune(*trained).predict(probe);
  auto p_untrained = as_deeptune(*untrained).predict(probe);
  ASSERT_TRUE(p_observed.is_ok() && p_trained.is_ok() && p_untrained.is_ok());
  EXPECT_TRUE(torch::allclose(p_observed->y, p_trained->y, 1e-4, 1e-4));
  EXPECT_FALSE(torch::allclose(p_observed->y, p_untrained->y, 1e-2, 1e-2));
}

TEST_F(DeepTuneModelFileTest, TransferCopiesMatchedColumnsIntoAChangedSpace) {
  const Space space_a(make_job(R"(  - {name: keep, type: float, range: [0, 1], default: 0.5}
  - {name: mode, type: enum, values: [x, y, z], default: x}
  - {name: gone, type: int, range: [0, 10], default: 5}
  - {name: old_name, type: bool, default: false}
)"));
  const Space space_b(make_job(R"(  - {name: added, type: float, range: [1, 100], default: 10}
  - {name: mode, type: enum, values: [y, w, x, v], default: x}
  - {name: keep, type: float, range: [0, 1], default: 0.5}
  - {name: new_name, type: bool, default: false}
)"));
  const Evaluate eval = [](const Configuration& c) {
    return ok(num(c, "keep") + (c.at("mode") == "y" ? 2 : 0));
  };
  auto a = searcher("deeptune", space_a, 3);
  for (const auto& o : random_history(space_a, eval, 25, 1))
    a->observe(o);
  const std::string path = (dir_ / "a.model").string();
  ASSERT_TRUE(a->save_model(path).is_ok());
  auto b = searcher("deeptune", space_b, 3, path);
  ASSERT_NE(b, nullptr);
  DeepTuneSearch& da = as_deeptune(*a);
  DeepTuneSearch& db = as_deeptune(*b);
  const auto col = [](const Columns& c, const std::string& name) {
    const auto it = std::find(c.names.begin(), c.names.end(), name);
    EXPECT_NE(it, c.names.end()) << name;
    return static_cast<int64_t>(it - c.names.begin());
  };
  const torch::Tensor wa = da.learner().model()->dense(0)->weight;
  const torch::Tensor wb = db.learner().model()->dense(0)->weight;
  const torch::Tensor ca = da.learner().model()->centroids(0);
  const torch::Tensor cb = db.learner().model()->centroids(0);
  for (const std::string name : {"keep", "mode=x", "mode=y"}) {
    const int64_t ja = col(da.columns(), name), jb = col(db.columns(), name);
    const double sa = da.columns().stddev[static_cast<size_t>(ja)];
    const double sb = db.columns().stddev[static_cast<size_t>(jb)];
    const double ma = da.columns().mean[static_cast<size_t>(ja)];
    const double mb = db.columns().mean[static_cast<size_t>(jb)];
    // The same function of the raw encoding: weights rescaled by the new column's spread.
    EXPECT_TRUE(torch::allclose(wb.select(1, jb), wa.select(1, ja) * (sb / sa), 1e-5, 1e-6))
        << name;
    EXPECT_TRUE(
        torch::allclose(cb.select(1, jb), (ma + ca.select(1, ja) * sa - mb) / sb, 1e-5, 1e-5))
        << name;
  }
  // Deeper layers have the same shapes and copy as they are.
  EXPECT_TRUE(
      torch::equal(da.learner().model()->dense(1)->weight, db.learner().model()->dense(1)->weight));
  EXPECT_TRUE(torch::equal(da.learner().model()->centroids(1), db.learner().model()->centroids(1)));
  // And the transferred model searches the new space.
  const auto h = drive(*b, space_b, eval, 8);
  EXPECT_EQ(h.size(), 8u);
}

TEST_F(DeepTuneModelFileTest, WarmStartCarriesTheBestConfigurationsMappedByName) {
  const Space space_a(make_job(R"(  - {name: keep, type: float, range: [0, 1], default: 0.5}
  - {name: mode, type: enum, values: [x, y, z], default: x}
  - {name: gone, type: int, range: [0, 10], default: 5}
  - {name: narrow, type: int, range: [0, 100], default: 10}
)"));
  // `narrow` shrank: a carried 60 is not valid here and falls back to the default.
  const Space space_b(make_job(R"(  - {name: added, type: float, range: [1, 100], default: 10}
  - {name: mode, type: enum, values: [y, w, x], default: x}
  - {name: keep, type: float, range: [0, 1], default: 0.5}
  - {name: narrow, type: int, range: [0, 50], default: 10}
)"));
  auto a = searcher("deeptune", space_a, 3);
  std::vector<Observation> history;
  for (int i = 0; i < 12; ++i) {
    Configuration c = space_a.default_configuration();
    c["keep"] = std::to_string(0.05 * i);
    c["mode"] = i % 2 == 0 ? "y" : "z";
    c["narrow"] = std::to_string(i % 3 == 0 ? 60 : 20);
    Observation o = i == 5 ? crashed() : ok(static_cast<double>(i));
    o.config = c;
    o.iteration = i;
    a->observe(o);
  }
  const std::string path = (dir_ / "a.model").string();
  ASSERT_TRUE(a->save_model(path).is_ok());
  auto b = searcher("deeptune", space_b, 3, path);
  ASSERT_NE(b, nullptr);
  const std::vector<Configuration>& carried = as_deeptune(*b).carried();
  // The 8 best ok trials, best first: 11, 10, 9, 8, 7, 6, 4, 3 (5 crashed).
  ASSERT_EQ(carried.size(), 8u);
  const int order[] = {11, 10, 9, 8, 7, 6, 4, 3};
  for (size_t k = 0; k < carried.size(); ++k) {
    const int i = order[k];
    EXPECT_NEAR(num(carried[k], "keep"), 0.05 * i, 1e-9) << k;
    EXPECT_EQ(carried[k].at("mode"), i % 2 == 0 ? "y" : "x") << k;  // z is not a value here
    EXPECT_EQ(carried[k].at("narrow"), i % 3 == 0 ? "10" : "20") << k;
    EXPECT_EQ(carried[k].at("added"), "10") << k;  // not in the source: the default
    EXPECT_FALSE(carried[k].contains("gone")) << k;
  }
  // Saved again before it has trials of its own, the warm model passes them on.
  const std::string again = (dir_ / "b.model").string();
  ASSERT_TRUE(b->save_model(again).is_ok());
  auto c = searcher("deeptune", space_b, 4, again);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(as_deeptune(*c).carried(), carried);
}

TEST_F(DeepTuneModelFileTest, WarmStartDrawsAroundWhereTheSourceDidBest) {
  // 12 parameters; the source study's best trials have every x near 0.9. With no trial of its
  // own yet, a warm start's first proposals lie near there; a cold start's, at random, do not.
  const Space space(make_job(floats(12)));
  const Evaluate eval = [](const Configuration& c) {
    double s = 0;
    for (int i = 0; i < 12; ++i)
      s -= std::abs(num(c, "x" + std::to_string(i)) - 0.9);
    return ok(s);
  };
  auto a = searcher("deeptune", space, 11);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 40; ++i) {
    Configuration c = space.sample(rng);
    if (i % 4 == 0) {
      for (int j = 0; j < 12; ++j)
        c["x" + std::to_string(j)] = std::to_string(0.85 + 0.01 * (i % 10));
    }
    Observation o = eval(c);
    o.config = c;
    o.iteration = i;
    a->observe(o);
  }
  const std::string path = (dir_ / "a.model").string();
  ASSERT_TRUE(a->save_model(path).is_ok());
  const auto mean_distance = [&](Searcher& s) {
    auto proposals = s.propose({}, 8);
    EXPECT_TRUE(proposals.is_ok());
    double d = 0;
    for (const Configuration& c : *proposals)
      d -= *eval(c).objective / 12;
    return d / static_cast<double>(proposals->size());
  };
  // The same model without its carried configurations (as a model file from before they were
  // saved): the model alone ranks uniform draws.
  const std::string bare = (dir_ / "bare.model").string();
  {
    std::ifstream in(path, std::ios::binary);
    std::string magic, length;
    std::getline(in, magic);
    std::getline(in, length);
    std::string text(std::stoul(length), '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    const std::string tensors((std::istreambuf_iterator<char>(in)), {});
    nlohmann::json meta = nlohmann::json::parse(text);
    ASSERT_TRUE(meta.contains("carried"));
    meta.erase("carried");
    const std::string out_text = meta.dump();
    std::ofstream out(bare, std::ios::binary);
    out << magic << '\n' << out_text.size() << '\n' << out_text << tensors;
  }
  auto warm = searcher("deeptune", space, 12, path);
  auto model_only = searcher("deeptune", space, 12, bare);
  auto cold = searcher("deeptune", space, 12);
  ASSERT_TRUE(warm && model_only && cold);
  EXPECT_TRUE(as_deeptune(*model_only).carried().empty());
  const double warm_d = mean_distance(*warm);
  const double model_d = mean_distance(*model_only);
  const double cold_d = mean_distance(*cold);
  // Seen: warm 0.04, model only 0.20, cold 0.37.
  EXPECT_LT(warm_d, 0.6 * model_d);
  EXPECT_GT(cold_d, 0.3);  // uniform draws average about 0.41 from 0.9
}

// A warm start hedges with a model of its own: initialized and trained as a cold study's model
// (bit for bit, from the same seed and observations), ranking every other proposal by default
// (wayfinder.deeptune_warm_hedge 0.5); none with the knob at 0, none in a cold study.
TEST_F(DeepTuneModelFileTest, AWarmStartsOwnModelIsWhatAColdStudyWouldHaveLearned) {
  const Space space(make_job(floats(6)));
  const Evaluate toward_high = [](const Configuration& c) {
    double s = 0;
    for (int i = 0; i < 6; ++i)
      s -= std::abs(num(c, "x" + std::to_string(i)) - 0.9);
    return ok(s);
  };
  const Evaluate toward_low = [](const Configuration& c) {
    double s = 0;
    for (int i = 0; i < 6; ++i)
      s -= std::abs(num(c, "x" + std::to_string(i)) - 0.1);
    return ok(s);
  };
  auto source = searcher("deeptune", space, 3);
  for (const Observation& o : random_history(space, toward_high, 24, 8))
    source->observe(o);
  const std::string path = (dir_ / "source.model").string();
  ASSERT_TRUE(source->save_model(path).is_ok());

  auto warm = searcher("deeptune", space, 9, path);
  auto cold = searcher("deeptune", space, 9);
  ASSERT_TRUE(warm && cold);
  ASSERT_NE(as_deeptune(*warm).own_model(), nullptr);
  EXPECT_EQ(as_deeptune(*cold).own_model(), nullptr);
  for (const Observation& o : random_history(space, toward_low, 14, 21)) {
    warm->observe(o);
    cold->observe(o);
  }
  ASSERT_TRUE(as_deeptune(*warm).train().is_ok());
  ASSERT_TRUE(as_deeptune(*cold).train().is_ok());
  const auto same_weights = [](Learner& a, Learner& b) {
    auto pa = a.model()->named_parameters();
    auto pb = b.model()->named_parameters();
    if (pa.size() != pb.size())
      return false;
    for (const auto& item : pa) {
      if (!torch::equal(item.value(), pb[item.key()]))
        return false;
    }
    return true;
  };
  EXPECT_TRUE(same_weights(*as_deeptune(*warm).own_model(), as_deeptune(*cold).learner()));
  EXPECT_FALSE(same_weights(as_deeptune(*warm).learner(), as_deeptune(*cold).learner()));
  // Every other proposal is the own model's; none in a cold study.
  int own = 0;
  for (size_t n = 14; n < 24; ++n) {
    own += as_deeptune(*warm).own_model_proposes(n) ? 1 : 0;
    EXPECT_NE(as_deeptune(*warm).own_model_proposes(n),
              as_deeptune(*warm).own_model_proposes(n + 1));
    EXPECT_FALSE(as_deeptune(*cold).own_model_proposes(n));
  }
  EXPECT_EQ(own, 5);

  ASSERT_TRUE(KnobRegistry::global().set("wayfinder.deeptune_warm_hedge", "0").is_ok());
  auto unhedged = searcher("deeptune", space, 9, path);
  KnobRegistry::global().reset_for_testing();
  ASSERT_TRUE(unhedged);
  EXPECT_EQ(as_deeptune(*unhedged).own_model(), nullptr);
}

TEST_F(DeepTuneModelFileTest, MissingOrBrokenModelFileIsAClearError) {
  const Space space(make_job(floats(3)));
  const std::string missing = (dir_ / "nope.model").string();
  auto s = make_searcher("deeptune", space, SearchOptions{.seed = 1, .model_in = missing});
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_NE(s.status().to_string().find(missing), std::string::npos);

  const std::string junk = (dir_ / "junk.model").string();
  std::ofstream(junk) << "hello\n";
  s = make_searcher("deeptune", space, SearchOptions{.seed = 1, .model_in = junk});
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(s.status().to_string().find(junk), std::string::npos);

  // A good file cut short.
  auto a = searcher("deeptune", space, 1);
  const std::string good = (dir_ / "good.model").string();
  ASSERT_TRUE(a->save_model(good).is_ok());
  const std::string cut = (dir_ / "cut.model").string();
  fs::copy_file(good, cut);
  fs::resize_file(cut, fs::file_size(good) - 10);
  s = make_searcher("deeptune", space, SearchOptions{.seed = 1, .model_in = cut});
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(s.status().to_string().find("truncated"), std::string::npos) << s.status().to_string();
  // A header that is not JSON.
  const std::string bad_json = (dir_ / "bad_json.model").string();
  std::ofstream(bad_json) << "sluice-deeptune-model 1\n5\n{oops";
  s = make_searcher("deeptune", space, SearchOptions{.seed = 1, .model_in = bad_json});
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
}

// ---------------------------------------------------------------------------------------------
// explain()

TEST_F(DeepTuneSearchTest, ExplainRanksTheParameterThatMattersFirst) {
  const Space space(
      make_job(floats(6) + "  - {name: e, type: enum, values: [a, b, c], default: a}\n"));
  const Evaluate eval = [](const Configuration& c) {
    if (num(c, "x0") > 0.7)
      return crashed();
    return ok(5 * num(c, "x3"));
  };
  const auto history = random_history(space, eval, 80, 2);
  auto s = searcher("deeptune", space, 1);
  for (const auto& o : history)
    s->observe(o);
  auto ins = s->explain(history);
  ASSERT_TRUE(ins.is_ok()) << ins.status().to_string();
  ASSERT_EQ(ins->all.size(), 7u);
  EXPECT_EQ(ins->all[0].parameter, "x3");
  double total = 0;
  for (const auto& e : ins->all)
    total += e.importance;
  EXPECT_NEAR(total, 1, 1e-9);
  EXPECT_GT(ins->all[0].importance, 0.3);
  EXPECT_GT(ins->all[0].effect, 0);
  EXPECT_EQ(ins->all[0].best_value, "1");
  ASSERT_FALSE(ins->raise.empty());
  EXPECT_EQ(ins->raise[0].parameter, "x3");
  // Crashes of the last 30% predicted by a model of the first 70%.
  EXPECT_EQ(ins->crashes.evaluated, 24);
  EXPECT_GT(ins->crashes.crashes, 0);
  // Always guessing "ok" would score about 0.7 with recall 0; measured 0.75-1 over six seeds.
  EXPECT_GE(ins->crashes.accuracy, 0.7);
  EXPECT_GE(ins->crashes.recall, 0.5);
  EXPECT_FALSE(ins->notes.empty());
  EXPECT_TRUE(ins->caution.empty()) << ins->caution;  // about 56 ok trials for 9 inputs
}

TEST_F(DeepTuneSearchTest, ExplainCautionsWhenTrialsAreFewerThanInputs) {
  // 60 inputs and 30 trials, one or more of them crashed (only ok trials count).
  const Space space(make_job(floats(60)));
  const Evaluate eval = [](const Configuration& c) {
    return num(c, "x5") > 0.97 ? crashed() : ok(5 * num(c, "x3"));
  };
  auto history = random_history(space, eval, 30, 6);
  history[4].outcome = Outcome::kCrash;
  history[4].objective.reset();
  const auto ok_trials = std::count_if(history.begin(), history.end(),
                                       [](const Observation& o) { return !is_failure(o.outcome); });
  auto s = searcher("deeptune", space, 1);
  for (const auto& o : history)
    s->observe(o);
  auto ins = s->explain(history);
  ASSERT_TRUE(ins.is_ok()) << ins.status().to_string();
  EXPECT_NE(ins->caution.find(fmt::format("{} ok trials for 60 model inputs", ok_trials)),
            std::string::npos)
      << ins->caution;
  EXPECT_FALSE(ins->all.empty());  // the tables are still there
}

TEST_F(DeepTuneSearchTest, NeighboursMoveTheParameterThePredictionDependsOnMost) {
  const Space space(make_job(floats(20)));
  const Evaluate eval = [](const Configuration& c) { return ok(5 * num(c, "x3")); };
  const auto history = random_history(space, eval, 60, 4);
  auto s = searcher("deeptune", space, 1);
  auto* dt = dynamic_cast<DeepTuneSearch*>(s.get());
  ASSERT_NE(dt, nullptr);
  EXPECT_TRUE(dt->neighbour_weights().empty());  // nothing learned yet
  for (const auto& o : history)
    s->observe(o);
  ASSERT_TRUE(dt->train().is_ok());
  const std::vector<double> w = dt->neighbour_weights();
  ASSERT_EQ(w.size(), 20u);
  EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1, 1e-9);
  const auto top = std::max_element(w.begin(), w.end()) - w.begin();
  EXPECT_EQ(top, 3);
  // Half the choices are uniform (1/40 each); x3 takes a large part of the other half.
  EXPECT_GT(w[3], 0.2);
  for (double v : w)
    EXPECT_GE(v, 0.5 / 20 - 1e-12);
}

TEST_F(DeepTuneSearchTest, RecombinedCandidatesTakeAllButOneValueFromTheBest) {
  // Every candidate a crossover of the best (then one parameter moved): a proposal may differ
  // from the best trials' values in one parameter at most.
  ASSERT_TRUE(KnobRegistry::global().set("wayfinder.deeptune_local_share", "1").is_ok());
  ASSERT_TRUE(KnobRegistry::global().set("wayfinder.deeptune_recombine_share", "1").is_ok());
  const Space space(make_job(floats(12)));
  const Evaluate eval = [](const Configuration& c) {
    return ok(num(c, "x0") + num(c, "x1") + num(c, "x2"));
  };
  const auto history = random_history(space, eval, 20, 6);
  auto s = searcher("deeptune", space, 2);
  for (const auto& o : history)
    s->observe(o);
  auto batch = s->propose(history, 5);
  KnobRegistry::global().reset_for_testing();
  ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
  ASSERT_EQ(batch->size(), 5u);
  // The parents: the best fifth of 20 ok trials, but at least 3 — here 4.
  std::vector<Observation> sorted = history;
  std::sort(sorted.begin(), sorted.end(),
            [](const Observation& a, const Observation& b) { return *a.objective > *b.objective; });
  sorted.resize(4);
  bool mixes_parents = false;
  for (const Configuration& c : *batch) {
    int foreign = 0;
    std::set<size_t> sources;
    for (const auto& [name, value] : c) {
      bool found = false;
      for (size_t i = 0; i < sorted.size(); ++i) {
        if (sorted[i].config.at(name) == value) {
          found = true;
          sources.insert(i);
        }
      }
      foreign += found ? 0 : 1;
    }
    EXPECT_LE(foreign, 1) << configuration_key(c);
    mixes_parents = mixes_parents || sources.size() > 1;
  }
  EXPECT_TRUE(mixes_parents);
}

TEST_F(DeepTuneSearchTest, DensityCandidatesTakeTheirValuesFromTheBestTrials) {
  // No neighbours: the pool is draws around the best tenth of the ok trials (at least 3) or, with
  // the share at 0, uniform samples. In a space of 16 enums of 8 values, a uniform value is one
  // of the 3 best trials' values of that parameter about a third of the time, a draw around them
  // (prior weight 1/4) about 80 % of the time; the model's ranking then favours candidates like
  // the best in both pools. Measured: 0.88 against 0.57.
  std::string enums;
  for (int i = 0; i < 16; ++i)
    enums += "  - {name: e" + std::to_string(i) +
             ", type: enum, values: [a, b, c, d, e, f, g, h], default: a}\n";
  const Space space(make_job(enums));
  const Evaluate eval = [](const Configuration& c) {
    int a = 0;
    for (const auto& [name, value] : c)
      a += value == "a" ? 1 : 0;
    return ok(a);
  };
  const auto history = random_history(space, eval, 20, 8);
  std::vector<Observation> best3 = history;
  std::sort(best3.begin(), best3.end(),
            [](const Observation& x, const Observation& y) { return *x.objective > *y.objective; });
  best3.resize(3);
  const auto share_from_best = [&](double density_share) {
    EXPECT_TRUE(KnobRegistry::global().set("wayfinder.deeptune_local_share", "0").is_ok());
    EXPECT_TRUE(KnobRegistry::global()
                    .set("wayfinder.deeptune_density_share", std::to_string(density_share))
                    .is_ok());
    auto s = searcher("deeptune", space, 3);
    KnobRegistry::global().reset_for_testing();
    for (const auto& o : history)
      s->observe(o);
    auto batch = s->propose(history, 8);
    EXPECT_TRUE(batch.is_ok()) << batch.status().to_string();
    int from_best = 0, values = 0;
    for (const Configuration& c : *batch) {
      for (const auto& [name, value] : c) {
        from_best += std::any_of(best3.begin(), best3.end(),
                                 [&](const Observation& o) { return o.config.at(name) == value; });
        ++values;
      }
    }
    return static_cast<double>(from_best) / values;
  };
  const double dense = share_from_best(1);
  const double uniform = share_from_best(0);
  RecordProperty("dense", std::to_string(dense));
  RecordProperty("uniform", std::to_string(uniform));
  EXPECT_GT(dense, 0.8);
  EXPECT_LT(uniform, 0.7);
}

TEST_F(DeepTuneSearchTest, ExplainWithoutDataIsAPreconditionError) {
  const Space space(make_job(floats(3)));
  auto s = searcher("deeptune", space, 1);
  auto ins = s->explain({});
  ASSERT_FALSE(ins.is_ok());
  EXPECT_EQ(ins.status().code(), StatusCode::kFailedPrecondition);
}

// Not a test: the figure for docs (algorithm time per iteration with a long history and a wide
// space). Run with --gtest_also_run_disabled_tests --gtest_filter=*TimePerIteration*.
TEST_F(DeepTuneSearchTest, DISABLED_TimePerIteration) {
  // SLUICE_WAYFINDER_DEEPTUNE_* variables apply, to measure other settings.
  ASSERT_TRUE(KnobRegistry::global().load_environment(KnobRegistry::current_environment()).is_ok());
  std::string params = floats(100);
  for (int i = 0; i < 50; ++i)
    params +=
        "  - {name: e" + std::to_string(i) + ", type: enum, values: [a, b, c, d], default: a}\n";
  const Space space(make_job(params));
  ASSERT_EQ(space.encoded_names().size(), 300u);
  const Evaluate eval = [](const Configuration& c) {
    return num(c, "x0") > 0.9 ? crashed() : ok(num(c, "x1") + (c.at("e3") == "b" ? 1 : 0));
  };
  auto history = random_history(space, eval, 300, 1);
  auto s = searcher("deeptune", space, 1);
  for (const auto& o : history)
    s->observe(o);
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  ASSERT_TRUE(s->propose(history, 1).is_ok());  // the catch-up update after a replay
  const double first = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> times;
  for (int i = 0; i < 10; ++i) {
    t0 = Clock::now();
    auto next = s->propose(history, 1);
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    ASSERT_TRUE(next.is_ok());
    Observation o = eval(next->front());
    o.config = next->front();
    o.iteration = static_cast<int64_t>(history.size());
    s->observe(o);
    history.push_back(o);
  }
  std::sort(times.begin(), times.end());
  std::printf(
      "history %zu, 300 columns: first propose %.3f s, then median %.3f s (min %.3f, max "
      "%.3f)\n",
      history.size(), first, times[times.size() / 2], times.front(), times.back());
}

// ---------------------------------------------------------------------------------------------
// A study end to end

TEST_F(DeepTuneModelFileTest, RunsAStudyAndLeavesItsModel) {
  auto j = parse_job(R"Y(name: dt
parameters:
  - {name: x, type: int, range: [0, 20], default: 10}
  - {name: y, type: enum, values: [a, b, c], default: a}
commands:
  bench: 'if [ {{x}} -gt 17 ]; then exit 1; fi; echo "{\"score\": $(( 100 - ({{x}} - 3) * ({{x}} - 3) ))}"'
metric: {name: score, json: score, direction: maximize}
isolation: {netns: false}
)Y",
                     "dt.yaml", dir_.string());
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  auto store = StudyStore::open("sqlite:" + (dir_ / "s.db").string());
  ASSERT_TRUE(store.is_ok());
  const std::string model = (dir_ / "dt.model").string();
  StudyOptions opts{.search = "deeptune",
                    .seed = 5,
                    .budget = 10,
                    .work_dir = (dir_ / "w").string(),
                    .model_out = model};
  auto s = run_study(*j, **store, opts);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->trials, 10);
  EXPECT_TRUE(fs::exists(model));
  // A second study of the same job starts warm from it.
  opts.study = "dt2";
  opts.model_in = model;
  opts.model_out = (dir_ / "dt2.model").string();
  auto s2 = run_study(*j, **store, opts);
  ASSERT_TRUE(s2.is_ok()) << s2.status().to_string();
  EXPECT_EQ(s2->trials, 10);
  // The study remembers where it started: resuming without --warm-start keeps that model,
  // naming another one is refused before any trial runs.
  auto info = (*store)->find_study("dt2");
  ASSERT_TRUE(info.is_ok() && info->has_value());
  EXPECT_EQ((*info)->model_in, model);
  opts.model_in.clear();
  opts.budget = 12;
  auto resumed = run_study(*j, **store, opts);
  ASSERT_TRUE(resumed.is_ok()) << resumed.status().to_string();
  EXPECT_EQ(resumed->trials, 12);
  opts.model_in = (dir_ / "dt2.model").string();
  opts.budget = 14;
  auto other = run_study(*j, **store, opts);
  ASSERT_FALSE(other.is_ok());
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("warm from " + model), std::string::npos)
      << other.status().to_string();
  auto trials = (*store)->trials((*info)->id);
  ASSERT_TRUE(trials.is_ok());
  EXPECT_EQ(trials->size(), 12u);
}

TEST_F(DeepTuneModelFileTest, AFinishedStudyRunAgainKeepsItsModel) {
  auto j = parse_job(R"Y(name: keep
parameters:
  - {name: x, type: int, range: [0, 20], default: 10}
  - {name: y, type: float, range: [0, 1], default: 0.5}
commands:
  bench: 'echo "{\"score\": $(( 100 - ({{x}} - 3) * ({{x}} - 3) ))}"'
metric: {name: score, json: score, direction: maximize}
isolation: {netns: false}
)Y",
                     "keep.yaml", dir_.string());
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  auto store = StudyStore::open("sqlite:" + (dir_ / "k.db").string());
  ASSERT_TRUE(store.is_ok());
  StudyOptions opts{
      .search = "deeptune", .seed = 2, .budget = 8, .work_dir = (dir_ / "w").string()};
  const auto contents = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto first = run_study(*j, **store, opts);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_FALSE(first->model_path.empty());
  const std::string trained = contents(first->model_path);
  ASSERT_FALSE(trained.empty());
  // Run again with nothing left to evaluate (as a report script does): the model stays.
  auto again = run_study(*j, **store, opts);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->model_path, first->model_path);
  EXPECT_EQ(contents(first->model_path), trained);
  // Asked for by name, it is saved (trained on the whole history first).
  opts.model_out = (dir_ / "asked.model").string();
  auto asked = run_study(*j, **store, opts);
  ASSERT_TRUE(asked.is_ok()) << asked.status().to_string();
  EXPECT_TRUE(fs::exists(opts.model_out));
  // More trials: the model is saved again.
  opts.model_out.clear();
  opts.budget = 10;
  auto more = run_study(*j, **store, opts);
  ASSERT_TRUE(more.is_ok()) << more.status().to_string();
  EXPECT_EQ(more->trials, 10);
  EXPECT_NE(contents(first->model_path), trained);
}

// Searchers without a model refuse --save-model and --warm-start before the first trial.
TEST_F(DeepTuneModelFileTest, ModelOptionsOnAModelFreeSearchAreRefusedUpFront) {
  auto j = parse_job(R"Y(name: plain
parameters:
  - {name: x, type: int, range: [0, 20], default: 10}
commands:
  bench: 'echo "{\"score\": {{x}}}"'
metric: {name: score, json: score, direction: maximize}
isolation: {netns: false}
)Y",
                     "plain.yaml", dir_.string());
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  auto store = StudyStore::open("sqlite:" + (dir_ / "p.db").string());
  ASSERT_TRUE(store.is_ok());
  StudyOptions opts{.study = "save",
                    .search = "random",
                    .budget = 5,
                    .work_dir = (dir_ / "w").string(),
                    .model_out = (dir_ / "never.model").string()};
  auto s = run_study(*j, **store, opts);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("keeps no model"), std::string::npos);
  opts.study = "warm";
  opts.model_out.clear();
  opts.model_in = (dir_ / "some.model").string();
  s = run_study(*j, **store, opts);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--warm-start needs --search deeptune"), std::string::npos)
      << s.status().to_string();
  // Refused runs leave no study behind, so the names stay free for a corrected run.
  auto studies = (*store)->list_studies();
  ASSERT_TRUE(studies.is_ok());
  EXPECT_TRUE(studies->empty());
  EXPECT_FALSE(fs::exists(dir_ / "never.model"));
  opts.model_in.clear();
  s = run_study(*j, **store, opts);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->trials, 5);
}

}  // namespace
}  // namespace sluice::wf::deeptune
