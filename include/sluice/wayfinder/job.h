// sluice::wf — wayfinder's job files: what to tune, how to apply it, how to measure it.
//
// A job file (YAML, schema in docs/wayfinder.schema.json) names the parameters of a search space,
// how each one is applied to the system under test, the commands that build, start, probe,
// benchmark and stop it, how to read the metric(s) from the benchmark's output, and the budget.
//
//   SLUICE_ASSIGN_OR_RETURN(wf::Job job, wf::load_job_file("targets/sqlite.yaml"));
//
// A malformed file is refused with `invalid argument` and a message "FILE:LINE: reason" naming
// the first problem found. Parsing is pure (no commands run); Job is a plain value, safe to copy
// and to share read-only between threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"

namespace sluice::wf {

enum class ParamType { kBool, kInt, kFloat, kEnum, kString };
// When a value takes effect: compile-stage values change the build (and are cached by hash);
// boot-stage values need a restart of the system under test; runtime values could change live.
enum class Stage { kCompile, kBoot, kRuntime };

// How a parameter's value reaches the system. Every parameter is also available to templates and
// commands as {{name}} whatever its kind.
enum class ApplyKind {
  kTemplate,  // only through {{name}} in a config-file template or a command
  kSysctl,    // /proc/sys/<target with dots as slashes>; net.* is private to the evaluation's
              // network namespace, anything else is host-wide
  kFile,      // write the value to the absolute path `target` (host-wide, e.g. /sys/…)
  kEnv,       // environment variable `target` of every command
  kFlag,      // text `target` with {{value}} replaced, joined into {{flags}} (space-separated)
  kKnob,      // the sluice knob `target`: SLUICE_<KNOB> in the environment and in {{knob_flags}}
};

std::string_view param_type_name(ParamType t);
std::string_view stage_name(Stage s);
std::string_view apply_kind_name(ApplyKind k);

struct Parameter {
  std::string name;  // [A-Za-z_][A-Za-z0-9_.]*
  ParamType type = ParamType::kInt;
  Stage stage = Stage::kRuntime;
  ApplyKind apply = ApplyKind::kTemplate;
  std::string target;                // sysctl name, file path, env var, flag text or knob name
  std::string default_value;         // canonical text
  double min = 0, max = 0;           // int, float
  bool log_scale = false;            // int, float: sample and grid uniformly in log space (min > 0)
  std::vector<std::string> values;   // enum (and string: the values to try)
  std::optional<std::string> fixed;  // pinned: never varied (security constraints, §3.5)
  int grid_points = 5;               // int/float values grid search tries
  int line = 0;                      // where it was declared, for messages
};

enum class Direction { kMaximize, kMinimize };

struct MetricSpec {
  std::string name;
  std::string regex;      // first capture group of the first match in the benchmark's stdout
  std::string json_path;  // or: a path into a JSON document in stdout: "a.b[0].c"
  Direction direction = Direction::kMaximize;
  double weight = 1.0;  // Equation 4 weight when several metrics combine
};

struct TemplateFile {
  std::string path;     // relative to the evaluation's work directory
  std::string content;  // with {{…}} placeholders (inline `content`, or read from `source`)
};

struct Commands {
  std::string build;  // run in the build directory, once per distinct compile-stage hash
  std::string start;  // a long-running server; stopped after the benchmark
  std::string ready;  // polled until it exits 0
  std::string bench;  // prints the metric(s) on stdout
  std::string stop;   // optional; otherwise SIGTERM then SIGKILL to the start command's group
};

struct Timeouts {
  double build_s = 600, start_s = 30, bench_s = 120, stop_s = 10;
};

struct Budget {
  int64_t iterations = 20;  // trials, the default measurement included
  double seconds = 0;       // wall time; 0 = no limit
};

struct Job {
  std::string name;
  std::string path;  // the file it came from ("" for text)
  std::string dir;   // its directory: {{job_dir}}
  std::string text;  // the YAML as read (stored with the study)
  std::string description;
  std::vector<Parameter> parameters;
  std::vector<MetricSpec> metrics;
  std::vector<TemplateFile> files;
  Commands commands;
  Timeouts timeouts;
  Budget budget;
  int repetitions = 1;                     // benchmark runs per trial; metrics are the median
  bool isolate_netns = true;               // each evaluation in a fresh network namespace
  bool allow_host_changes = false;         // non-namespaced sysctls and kFile parameters need this
  std::map<std::string, std::string> env;  // extra environment for every command
  std::string export_format;  // best-configuration file: "yaml", "sysctl", "nginx", "redis", "env"

  const Parameter* find(std::string_view name) const;
  // True when a parameter changes something outside the evaluation's namespace.
  bool is_host_wide(const Parameter& p) const;
};

// Parses a job file; relative `source` templates resolve against the file's directory.
Result<Job> load_job_file(const std::string& path);
// Parses YAML text; `origin` names it in messages, `dir` resolves relative paths.
Result<Job> parse_job(std::string_view text, std::string_view origin = "<job>",
                      std::string_view dir = ".");

// A study's name (a job's name is its default) names its directory under the work directory:
// 1 to 100 letters, digits, '.', '_' or '-', not starting with '.'.
Status check_study_name(std::string_view name);

// Checks `value` against the parameter; returns its canonical text ("true", "42", "0.5").
Result<std::string> canonical_value(const Parameter& p, std::string_view value);

}  // namespace sluice::wf
