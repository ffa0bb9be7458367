// Job files: good files parse; malformed ones are refused with their line and reason.
#include "sluice/wayfinder/job.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

namespace sluice::wf {
namespace {

constexpr const char* kGood = R"Y(name: t
parameters:
  - {name: a, type: int, range: [1, 100], log: true, default: 10}
  - {name: b, type: enum, values: [x, y], default: x, stage: compile}
  - {name: c, type: bool, default: true, apply: {sysctl: net.core.somaxconn}}
  - {name: d, type: float, range: [0, 1], default: 0.5, apply: {env: D}}
  - {name: e, type: int, range: [0, 9], fixed: 3}
commands:
  bench: echo "v {{a}}"
metrics:
  - {name: v, regex: "v ([0-9]+)", direction: max, weight: 2}
  - {name: w, json: "a.b[0]", direction: minimize}
repetitions: 3
budget: {iterations: 7, time: 2m}
)Y";

TEST(JobTest, ParsesEveryField) {
  auto job = parse_job(kGood, "good.yaml");
  ASSERT_TRUE(job.is_ok()) << job.status().to_string();
  ASSERT_EQ(job->parameters.size(), 5u);
  EXPECT_TRUE(job->parameters[0].log_scale);
  EXPECT_EQ(job->parameters[1].stage, Stage::kCompile);
  EXPECT_EQ(job->parameters[2].apply, ApplyKind::kSysctl);
  EXPECT_EQ(job->parameters[2].default_value, "true");
  EXPECT_EQ(job->parameters[3].target, "D");
  EXPECT_EQ(job->parameters[4].fixed.value_or(""), "3");
  EXPECT_EQ(job->metrics[1].json_path, "a.b[0]");
  EXPECT_EQ(job->metrics[1].direction, Direction::kMinimize);
  EXPECT_EQ(job->repetitions, 3);
  EXPECT_EQ(job->budget.iterations, 7);
  EXPECT_DOUBLE_EQ(job->budget.seconds, 120);
  EXPECT_FALSE(job->is_host_wide(job->parameters[2]));  // net.* stays in the namespace
}

// Each bad file must be refused with the line of the problem and words of the reason.
struct BadCase {
  const char* text;
  const char* line;
  const char* reason;
};

TEST(JobTest, MalformedFilesAreRefusedWithLineAndReason) {
  const BadCase cases[] = {
      {"name: t\nparameters: [\n", ":", "not valid YAML"},
      {"name: t\nparameters:\n  - {name: e, type: enum, values: [x, y, x]}\n"
       "commands: {bench: x}\nmetric: {name: m, regex: '(1)'}\n",
       ":3:", "lists the value 'x' twice"},
      {"name: ../escape\nparameters:\n  - {name: a, type: int, range: [1, 5]}\n"
       "commands: {bench: x}\nmetric: {name: m, regex: '(1)'}\n",
       ":1:", "study name '../escape'"},
      {"name: t\nparameters:\n  - {name: a, type: int, default: 1}\ncommands: {bench: x}\n"
       "metric: {name: m, regex: '(1)'}\n",
       ":3:", "needs 'range"},
      {"name: t\nparameters:\n  - {name: a, type: int, range: [1, 5], default: 9}\n"
       "commands: {bench: x}\nmetric: {name: m, regex: '(1)'}\n",
       ":3:", "outside"},
      {"name: t\nparameters:\n  - {name: a, type: enum, values: [x], default: x}\n"
       "  - {name: a, type: enum, values: [x], default: x}\ncommands: {bench: x}\n"
       "metric: {name: m, regex: '(1)'}\n",
       ":4:", "declared twice"},
      {"name: t\nparameters:\n  - {name: a, type: enum, values: [x], default: x}\n"
       "commands: {bench: x}\nmetric: {name: m, regex: 'no group'}\n",
       ":5:", "capture group"},
      {"name: t\nparameters:\n  - {name: a, type: enum, values: [x], default: x}\n"
       "commands: {bench: x}\nmetric: {name: m, regex: '(1)'}\nbudgte: 3\n",
       ":6:", "unknown key 'budgte'"},
      {"name: t\nparameters:\n  - {name: a, type: int, range: [1, 5], default: 1,\n"
       "     apply: {sysctl: vm.swappiness}}\ncommands: {bench: x}\n"
       "metric: {name: m, regex: '(1)'}\n",
       ":3:", "host-wide"},
      {"name: t\nparameters:\n  - {name: a, type: enum, values: [x], default: x}\n"
       "commands: {start: s}\nmetric: {name: m, regex: '(1)'}\n",
       ":4:", "'bench'"},
  };
  for (const auto& c : cases) {
    auto job = parse_job(c.text, "bad.yaml");
    ASSERT_FALSE(job.is_ok()) << c.text;
    const std::string msg = job.status().message();
    EXPECT_NE(msg.find(std::string("bad.yaml") + c.line), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.reason), std::string::npos) << msg;
  }
}

