// Studies: baseline first, budget, resume after a stop or a kill, Equation 4, exports, the
// host-settings journal. Built twice: on an SQLite file (wayfinder_test) and on a throw-away
// PostgreSQL server (wayfinder_pg_test, SLUICE_WF_TEST_POSTGRES), so the store's SQL is checked
// on both backends.
#include "sluice/wayfinder/study.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "sluice/dbos/database.h"
#include "sluice/dbos/testing/pg_server.h"
#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/pipeline.h"
#include "sluice/wayfinder/store.h"

namespace sluice::wf {
namespace {

namespace fs = std::filesystem;

#if SLUICE_WF_TEST_POSTGRES
// The same tests under their own suite name, so ctest tells the two backends apart.
#define StudyTest PgStudyTest

// One throw-away PostgreSQL server for this test process, stopped and removed at exit.
struct SharedPg {
  dbos::testing::PgServer server;
  Status status;
  SharedPg() { status = server.start("fsync = off\nsynchronous_commit = off"); }
};
SharedPg& shared_pg() {
  static SharedPg pg;
  return pg;
}
#endif

class StudyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wf-study-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
#if SLUICE_WF_TEST_POSTGRES
    SharedPg& pg = shared_pg();
    ASSERT_TRUE(pg.status.is_ok()) << pg.status.to_string();
    url_ = pg.server.url();
    {
      // Every test starts from an empty database.
      auto store = StudyStore::open(url_);
      ASSERT_TRUE(store.is_ok()) << store.status().to_string();
      ASSERT_TRUE((*store)
                      ->session()
                      .execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
                      .is_ok());
    }
#else
    url_ = "sqlite:" + (dir_ / "s.db").string();
#endif
    auto j = parse_job(R"Y(name: st
parameters:
  - {name: x, type: int, range: [0, 20], default: 10}
  - {name: y, type: enum, values: [a, b, c], default: a}
commands:
  bench: 'if [ {{x}} -gt 17 ]; then exit 1; fi; echo "{\"score\": $(( 100 - ({{x}} - 3) * ({{x}} - 3) ))}"'
metric: {name: score, json: score, direction: maximize}
isolation: {netns: false}
)Y",
                       "st.yaml", dir_.string());
    ASSERT_TRUE(j.is_ok()) << j.status().to_string();
    job_ = *j;
  }
  void TearDown() override {
    fs::remove_all(dir_);
  }

  StudyOptions options(int64_t budget, const std::string& search = "random") {
    return {.search = search, .seed = 5, .budget = budget, .work_dir = (dir_ / "w").string()};
  }

  fs::path dir_;
  std::string url_;
  Job job_;
};

TEST_F(StudyTest, DefaultFirstThenSearchUntilTheBudget) {
  auto store = StudyStore::open(url_);
  ASSERT_TRUE(store.is_ok());
  auto s = run_study(job_, **store, options(6));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto trials = (*store)->trials(s->study_id);
  ASSERT_EQ(trials->size(), 6u);
  EXPECT_EQ((*trials)[0].role, TrialRole::kDefault);
  EXPECT_EQ((*trials)[0].config.at("x"), "10");
  EXPECT_DOUBLE_EQ((*trials)[0].metrics.at("score"), 51);
  const auto best = best_trial(job_, *trials);
  ASSERT_TRUE(best.has_value());
  const std::string csv = trials_csv(job_, *trials);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  EXPECT_NE(export_configuration(job_, (*trials)[*best].config).find("x: "), std::string::npos);
}

TEST_F(StudyTest, ResumesAfterAStopAndAfterAKill) {
  std::vector<Trial> reference;
  {
    // One uninterrupted study of 8 trials, as the reference.
    auto store = StudyStore::open("sqlite:" + (dir_ / "ref.db").string());
    ASSERT_TRUE(store.is_ok());
    auto s = run_study(job_, **store, options(8));
    ASSERT_TRUE(s.is_ok());
    reference = *(*store)->trials(s->study_id);
  }
  {
    auto store = StudyStore::open(url_);
    ASSERT_TRUE(run_study(job_, **store, options(3)).is_ok());  // stopped after 3
  }
  {
    // A kill in the middle of trial 3: its row is left pending.
    auto store = StudyStore::open(url_);
    Trial t{.iteration = 3, .config = reference[3].config, .started_ns = 1};
    ASSERT_TRUE((*store)->begin_trial(1, t).is_ok());
  }
  auto store = StudyStore::open(url_);
  auto s = run_study(job_, **store, options(8));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto trials = *(*store)->trials(s->study_id);
  ASSERT_EQ(trials.size(), 8u);
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_FALSE(trials[i].pending);
    // Nothing lost or repeated: the same configurations as the uninterrupted study.
    EXPECT_EQ(configuration_key(trials[i].config), configuration_key(reference[i].config)) << i;
  }
}

TEST_F(StudyTest, RequestStopEndsTheStudyAndLeavesItResumable) {
  auto store = StudyStore::open(url_);
  request_stop();
  auto s = run_study(job_, **store, options(5));
  clear_stop();
  ASSERT_TRUE(s.is_ok());
  EXPECT_TRUE(s->stopped);
  auto again = run_study(job_, **store, options(5));
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->trials, 5);
}

TEST_F(StudyTest, ACrashingRegionIsRecordedAsFailures) {
  auto store = StudyStore::open(url_);
  auto s = run_study(job_, **store, options(21, "grid"));  // x over its grid, y fixed to a..c
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto trials = *(*store)->trials(s->study_id);
  int crashes = 0;
  for (const Trial& t : trials) {
    const bool should_crash = std::stoi(t.config.at("x")) > 17;
    EXPECT_EQ(t.outcome == Outcome::kCrash, should_crash) << configuration_key(t.config);
    crashes += t.outcome == Outcome::kCrash ? 1 : 0;
  }
  EXPECT_GT(crashes, 0);
  EXPECT_EQ(s->failures, crashes);
}

