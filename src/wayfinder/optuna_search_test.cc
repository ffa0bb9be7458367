// The Optuna TPE searcher: proposals, failures, replayed history, reproducibility, learning, and
// the errors of a missing or broken bridge. Skipped where python3 cannot import optuna.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "sluice/common/knobs.h"
#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/search.h"
#include "sluice/wayfinder/space.h"

namespace sluice::wf {
namespace {

Job mixed_job() {
  auto job = parse_job(R"Y(name: mixed
parameters:
  - {name: conns, type: int, range: [1, 100000], log: true, default: 64}
  - {name: ratio, type: float, range: [0.001, 10], log: true, default: 0.5}
  - {name: bias, type: float, range: [-1, 1], default: 0}
  - {name: level, type: int, range: [0, 9], default: 3}
  - {name: mode, type: enum, values: [off, lazy, eager, "on"], default: "off"}
  - {name: fast, type: bool, default: false}
  - {name: syncookies, type: int, range: [0, 2], fixed: 1}
commands: {bench: "true"}
metric: {name: m, regex: "([0-9.]+)"}
)Y");
  EXPECT_TRUE(job.is_ok()) << job.status().to_string();
  return *job;
}

Job bowl_job() {
  auto job = parse_job(R"Y(name: bowl
parameters:
  - {name: x, type: float, range: [0, 1], default: 0.05}
  - {name: y, type: float, range: [0, 1], default: 0.95}
  - {name: shape, type: enum, values: [a, b, c, d], default: a}
commands: {bench: "true"}
metric: {name: m, regex: "([0-9.]+)"}
)Y");
  EXPECT_TRUE(job.is_ok()) << job.status().to_string();
  return *job;
}

double bowl(const Configuration& c) {
  const double x = std::stod(c.at("x")), y = std::stod(c.at("y"));
  return -(x - 0.7) * (x - 0.7) - (y - 0.2) * (y - 0.2) + (c.at("shape") == "c" ? 0.3 : 0.0);
}

// Sets a knob for one test and puts its earlier value back.
class ScopedKnob {
 public:
  ScopedKnob(const std::string& name, const std::string& value) : name_(name) {
    old_ = KnobRegistry::global().info(name)->value;
    EXPECT_TRUE(KnobRegistry::global().set(name, value).is_ok());
  }
  ~ScopedKnob() { EXPECT_TRUE(KnobRegistry::global().set(name_, old_).is_ok()); }

 private:
  std::string name_, old_;
};

// Every value valid for its parameter and in the text form Space::sample writes.
void expect_valid(const Space& space, const Configuration& c) {
  ASSERT_EQ(c.size(), space.parameters().size()) << configuration_key(c);
  for (const Parameter& p : space.parameters()) {
    ASSERT_TRUE(c.contains(p.name)) << p.name;
    const std::string& v = c.at(p.name);
    if (p.fixed) {
      EXPECT_EQ(v, *p.fixed) << p.name;
      continue;
    }
    auto canon = canonical_value(p, v);
    ASSERT_TRUE(canon.is_ok()) << canon.status().to_string();
    if (p.type == ParamType::kFloat) {
      const double d = std::stod(v);
      EXPECT_TRUE(v == fmt::format("{:.6g}", d) || v == *canon) << p.name << "=" << v;
    } else {
      EXPECT_EQ(v, *canon) << p.name;
    }
  }
}

class OptunaSearchTest : public ::testing::Test {
 protected:
  // The searcher, or nullptr with skip_ set when this machine's python3 has no optuna.
  std::unique_ptr<Searcher> make(const Space& space, uint64_t seed) {
    auto s = make_searcher("optuna", space, seed);
    if (!s.is_ok() && s.status().code() == StatusCode::kUnavailable) {
      skip_ = s.status().message();
      return nullptr;
    }
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(*s) : nullptr;
  }

  // Runs `iterations` trials of `objective` (nullopt: the trial fails), the default first.
  template <typename F>
  std::vector<Observation> run(Searcher& s, const Space& space, int iterations, F objective) {
    std::vector<Observation> hist;
    for (int i = 0; i < iterations; ++i) {
      Configuration c;
      if (i == 0) {
        c = space.default_configuration();
      } else {
        auto p = s.propose(hist, 1);
        EXPECT_TRUE(p.is_ok()) << p.status().to_string();
        if (!p.is_ok() || p->empty())
          break;
        c = (*p)[0];
      }
      Observation o{.iteration = i, .config = c, .is_default = i == 0};
      const std::optional<double> v = objective(c);
      o.outcome = v ? Outcome::kOk : Outcome::kCrash;
      if (v) {
        o.objective = *v;
        o.metrics["m"] = *v;
      }
      s.observe(o);
      hist.push_back(o);
    }
    return hist;
  }