TEST(JobTest, CanonicalValues) {
  Parameter p{.name = "p", .type = ParamType::kInt, .min = 0, .max = 10};
  EXPECT_EQ(canonical_value(p, "7").value(), "7");
  EXPECT_FALSE(canonical_value(p, "7.5").is_ok());
  EXPECT_FALSE(canonical_value(p, "11").is_ok());
  Parameter b{.name = "b", .type = ParamType::kBool};
  EXPECT_EQ(canonical_value(b, "on").value(), "true");
}

}  // namespace
}  // namespace sluice::wf

namespace sluice::wf {
namespace {

// Every job file the project ships parses (a typo in one would surface only when a user runs it).
TEST(JobTest, EveryShippedTargetParses) {
  const std::filesystem::path dir = std::filesystem::path(SLUICE_SOURCE_DIR) / "targets";
  int parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") {
      continue;
    }
    auto job = load_job_file(entry.path().string());
    EXPECT_TRUE(job.is_ok()) << entry.path() << ": " << job.status().to_string();
    ++parsed;
  }
  EXPECT_GE(parsed, 10);
}

// A transfer-learning pair searches one space: what a model learns on the first job names the
// same columns in the second (transfer matches parameters by name, one-hot columns by
// name=value).
void ExpectTheSameSearchedSpace(const std::string& first, const std::string& second) {
  const std::filesystem::path dir = std::filesystem::path(SLUICE_SOURCE_DIR) / "targets";
  auto a_job = load_job_file((dir / first).string());
  auto b_job = load_job_file((dir / second).string());
  ASSERT_TRUE(a_job.is_ok()) << a_job.status().to_string();
  ASSERT_TRUE(b_job.is_ok()) << b_job.status().to_string();
  auto searched = [](const Job& job) {
    std::vector<const Parameter*> out;
    for (const Parameter& p : job.parameters) {
      if (!p.fixed) {
        out.push_back(&p);
      }
    }
    return out;
  };
  const auto a = searched(*a_job);
  const auto b = searched(*b_job);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_GE(a.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]->name, b[i]->name);
    EXPECT_EQ(a[i]->type, b[i]->type) << a[i]->name;
    EXPECT_EQ(a[i]->values, b[i]->values) << a[i]->name;
    EXPECT_EQ(a[i]->min, b[i]->min) << a[i]->name;
    EXPECT_EQ(a[i]->max, b[i]->max) << a[i]->name;
    EXPECT_EQ(a[i]->log_scale, b[i]->log_scale) << a[i]->name;
    EXPECT_EQ(a[i]->default_value, b[i]->default_value) << a[i]->name;
    EXPECT_EQ(a[i]->apply, b[i]->apply) << a[i]->name;
    EXPECT_EQ(a[i]->target, b[i]->target) << a[i]->name;
  }
}

// One OS space under two servers, as the paper's Linux configuration under Redis and Nginx.
TEST(JobTest, TheOsTargetsSearchTheSameSpace) {
  ExpectTheSameSearchedSpace("redis-os.yaml", "nginx-os.yaml");
}

// One server's space under two workloads (a 5.5 KiB and a 256 KiB page).
TEST(JobTest, TheTwoNginxWorkloadsSearchTheSameSpace) {
  ExpectTheSameSearchedSpace("nginx-quick.yaml", "nginx-large.yaml");
}

// One build space (gcc's flags) under two programs.
TEST(JobTest, TheTwoGccWorkloadsSearchTheSameSpace) {
  ExpectTheSameSearchedSpace("gcc-dot.yaml", "gcc-norms.yaml");
}

}  // namespace
}  // namespace sluice::wf
