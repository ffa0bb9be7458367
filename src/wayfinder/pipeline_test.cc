// The pipeline: outcome classes, medians, the build cache, netns isolation, journal and restore.
#include "sluice/wayfinder/pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/store.h"

namespace sluice::wf {
namespace {

namespace fs = std::filesystem;

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wf-pipeline-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto store = StudyStore::open("sqlite:" + (dir_ / "s.db").string());
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    store_ = std::move(*store);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Job job(const std::string& commands, const std::string& extra = "") {
    const std::string text =
        "name: p\nparameters:\n"
        "  - {name: mode, type: enum, values: [ok, crash, hang, quiet, "
        "die], default: ok}\n"
        "  - {name: k, type: int, range: [1, 9], default: 1, stage: "
        "compile}\n"
        "commands:\n" +
        commands +
        "metric: {name: v, regex: \"value=([0-9.]+)\"}\n"
        "isolation: {netns: false}\n"
        "timeouts: {bench: 2, start: 5, stop: 2}\n" +
        extra;
    auto j = parse_job(text, "test.yaml", dir_.string());
    EXPECT_TRUE(j.is_ok()) << j.status().to_string();
    return *j;
  }

  Outcome run(const Job& j, const std::string& mode, EvalResult* out = nullptr) {
    Evaluator ev(j, *store_, {.work_dir = (dir_ / "work").string()});
    auto r = ev.evaluate({{"mode", mode}, {"k", "1"}}, 0);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (out)
      *out = *r;
    return r->outcome;
  }