  std::string skip_;
};

#define OPTUNA_OR_SKIP(var, space, seed) \
  auto var = make(space, seed);          \
  if (!var && !skip_.empty())            \
    GTEST_SKIP() << skip_;               \
  ASSERT_NE(var, nullptr)

TEST_F(OptunaSearchTest, ProposalsAreValidForAMixedSpace) {
  const Job job = mixed_job();
  const Space space(job);
  OPTUNA_OR_SKIP(s, space, 7);
  const auto hist = run(*s, space, 25, [](const Configuration& c) -> std::optional<double> {
    return std::log(std::stod(c.at("conns"))) + std::stod(c.at("bias"));
  });
  ASSERT_EQ(hist.size(), 25u);
  std::set<std::string> seen;
  for (const auto& o : hist) {
    expect_valid(space, o.config);
    EXPECT_TRUE(seen.insert(configuration_key(o.config)).second) << "repeated a configuration";
  }
  // A batch: distinct, valid, none of them measured already.
  auto batch = s->propose(hist, 4);
  ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
  ASSERT_EQ(batch->size(), 4u);
  for (const auto& c : *batch) {
    expect_valid(space, c);
    EXPECT_TRUE(seen.insert(configuration_key(c)).second);
  }
}

TEST_F(OptunaSearchTest, FailuresAreAccepted) {
  const Job job = mixed_job();
  const Space space(job);
  OPTUNA_OR_SKIP(s, space, 3);
  // A crash region: everything with fast=true fails; most trials fail at first.
  const auto hist = run(*s, space, 20, [](const Configuration& c) -> std::optional<double> {
    if (c.at("fast") == "true" || c.at("mode") != "lazy")
      return std::nullopt;
    return std::stod(c.at("bias"));
  });
  ASSERT_EQ(hist.size(), 20u);
  auto p = s->propose(hist, 1);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->size(), 1u);
  expect_valid(space, (*p)[0]);
}

TEST_F(OptunaSearchTest, FailedTrialsSteerTpeAwayFromACrashRegion) {
  const Job job = bowl_job();
  const Space space(job);
  // shape=d always crashes: a quarter of random proposals.
  const auto crashes_in_last_half = [&](const std::string& failures) -> int {
    ScopedKnob k("wayfinder.optuna_failures", failures);
    auto s = make(space, 4);
    if (!s)
      return -1;
    const auto hist = run(*s, space, 40, [](const Configuration& c) -> std::optional<double> {
      if (c.at("shape") == "d")
        return std::nullopt;
      return bowl(c);
    });
    int n = 0;
    for (size_t i = 20; i < hist.size(); ++i)
      n += is_failure(hist[i].outcome) ? 1 : 0;
    return n;
  };
  const int worst = crashes_in_last_half("worst");
  if (worst < 0 && !skip_.empty())
    GTEST_SKIP() << skip_;
  const int fail = crashes_in_last_half("fail");
  EXPECT_LE(worst, 3) << "of 20";
  EXPECT_LT(worst, fail);
}

TEST_F(OptunaSearchTest, ReplayedHistoryIsObservedBeforeTheFirstProposal) {
  const Job job = bowl_job();
  const Space space(job);
  // History a resumed study replays: configurations this searcher never proposed.
  std::mt19937_64 rng(11);
  std::vector<Observation> hist;
  for (int i = 0; i < 30; ++i) {
    const Configuration c = i == 0 ? space.default_configuration() : space.sample(rng);
    Observation o{.iteration = i, .config = c, .is_default = i == 0};
    if (i % 7 == 3) {
      o.outcome = Outcome::kTimeout;
    } else {
      o.objective = bowl(c);
    }
    hist.push_back(o);
  }
  OPTUNA_OR_SKIP(s, space, 5);
  for (const auto& o : hist)
    s->observe(o);
  auto p = s->propose(hist, 2);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->size(), 2u);
  for (const auto& c : *p) {
    expect_valid(space, c);
    for (const auto& o : hist)
      EXPECT_NE(configuration_key(c), configuration_key(o.config));
  }
  // A history passed to propose() alone (never observed) and one whose scores were rescaled
  // (Equation 4 as the study grows) are both taken as the truth.
  OPTUNA_OR_SKIP(unobserved, space, 5);
  auto q = unobserved->propose(hist, 1);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  std::vector<Observation> rescaled = hist;
  for (auto& o : rescaled) {
    if (o.objective)
      o.objective = 2 * *o.objective + 1;
  }
  auto r = s->propose(rescaled, 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 1u);
  expect_valid(space, (*r)[0]);
}