TEST_F(StudyTest, SeveralMetricsCombineByEquation4) {
  auto j = parse_job(R"Y(name: eq4
parameters: [{name: x, type: int, range: [0, 1], default: 0}]
commands: {bench: "true"}
metrics:
  - {name: t, regex: "t=([0-9]+)", direction: maximize, weight: 1}
  - {name: m, regex: "m=([0-9]+)", direction: minimize, weight: 1}
)Y");
  ASSERT_TRUE(j.is_ok());
  std::vector<Trial> trials(3);
  trials[0].metrics = {{"t", 100}, {"m", 10}};  // t: 0, m: 0 → 0
  trials[1].metrics = {{"t", 200}, {"m", 30}};  // t: 1, m: 1 → 0
  trials[2].metrics = {{"t", 150}, {"m", 15}};  // t: .5, m: .25 → .25
  const auto obj = objectives(*j, trials);
  EXPECT_DOUBLE_EQ(*obj[0], 0);
  EXPECT_DOUBLE_EQ(*obj[1], 0);
  EXPECT_DOUBLE_EQ(*obj[2], 0.25);
  EXPECT_EQ(best_trial(*j, trials).value(), 2u);
}

TEST_F(StudyTest, AChangedJobIsNotMixedIntoAnOldStudy) {
  auto store = StudyStore::open(url_);
  ASSERT_TRUE(run_study(job_, **store, options(2)).is_ok());
  Job changed = job_;
  changed.text += "\n# edited\n";
  auto s = run_study(changed, **store, options(3));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StudyTest, AKilledRunsHostChangeIsRestoredAndItsTrialRerunOnResume) {
  const std::string setting = (dir_ / "setting").string();
  { std::ofstream(setting) << "5\n"; }
  auto j = parse_job(
      "name: host\nparameters:\n  - {name: x, type: int, range: [0, 9], default: "
      "5, apply: {file: " +
          setting +
          "}}\n"
          "commands: {bench: \"echo value=$(cat " +
          setting +
          ")\"}\n"
          "metric: {name: v, regex: \"value=([0-9]+)\", direction: maximize}\n"
          "isolation: {netns: false, host_changes: allow}\n",
      "host.yaml", dir_.string());
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  {
    auto store = StudyStore::open(url_);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    ASSERT_TRUE(run_study(*j, **store, options(2)).is_ok());
    // Killed in the middle of iteration 2: its value written to the host, the trial pending.
    ASSERT_TRUE((*store)
                    ->begin_trial(1, {.iteration = 2, .config = {{"x", "9"}}, .started_ns = 1})
                    .is_ok());
    HostJournal journal(**store);
    ASSERT_TRUE(journal.set_file(setting, "9").is_ok());
    ASSERT_EQ((*store)->journal_open_entries()->size(), 1u);
  }
  auto store = StudyStore::open(url_);
  ASSERT_TRUE(store.is_ok());
  auto s = run_study(*j, **store, options(4));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  std::ifstream in(setting);
  int v = 0;
  in >> v;
  EXPECT_EQ(v, 5);  // the host's value, restored
  EXPECT_TRUE((*store)->journal_open_entries()->empty());
  auto trials = *(*store)->trials(s->study_id);
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_FALSE(trials[2].pending);
  EXPECT_EQ(trials[2].config.at("x"), "9");  // the interrupted configuration, measured again
  EXPECT_EQ(trials[2].outcome, Outcome::kOk);
  EXPECT_DOUBLE_EQ(trials[2].metrics.at("v"), 9);
  EXPECT_DOUBLE_EQ(trials[0].metrics.at("v"), 5);
}

TEST_F(StudyTest, TheBestIsExportedAsTheServersOwnDirectives) {
  auto j = parse_job(R"Y(name: ex
parameters:
  - {name: backlog, type: int, range: [16, 4096], default: 511}
  - {name: keepalive, type: int, range: [0, 120], default: 65}
  - {name: tcp_backlog, type: int, range: [16, 4096], default: 511}
files:
  - path: s.conf
    content: |
      listen 127.0.0.1:8080 backlog={{backlog}} reuseport;
      keepalive_timeout {{keepalive}};
      root {{workdir}}/www;
commands: {bench: "true"}
metric: {name: v, regex: "v=([0-9]+)"}
export: nginx
)Y");
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  const std::string out =
      export_configuration(*j, {{"backlog", "46"}, {"keepalive", "9"}, {"tcp_backlog", "77"}});
  EXPECT_NE(out.find("\nlisten 127.0.0.1:8080 backlog=46 reuseport;\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nkeepalive_timeout 9;\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("backlog 46"), std::string::npos) << out;
  EXPECT_NE(out.find("\ntcp_backlog 77;\n"), std::string::npos) << out;  // no template line
}

TEST_F(StudyTest, StoreTablesAnswerPlainSql) {
  auto store = StudyStore::open(url_);
  ASSERT_TRUE(run_study(job_, **store, options(3)).is_ok());
  auto r = (*store)->session().query(
      "SELECT count(*) FROM wf_trial t JOIN wf_metric m ON m.study_id = t.study_id AND "
      "m.iteration = t.iteration WHERE m.rep = -1 AND t.outcome = 'ok'");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GE(dbos::value_to_int(r->rows[0][0]).value_or(0), 1);
}

}  // namespace
}  // namespace sluice::wf