  fs::path dir_;
  std::unique_ptr<StudyStore> store_;
};

constexpr const char* kBench =
    "  bench: |\n"
    "    case {{mode}} in\n"
    "      ok) echo value=$((RANDOM % 3 + 10));;\n"
    "      crash) echo value=1; kill -SEGV $$;;\n"
    "      hang) sleep 30;;\n"
    "      quiet) echo nothing here;;\n"
    "      die) exit 3;;\n"
    "    esac\n";

TEST_F(PipelineTest, ClassifiesEveryOutcomeOfABenchmark) {
  const Job j = job(kBench, "repetitions: 3\n");
  EvalResult ok;
  EXPECT_EQ(run(j, "ok", &ok), Outcome::kOk);
  ASSERT_EQ(ok.samples.at("v").size(), 3u);
  EXPECT_GE(ok.metrics.at("v"), 10);
  EXPECT_LE(ok.metrics.at("v"), 12);
  EXPECT_EQ(run(j, "crash"), Outcome::kCrash);
  EXPECT_EQ(run(j, "die"), Outcome::kCrash);
  EXPECT_EQ(run(j, "hang"), Outcome::kTimeout);
  EXPECT_EQ(run(j, "quiet"), Outcome::kMetricMissing);
}

TEST_F(PipelineTest, MedianOfRepetitions) {
  const Job j =
      job("  bench: \"n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; "
          "echo value=$(( (n * 7) % 5 ))\"\n",
          "repetitions: 5\n");
  EvalResult r;
  ASSERT_EQ(run(j, "ok", &r), Outcome::kOk);
  // n = 0..4 → values 0, 2, 4, 1, 3 → median 2.
  EXPECT_DOUBLE_EQ(r.metrics.at("v"), 2);
}

TEST_F(PipelineTest, ServerThatDiesIsAStartFailureOrACrash) {
  const Job early = job("  start: \"exit 1\"\n  ready: \"false\"\n" + std::string(kBench));
  EXPECT_EQ(run(early, "ok"), Outcome::kStartFailure);
  const Job never = job("  start: \"sleep 30\"\n  ready: \"false\"\n" + std::string(kBench));
  EXPECT_EQ(run(never, "ok"), Outcome::kStartFailure);  // not ready within 5 s
  const Job dies =
      job("  start: \"sleep 0.6\"\n  ready: \"true\"\n  bench: \"sleep 1; echo "
          "value=1\"\n");
  EXPECT_EQ(run(dies, "ok"), Outcome::kCrash);
  const Job fine = job("  start: \"sleep 30\"\n  ready: \"true\"\n" + std::string(kBench));
  EXPECT_EQ(run(fine, "ok"), Outcome::kOk);
}

TEST_F(PipelineTest, BuildsAreCachedByCompileStageValues) {
  const Job j =
      job("  build: \"echo built >> ../../count; test {{k}} != 4\"\n" + std::string(kBench));
  Evaluator ev(j, *store_, {.work_dir = (dir_ / "work").string()});
  auto count = [&] {
    std::ifstream in(dir_ / "work" / "count");
    int n = 0;
    for (std::string line; std::getline(in, line);)
      ++n;
    return n;
  };
  ASSERT_EQ(ev.evaluate({{"mode", "ok"}, {"k", "1"}}, 0)->outcome, Outcome::kOk);
  ASSERT_EQ(ev.evaluate({{"mode", "quiet"}, {"k", "1"}}, 1)->outcome, Outcome::kMetricMissing);
  EXPECT_EQ(count(), 1);  // only a runtime value changed: no rebuild
  EXPECT_TRUE(ev.evaluate({{"mode", "ok"}, {"k", "1"}}, 2)->build_cached);
  ASSERT_EQ(ev.evaluate({{"mode", "ok"}, {"k", "2"}}, 3)->outcome, Outcome::kOk);
  EXPECT_EQ(count(), 2);
  EXPECT_EQ(ev.evaluate({{"mode", "ok"}, {"k", "4"}}, 4)->outcome, Outcome::kBuildFailure);
  EXPECT_EQ(ev.evaluate({{"mode", "ok"}, {"k", "4"}}, 5)->outcome, Outcome::kBuildFailure);
  EXPECT_EQ(count(), 3);  // the failed build is cached too
  EXPECT_EQ(ev.builds_run(), 3);
}

TEST_F(PipelineTest, MetricsByRegexAndJsonPath) {
  MetricSpec re{.name = "r", .regex = "Requests/sec:\\s+([0-9.]+)"};
  EXPECT_DOUBLE_EQ(extract_metric(re, "x\nRequests/sec:  123.5\n").value(), 123.5);
  EXPECT_FALSE(extract_metric(re, "nothing").has_value());
  MetricSpec js{.name = "j", .json_path = "a.b[1].c"};
  EXPECT_DOUBLE_EQ(extract_metric(js, "log line\n{\"a\": {\"b\": [0, {\"c\": 4.5}]}}\n").value(),
                   4.5);
  EXPECT_FALSE(extract_metric(js, "{\"a\": 1}").has_value());
}

TEST_F(PipelineTest, HostChangesAreJournalledAndRestoredAfterACrash) {
  const std::string setting = (dir_ / "setting").string();
  { std::ofstream(setting) << "original\n"; }
  {
    HostJournal journal(*store_);
    ASSERT_TRUE(journal.set_file(setting, "tuned").is_ok());
    // The process "dies" here: nothing restores before the next start.
  }
  std::ifstream changed(setting);
  std::string v;
  changed >> v;
  EXPECT_EQ(v, "tuned");
  ASSERT_EQ(store_->journal_open_entries()->size(), 1u);
  // The next start, from a fresh store handle on the same file.
  auto again = StudyStore::open("sqlite:" + (dir_ / "s.db").string());
  ASSERT_TRUE(again.is_ok());
  HostJournal next(**again);
  EXPECT_EQ(next.restore_all().value(), 1);
  std::ifstream restored(setting);
  restored >> v;
  EXPECT_EQ(v, "original");
  EXPECT_TRUE((*again)->journal_open_entries()->empty());
}

TEST_F(PipelineTest, HostWideFileParameterIsRestoredAfterTheEvaluation) {
  const std::string setting = (dir_ / "knob").string();
  { std::ofstream(setting) << "5\n"; }
  auto j = parse_job(
      "name: h\nparameters:\n  - {name: x, type: int, range: [0, 9], default: 5, "
      "apply: {file: " +
          setting +
          "}}\n"
          "commands: {bench: \"echo value=$(cat " +
          setting +
          ")\"}\n"
          "metric: {name: v, regex: \"value=([0-9]+)\"}\n"
          "isolation: {netns: false, host_changes: allow}\n",
      "h.yaml", dir_.string());
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  Evaluator ev(*j, *store_, {.work_dir = (dir_ / "work").string()});
  auto r = ev.evaluate({{"x", "8"}}, 0);
  ASSERT_TRUE(r.is_ok());
  EXPECT_DOUBLE_EQ(r->metrics.at("v"), 8);  // applied during the benchmark
  std::ifstream in(setting);
  int v = 0;
  in >> v;
  EXPECT_EQ(v, 5);  // and restored afterwards
}

TEST_F(PipelineTest, NetSysctlsArePrivateToTheEvaluationsNamespace) {
  if (geteuid() != 0 || (!fs::exists("/usr/sbin/ip") && !fs::exists("/sbin/ip"))) {
    GTEST_SKIP() << "needs root and iproute2 for network namespaces";
  }
  std::ifstream host_in("/proc/sys/net/core/somaxconn");
  int host = 0;
  host_in >> host;
  const int want = host == 1234 ? 1235 : 1234;
  auto j = parse_job(
      "name: n\nparameters:\n  - {name: s, type: int, range: [16, 65535], default: "
      "4096, apply: {sysctl: net.core.somaxconn}}\n"
      "commands: {bench: \"echo value=$(cat /proc/sys/net/core/somaxconn)\"}\n"
      "metric: {name: v, regex: \"value=([0-9]+)\"}\n",
      "n.yaml", dir_.string());
  ASSERT_TRUE(j.is_ok()) << j.status().to_string();
  Evaluator ev(*j, *store_, {.work_dir = (dir_ / "work").string()});
  auto r = ev.evaluate({{"s", std::to_string(want)}}, 0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->outcome, Outcome::kOk) << r->message;
  EXPECT_DOUBLE_EQ(r->metrics.at("v"), want);
  std::ifstream after("/proc/sys/net/core/somaxconn");
  int now = 0;
  after >> now;
  EXPECT_EQ(now, host);                                  // the host's value never changed
  EXPECT_TRUE(store_->journal_open_entries()->empty());  // the namespace was deleted
}

}  // namespace
}  // namespace sluice::wf