TEST_F(OptunaSearchTest, SameSeedAndHistoryGiveTheSameProposal) {
  const Job job = mixed_job();
  const Space space(job);
  std::mt19937_64 rng(2);
  std::vector<Observation> hist;
  for (int i = 0; i < 16; ++i) {  // past TPE's 10 random start-up trials
    Observation o{.iteration = i, .config = space.sample(rng)};
    o.objective = std::stod(o.config.at("bias")) + (o.config.at("fast") == "true" ? 1 : 0);
    hist.push_back(o);
  }
  std::vector<std::vector<Configuration>> proposals;
  for (uint64_t seed : {42u, 42u, 43u}) {
    OPTUNA_OR_SKIP(s, space, seed);
    for (const auto& o : hist)
      s->observe(o);
    auto p = s->propose(hist, 2);
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    proposals.push_back(*p);
  }
  EXPECT_EQ(proposals[0], proposals[1]);
  EXPECT_NE(proposals[0], proposals[2]);
}

TEST_F(OptunaSearchTest, TpeImprovesOverItsFirstProposals) {
  const Job job = bowl_job();
  const Space space(job);
  OPTUNA_OR_SKIP(s, space, 1);
  const auto hist =
      run(*s, space, 60, [](const Configuration& c) -> std::optional<double> { return bowl(c); });
  ASSERT_EQ(hist.size(), 60u);
  // The first ten proposals are TPE's random start-up; the last twenty use its model.
  double first = 0, last = 0;
  for (int i = 1; i <= 10; ++i)
    first += *hist[static_cast<size_t>(i)].objective / 10;
  for (size_t i = 40; i < 60; ++i)
    last += *hist[i].objective / 20;
  EXPECT_GT(last, first + 0.1) << "first ten " << first << ", last twenty " << last;
  double best = -1e9;
  for (const auto& o : hist)
    best = std::max(best, *o.objective);
  EXPECT_GT(best, 0.25);  // the optimum is 0.3 (x=0.7, y=0.2, shape=c)
}

TEST(OptunaErrorsTest, MissingBridgeScriptIsAClearError) {
  const Job job = bowl_job();
  const Space space(job);
  ScopedKnob k("wayfinder.optuna_bridge", "/nonexistent/optuna_bridge.py");
  auto s = make_searcher("optuna", space, 1);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_NE(s.status().message().find("/nonexistent/optuna_bridge.py"), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("wayfinder.optuna_bridge"), std::string::npos);
}

TEST(OptunaErrorsTest, MissingPythonIsAClearError) {
  const Job job = bowl_job();
  const Space space(job);
  ScopedKnob k("wayfinder.optuna_python", "/nonexistent/python3");
  auto s = make_searcher("optuna", space, 1);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(s.status().message().find("/nonexistent/python3"), std::string::npos)
      << s.status().message();
}

// A stand-in bridge written by the test: a shell script, so these tests need no optuna.
class OptunaBrokenBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("sluice-optuna-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Status start_with(const std::string& body) {
    const auto path = dir_ / "bridge.sh";
    std::ofstream(path) << body;
    ScopedKnob python("wayfinder.optuna_python", "/bin/sh");
    ScopedKnob bridge("wayfinder.optuna_bridge", path.string());
    ScopedKnob timeout("wayfinder.optuna_timeout_s", "2");
    const Job job = bowl_job();
    const Space space(job);
    auto s = make_searcher("optuna", space, 1);
    if (s.is_ok()) {
      std::vector<Observation> none;
      auto p = (*s)->propose(none, 1);
      return p.status();
    }
    return s.status();
  }

  std::filesystem::path dir_;
};

TEST_F(OptunaBrokenBridgeTest, CrashedBridgeIsAnErrorWithItsStderr) {
  const Status st = start_with("echo 'Traceback: boom in the bridge' >&2; exit 1\n");
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("boom in the bridge"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("exit status 1"), std::string::npos) << st.message();
}

TEST_F(OptunaBrokenBridgeTest, GarbageFromTheBridgeIsAnError) {
  const Status st = start_with("read line; echo 'hello there'; sleep 30\n");
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("hello there"), std::string::npos) << st.message();
}

TEST_F(OptunaBrokenBridgeTest, SilentBridgeTimesOut) {
  const Status st = start_with("sleep 30\n");
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("wayfinder.optuna_timeout_s"), std::string::npos) << st.message();
}

TEST_F(OptunaBrokenBridgeTest, InvalidProposalIsRefused) {
  // Answers init, then proposes a value outside the space.
  const Status st = start_with(
      "read line; echo '{\"ok\": true}'\n"
      "while read line; do case \"$line\" in *'\"ask\"'*)\n"
      "  echo '{\"ok\": true, \"configs\": [{\"x\": \"7\", \"y\": \"0.5\", \"shape\": \"a\"}]}';;\n"
      "esac; done\n");
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("outside"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace sluice::wf
