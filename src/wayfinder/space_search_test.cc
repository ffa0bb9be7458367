// The space (sampling, grid, encoding) and both searchers.
#include <gtest/gtest.h>

#include <set>

#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/search.h"
#include "sluice/wayfinder/space.h"

namespace sluice::wf {
namespace {

Job small_job() {
  auto job = parse_job(R"Y(name: s
parameters:
  - {name: a, type: int, range: [1, 1000], log: true, default: 10, grid_points: 4}
  - {name: b, type: enum, values: [x, y, z], default: y}
  - {name: c, type: bool, default: false}
  - {name: pinned, type: int, range: [0, 5], fixed: 2}
commands: {bench: "true"}
metric: {name: m, regex: "([0-9]+)"}
)Y");
  EXPECT_TRUE(job.is_ok()) << job.status().to_string();
  return *job;
}

TEST(SpaceTest, SamplesStayInRangeAndKeepPinnedValues) {
  const Job job = small_job();
  const Space space(job);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 500; ++i) {
    const Configuration c = space.sample(rng);
    const long a = std::stol(c.at("a"));
    EXPECT_GE(a, 1);
    EXPECT_LE(a, 1000);
    EXPECT_EQ(c.at("pinned"), "2");
    EXPECT_TRUE(c.at("b") == "x" || c.at("b") == "y" || c.at("b") == "z");
  }
  EXPECT_EQ(space.default_configuration().at("a"), "10");
  EXPECT_EQ(space.encode(space.default_configuration()).size(), space.encoded_names().size());
}

TEST(SpaceTest, NeighboursChangeOneToThreeFreeParametersAndStayValid) {
  const Job job = small_job();
  const Space space(job);
  EXPECT_FALSE(space.can_vary(3));  // pinned
  EXPECT_TRUE(space.can_vary(0));
  std::mt19937_64 rng(5);
  const Configuration base = space.default_configuration();
  std::set<size_t> changed_counts;
  for (int i = 0; i < 300; ++i) {
    const Configuration c = space.neighbour(base, rng);
    size_t changed = 0;
    for (const auto& [k, v] : c)
      changed += v != base.at(k) ? 1u : 0u;
    changed_counts.insert(changed);
    EXPECT_GE(changed, 1u);
    EXPECT_LE(changed, 3u);
    EXPECT_EQ(c.at("pinned"), "2");
    const long a = std::stol(c.at("a"));
    EXPECT_GE(a, 1);
    EXPECT_LE(a, 1000);
    EXPECT_TRUE(c.at("b") == "x" || c.at("b") == "y" || c.at("b") == "z");
    EXPECT_TRUE(c.at("c") == "true" || c.at("c") == "false");
    // Canonical text: a neighbour hashes like the same configuration sampled.
    EXPECT_EQ(c.at("a"), std::to_string(a));
  }
  EXPECT_EQ(changed_counts, (std::set<size_t>{1, 2, 3}));
}

TEST(SpaceTest, WeightedNeighboursChangeTheParametersWithWeightFirst) {
  const Space space(small_job());
  std::mt19937_64 rng(9);
  const Configuration base = space.default_configuration();
  const std::vector<double> only_c = {0, 0, 1, 5};  // the pinned parameter's weight is ignored
  int single = 0;
  for (int i = 0; i < 200; ++i) {
    const Configuration c = space.neighbour(base, rng, 3, only_c);
    size_t changed = 0;
    for (const auto& [k, v] : c)
      changed += v != base.at(k) ? 1u : 0u;
    ASSERT_NE(c.at("c"), base.at("c")) << "the only weighted parameter is always among the moved";
    EXPECT_EQ(c.at("pinned"), "2");
    if (changed == 1)
      ++single;
  }
  EXPECT_GT(single, 30);  // about a third change one parameter: then only c
  // Weighted 3 : 1, a one-change neighbour moves a about three times as often as b.
  int moved_a = 0, moved_b = 0;
  const std::vector<double> three_to_one = {3, 1, 0, 0};
  for (int i = 0; i < 3000; ++i) {
    const Configuration c = space.neighbour(base, rng, 1, three_to_one);
    moved_a += c.at("a") != base.at("a");
    moved_b += c.at("b") != base.at("b");
  }
  EXPECT_EQ(moved_a + moved_b, 3000);
  EXPECT_NEAR(static_cast<double>(moved_a) / 3000, 0.75, 0.04);
  // All zero is uniform, as without weights.
  std::set<std::string> moved;
  for (int i = 0; i < 300; ++i) {
    const Configuration c = space.neighbour(base, rng, 1, std::vector<double>{0, 0, 0, 0});
    for (const auto& [k, v] : c)
      if (v != base.at(k))
        moved.insert(k);
  }
  EXPECT_EQ(moved, (std::set<std::string>{"a", "b", "c"}));
}

TEST(SpaceTest, RecombinationTakesEachParameterFromOneParentAndKeepsPins) {
  const Space space(small_job());
  const Configuration p1 = {{"a", "1"}, {"b", "x"}, {"c", "false"}, {"pinned", "2"}};
  const Configuration p2 = {{"a", "1000"}, {"b", "z"}, {"c", "true"}, {"pinned", "2"}};
  const Configuration missing_b = {{"a", "7"}, {"c", "true"}};  // b falls back to the default
  std::mt19937_64 rng(11);
  std::set<std::string> a_values, b_values;
  int mixed = 0;
  for (int i = 0; i < 400; ++i) {
    const Configuration* parents[] = {&p1, &p2};
    const Configuration c = space.recombine(parents, rng);
    ASSERT_EQ(c.size(), 4u);
    EXPECT_EQ(c.at("pinned"), "2");
    EXPECT_TRUE(c.at("a") == "1" || c.at("a") == "1000");
    EXPECT_TRUE(c.at("b") == "x" || c.at("b") == "z");
    // The three free parameters are drawn independently: some children mix both parents.
    const bool from_p1 = c.at("a") == "1", b_p1 = c.at("b") == "x", c_p1 = c.at("c") == "false";
    mixed += (from_p1 != b_p1 || b_p1 != c_p1) ? 1 : 0;
    a_values.insert(c.at("a"));
    b_values.insert(c.at("b"));
  }
  EXPECT_EQ(a_values.size(), 2u);
  EXPECT_EQ(b_values.size(), 2u);
  EXPECT_GT(mixed, 200);  // 3/4 of children mix, in expectation
  const Configuration* one[] = {&missing_b};
  const Configuration c = space.recombine(one, rng);
  EXPECT_EQ(c.at("a"), "7");
  EXPECT_EQ(c.at("b"), "y");
  EXPECT_EQ(c.at("pinned"), "2");
}

TEST(SpaceTest, DrawsAroundParentsStayNearWhatTheyAgreeOnAndSpreadWhereTheyDiffer) {
  const Space space(small_job());
  std::mt19937_64 rng(13);
  const Configuration agree1 = {{"a", "100"}, {"b", "z"}, {"c", "true"}, {"pinned", "2"}};
  const Configuration agree2 = {{"a", "100"}, {"b", "z"}, {"c", "false"}, {"pinned", "2"}};
  const Configuration* agreeing[] = {&agree1, &agree2};
  const std::vector<double> agreeing_spreads = space.unit_spreads(agreeing);
  EXPECT_EQ(agreeing_spreads, (std::vector<double>{0, 0, 0, 0}));  // b, c: not numbers
  std::set<std::string> c_values;
  for (int i = 0; i < 300; ++i) {
    const Configuration c = space.sample_around(agreeing, agreeing_spreads, rng, 0.0);
    EXPECT_EQ(c.at("pinned"), "2");
    EXPECT_EQ(c.at("b"), "z");  // no prior weight: only the parents' values
    // Both parents at 100: the narrowest width, 0.02 of the log range (σ ≈ ×1.15).
    const long a = std::stol(c.at("a"));
    EXPECT_GE(a, 50);
    EXPECT_LE(a, 200);
    c_values.insert(c.at("c"));
  }
  EXPECT_EQ(c_values.size(), 2u);  // each parameter from either parent
  // Parents at both ends of a's range: the widest width; children land far from both ends too.
  const Configuration low = {{"a", "1"}, {"b", "x"}, {"c", "true"}, {"pinned", "2"}};
  const Configuration high = {{"a", "1000"}, {"b", "x"}, {"c", "true"}, {"pinned", "2"}};
  const Configuration* apart[] = {&low, &high};
  const std::vector<double> apart_spreads = space.unit_spreads(apart);
  EXPECT_DOUBLE_EQ(apart_spreads[0], 0.5);  // 0 and 1 in a's log range
  int middle = 0;
  for (int i = 0; i < 300; ++i) {
    const long a = std::stol(space.sample_around(apart, apart_spreads, rng, 0.0).at("a"));
    EXPECT_GE(a, 1);
    EXPECT_LE(a, 1000);
    middle += a >= 4 && a <= 250 ? 1 : 0;
  }
  EXPECT_GT(middle, 60);
  // The prior: with weight 1 a draw is uniform, with 1/2 about half the values are the prior's.
  std::set<std::string> b_values;
  int from_parents = 0;
  for (int i = 0; i < 600; ++i) {
    b_values.insert(space.sample_around(agreeing, agreeing_spreads, rng, 1.0).at("b"));
    from_parents +=
        space.sample_around(agreeing, agreeing_spreads, rng, 0.5).at("b") == "z" ? 1 : 0;
  }
  EXPECT_EQ(b_values, (std::set<std::string>{"x", "y", "z"}));
  EXPECT_NEAR(from_parents / 600.0, 0.5 + 0.5 / 3, 0.06);
}

TEST(SpaceTest, CompileHashFollowsOnlyCompileStageValues) {
  auto job = parse_job(R"Y(name: s
parameters:
  - {name: k, type: int, range: [1, 9], default: 1, stage: compile}
  - {name: r, type: int, range: [1, 9], default: 1}
commands: {build: make, bench: "true"}
metric: {name: m, regex: "([0-9]+)"}
)Y");
  ASSERT_TRUE(job.is_ok());
  EXPECT_EQ(compile_hash(*job, {{"k", "1"}, {"r", "1"}}),
            compile_hash(*job, {{"k", "1"}, {"r", "5"}}));
  EXPECT_NE(compile_hash(*job, {{"k", "1"}, {"r", "1"}}),
            compile_hash(*job, {{"k", "2"}, {"r", "1"}}));
}

TEST(SearchTest, RandomSearchProposesUniqueReproducibleConfigurations) {
  const Job job = small_job();
  const Space space(job);
  auto s1 = make_searcher("random", space, 42);
  auto s2 = make_searcher("random", space, 42);
  ASSERT_TRUE(s1.is_ok() && s2.is_ok());
  std::vector<Observation> history;
  std::set<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    auto p1 = (*s1)->propose(history, 1);
    auto p2 = (*s2)->propose(history, 1);
    ASSERT_TRUE(p1.is_ok());
    ASSERT_EQ(p1->size(), 1u);
    EXPECT_EQ((*p1)[0], (*p2)[0]);  // same seed, same history: same proposal (resume)
    EXPECT_TRUE(seen.insert(configuration_key((*p1)[0])).second);
    Observation o{
        .iteration = i, .config = (*p1)[0], .outcome = i % 3 ? Outcome::kOk : Outcome::kCrash};
    (*s1)->observe(o);
    history.push_back(o);
  }
}

TEST(SearchTest, GridSearchVisitsEveryPointOnceThenStops) {
  const Job job = small_job();
  const Space space(job);
  ASSERT_EQ(space.grid_size().value(), 4u * 3u * 2u);  // a: 1, 10 (the default), 100, 1000
  auto s = make_searcher("grid", space, 0);
  ASSERT_TRUE(s.is_ok());
  std::vector<Observation> history;
  history.push_back({.config = space.default_configuration(), .is_default = true});
  std::set<std::string> seen{configuration_key(space.default_configuration())};
  while (true) {
    auto p = (*s)->propose(history, 4);
    ASSERT_TRUE(p.is_ok());
    if (p->empty())
      break;
    for (auto& c : *p) {
      EXPECT_TRUE(seen.insert(configuration_key(c)).second);
      history.push_back({.config = c});
    }
  }
  EXPECT_EQ(seen.size(), 24u);
  EXPECT_FALSE(make_searcher("nope", space, 0).is_ok());
}

}  // namespace
}  // namespace sluice::wf
