// Job files: YAML → Job, every error with its line.
#include "sluice/wayfinder/job.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "sluice/common/status.h"

namespace sluice::wf {

std::string_view param_type_name(ParamType t) {
  switch (t) {
    case ParamType::kBool: return "bool";
    case ParamType::kInt: return "int";
    case ParamType::kFloat: return "float";
    case ParamType::kEnum: return "enum";
    case ParamType::kString: return "string";
  }
  return "?";
}

std::string_view stage_name(Stage s) {
  switch (s) {
    case Stage::kCompile: return "compile";
    case Stage::kBoot: return "boot";
    case Stage::kRuntime: return "runtime";
  }
  return "?";
}

std::string_view apply_kind_name(ApplyKind k) {
  switch (k) {
    case ApplyKind::kTemplate: return "template";
    case ApplyKind::kSysctl: return "sysctl";
    case ApplyKind::kFile: return "file";
    case ApplyKind::kEnv: return "env";
    case ApplyKind::kFlag: return "flag";
    case ApplyKind::kKnob: return "knob";
  }
  return "?";
}

const Parameter* Job::find(std::string_view n) const {
  for (const Parameter& p : parameters) {
    if (p.name == n)
      return &p;
  }
  return nullptr;
}

bool Job::is_host_wide(const Parameter& p) const {
  if (p.apply == ApplyKind::kFile)
    return true;
  if (p.apply == ApplyKind::kSysctl)
    return !(isolate_netns && p.target.starts_with("net."));
  return false;
}

namespace {

std::string format_double(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return fmt::format("{}", static_cast<int64_t>(v));
  }
  return fmt::format("{}", v);
}

// Parse errors carry the node's line (1-based).
class Parser {
 public:
  Parser(std::string origin, std::string dir) : origin_(std::move(origin)), dir_(std::move(dir)) {}

  Status error(const YAML::Node& n, std::string_view reason) const {
    const int line = n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
    return invalid_argument(fmt::format("{}:{}: {}", origin_, line, reason));
  }
  Status error_line(int line, std::string_view reason) const {
    return invalid_argument(fmt::format("{}:{}: {}", origin_, line, reason));
  }

  Result<std::string> scalar(const YAML::Node& n, std::string_view what) const {
    if (!n.IsScalar())
      return error(n, fmt::format("'{}' must be a single value", what));
    return n.Scalar();
  }
  Result<double> number(const YAML::Node& n, std::string_view what) const {
    SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(n, what));
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end == s.c_str() || *end != '\0' || !std::isfinite(v)) {
      return error(n, fmt::format("'{}' must be a number, not '{}'", what, s));
    }
    return v;
  }
  // "90", "90s", "15m", "2h".
  Result<double> duration(const YAML::Node& n, std::string_view what) const {
    SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(n, what));
    double mult = 1;
    if (!s.empty() && (s.back() == 's' || s.back() == 'm' || s.back() == 'h')) {
      mult = s.back() == 'h' ? 3600 : s.back() == 'm' ? 60 : 1;
      s.pop_back();
    }
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(v >= 0)) {
      return error(n, fmt::format("'{}' must be a duration like 30, 30s, 15m or 2h", what));
    }
    return v * mult;
  }
  Status check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                    std::string_view what) const {
    if (!map.IsMap())
      return error(map, fmt::format("'{}' must be a mapping", what));
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      if (!allowed.contains(key)) {
        std::string list;
        for (const auto& a : allowed)
          list += (list.empty() ? "" : ", ") + a;
        return error(kv.first,
                     fmt::format("unknown key '{}' in {} (expected one of: {})", key, what, list));
      }
    }
    return {};
  }

  Status parse_parameter(const YAML::Node& n, Parameter* p) const {
    SLUICE_RETURN_IF_ERROR(check_keys(n,
                                      {"name", "type", "default", "range", "min", "max", "log",
                                       "values", "stage", "apply", "fixed", "grid_points", "help"},
                                      "a parameter"));
    p->line = n.Mark().line + 1;
    if (!n["name"])
      return error(n, "a parameter needs a 'name'");
    SLUICE_ASSIGN_OR_RETURN(p->name, scalar(n["name"], "name"));
    const auto bad_name = [](const std::string& s) {
      if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
        return true;
      for (char ch : s) {
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.')
          return true;
      }
      return false;
    };
    if (bad_name(p->name)) {
      return error(n["name"], fmt::format("parameter name '{}' may hold only letters, digits, "
                                          "'_' and '.'",
                                          p->name));
    }
    std::string type = "int";
    if (n["type"]) {
      SLUICE_ASSIGN_OR_RETURN(type, scalar(n["type"], "type"));
    } else if (n["values"]) {
      type = "enum";
    } else {
      return error(n, fmt::format("parameter '{}' needs a 'type' (bool, int, float, enum, string)",
                                  p->name));
    }
    if (type == "bool")
      p->type = ParamType::kBool;
    else if (type == "int")
      p->type = ParamType::kInt;
    else if (type == "float")
      p->type = ParamType::kFloat;
    else if (type == "enum")
      p->type = ParamType::kEnum;
    else if (type == "string")
      p->type = ParamType::kString;
    else {
      return error(n["type"], fmt::format("unknown type '{}' (expected bool, int, float, enum or "
                                          "string)",
                                          type));
    }
    if (n["stage"]) {
      SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(n["stage"], "stage"));
      if (s == "compile")
        p->stage = Stage::kCompile;
      else if (s == "boot" || s == "start")
        p->stage = Stage::kBoot;
      else if (s == "runtime")
        p->stage = Stage::kRuntime;
      else
        return error(n["stage"], fmt::format("unknown stage '{}' (compile, boot, runtime)", s));
    }
    if (n["apply"]) {
      const YAML::Node a = n["apply"];
      if (a.IsScalar()) {
        if (a.Scalar() != "template") {
          return error(a,
                       "'apply' is 'template' or a mapping with one of sysctl, file, env, "
                       "flag, knob");
        }
        p->apply = ApplyKind::kTemplate;
      } else {
        SLUICE_RETURN_IF_ERROR(
            check_keys(a, {"template", "sysctl", "file", "env", "flag", "knob"}, "apply"));
        if (a.size() != 1)
          return error(a, "'apply' takes exactly one way to apply the value");
        const auto kv = *a.begin();
        const std::string kind = kv.first.as<std::string>();
        SLUICE_ASSIGN_OR_RETURN(p->target, scalar(kv.second, kind));
        if (kind == "template")
          p->apply = ApplyKind::kTemplate;
        else if (kind == "sysctl")
          p->apply = ApplyKind::kSysctl;
        else if (kind == "file")
          p->apply = ApplyKind::kFile;
        else if (kind == "env")
          p->apply = ApplyKind::kEnv;
        else if (kind == "flag")
          p->apply = ApplyKind::kFlag;
        else
          p->apply = ApplyKind::kKnob;
        if (p->apply == ApplyKind::kFile && !p->target.starts_with("/")) {
          return error(kv.second, "'file' needs an absolute path");
        }
        if (p->apply == ApplyKind::kSysctl && (p->target.find('/') != std::string::npos ||
                                               p->target.find("..") != std::string::npos)) {
          return error(kv.second, "a sysctl is named with dots, e.g. net.core.somaxconn");
        }
      }
    }
    if (n["log"]) {
      SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(n["log"], "log"));
      p->log_scale = s == "true";
    }
    if (n["grid_points"]) {
      SLUICE_ASSIGN_OR_RETURN(double g, number(n["grid_points"], "grid_points"));
      if (g < 1 || g > 1000)
        return error(n["grid_points"], "'grid_points' must be 1..1000");
      p->grid_points = static_cast<int>(g);
    }
    const bool numeric = p->type == ParamType::kInt || p->type == ParamType::kFloat;
    if (numeric) {
      YAML::Node lo, hi;
      bool have_range = false;
      if (n["min"] && n["max"]) {
        lo.reset(n["min"]);
        hi.reset(n["max"]);
        have_range = true;
      }
      if (n["range"]) {
        const YAML::Node r = n["range"];
        if (!r.IsSequence() || r.size() != 2)
          return error(r, "'range' must be [min, max]");
        lo.reset(r[0]);
        hi.reset(r[1]);
        have_range = true;
      }
      if (!have_range) {
        if (!n["fixed"]) {
          return error(n, fmt::format("numeric parameter '{}' needs 'range: [min, max]'", p->name));
        }
      } else {
        SLUICE_ASSIGN_OR_RETURN(p->min, number(lo, "min"));
        SLUICE_ASSIGN_OR_RETURN(p->max, number(hi, "max"));
        if (p->min > p->max)
          return error(lo, "range minimum is above its maximum");
        if (p->log_scale && p->min <= 0)
          return error(lo, "a log-scale range must start above 0");
        if (p->type == ParamType::kInt &&
            (p->min != std::floor(p->min) || p->max != std::floor(p->max))) {
          return error(lo, "an int range needs whole numbers");
        }
      }
    } else if (p->type == ParamType::kEnum || p->type == ParamType::kString) {
      if (n["values"]) {
        const YAML::Node v = n["values"];
        if (!v.IsSequence() || v.size() == 0)
          return error(v, "'values' must be a non-empty list");
        for (const auto& e : v) {
          SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(e, "values"));
          // A value twice would weigh double in random draws and name two one-hot columns alike.
          if (std::find(p->values.begin(), p->values.end(), s) != p->values.end())
            return error(e, fmt::format("parameter '{}' lists the value '{}' twice", p->name, s));
          p->values.push_back(s);
        }
      } else if (p->type == ParamType::kEnum && !n["fixed"]) {
        return error(n, fmt::format("enum parameter '{}' needs 'values'", p->name));
      }
    }
    if (n["fixed"]) {
      SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(n["fixed"], "fixed"));
      if (numeric && p->max == 0 && p->min == 0) {
        SLUICE_ASSIGN_OR_RETURN(double v, number(n["fixed"], "fixed"));
        p->min = p->max = v;
      }
      if (p->values.empty() && (p->type == ParamType::kEnum || p->type == ParamType::kString)) {
        p->values.push_back(s);
      }
      auto canon = canonical_value(*p, s);
      if (!canon)
        return error(n["fixed"], canon.status().message());
      p->fixed = *canon;
    }
    if (n["default"]) {
      SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(n["default"], "default"));
      auto canon = canonical_value(*p, s);
      if (!canon)
        return error(n["default"], canon.status().message());
      p->default_value = *canon;
    } else if (p->fixed) {
      p->default_value = *p->fixed;
    } else {
      return error(
          n, fmt::format("parameter '{}' needs a 'default' (its value when untuned)", p->name));
    }
    if (p->fixed)
      p->default_value = *p->fixed;
    if (p->type == ParamType::kString && p->values.empty())
      p->values.push_back(p->default_value);
    return {};
  }

  Status parse_metric(const YAML::Node& n, MetricSpec* m) const {
    SLUICE_RETURN_IF_ERROR(
        check_keys(n, {"name", "regex", "json", "direction", "weight", "unit"}, "a metric"));
    if (!n["name"])
      return error(n, "a metric needs a 'name'");
    SLUICE_ASSIGN_OR_RETURN(m->name, scalar(n["name"], "name"));
    if (n["regex"]) {
      SLUICE_ASSIGN_OR_RETURN(m->regex, scalar(n["regex"], "regex"));
      try {
        std::regex re(m->regex);
        if (re.mark_count() < 1) {
          return error(n["regex"], "the metric regex needs a capture group around the number");
        }
      } catch (const std::regex_error& e) {
        return error(n["regex"], fmt::format("bad regex: {}", e.what()));
      }
    }
    if (n["json"]) {
      SLUICE_ASSIGN_OR_RETURN(m->json_path, scalar(n["json"], "json"));
    }
    if (m->regex.empty() == m->json_path.empty()) {
      return error(n, fmt::format("metric '{}' needs exactly one of 'regex' or 'json'", m->name));
    }
    if (n["direction"]) {
      SLUICE_ASSIGN_OR_RETURN(std::string d, scalar(n["direction"], "direction"));
      if (d == "max" || d == "maximize" || d == "higher")
        m->direction = Direction::kMaximize;
      else if (d == "min" || d == "minimize" || d == "lower")
        m->direction = Direction::kMinimize;
      else
        return error(n["direction"], "'direction' is maximize or minimize");
    }
    if (n["weight"]) {
      SLUICE_ASSIGN_OR_RETURN(m->weight, number(n["weight"], "weight"));
      if (m->weight < 0)
        return error(n["weight"], "a weight cannot be negative");
    }
    return {};
  }

  Result<Job> parse(std::string_view text) const {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::ParserException& e) {
      return error_line(e.mark.line + 1, fmt::format("not valid YAML: {}", e.msg));
    }
    if (!root.IsMap())
      return error_line(1, "a job file is a mapping (name, parameters, …)");
    try {
      return parse_root(root, text);
    } catch (const YAML::Exception& e) {
      return error_line(e.mark.line + 1, e.msg);
    }
  }

  Result<Job> parse_root(const YAML::Node& root, std::string_view text) const {
    SLUICE_RETURN_IF_ERROR(
        check_keys(root,
                   {"name", "description", "parameters", "metrics", "metric", "files", "commands",
                    "timeouts", "repetitions", "budget", "isolation", "env", "export"},
                   "the job"));
    Job job;
    job.text = std::string(text);
    job.dir = dir_;
    if (!root["name"])
      return error_line(1, "the job needs a 'name'");
    SLUICE_ASSIGN_OR_RETURN(job.name, scalar(root["name"], "name"));
    if (Status named = check_study_name(job.name); !named.is_ok()) {
      return error(root["name"], named.message());
    }
    if (root["description"]) {
      SLUICE_ASSIGN_OR_RETURN(job.description, scalar(root["description"], "description"));
    }
    const YAML::Node params = root["parameters"];
    if (!params || !params.IsSequence() || params.size() == 0) {
      return error(params ? params : root, "'parameters' must be a non-empty list");
    }
    std::set<std::string> names;
    for (const auto& pn : params) {
      Parameter p;
      SLUICE_RETURN_IF_ERROR(parse_parameter(pn, &p));
      if (!names.insert(p.name).second) {
        return error(pn, fmt::format("parameter '{}' is declared twice", p.name));
      }
      job.parameters.push_back(std::move(p));
    }
    YAML::Node metrics;
    if (root["metrics"]) {
      metrics.reset(root["metrics"]);
    } else if (root["metric"]) {
      metrics.reset(YAML::Node(YAML::NodeType::Sequence));
      metrics.push_back(root["metric"]);
    }
    if (!metrics || !metrics.IsSequence() || metrics.size() == 0) {
      return error(root, "the job needs 'metrics' (a list) or one 'metric'");
    }
    for (const auto& mn : metrics) {
      MetricSpec m;
      SLUICE_RETURN_IF_ERROR(parse_metric(mn, &m));
      job.metrics.push_back(std::move(m));
    }
    if (root["files"]) {
      const YAML::Node files = root["files"];
      if (!files.IsSequence())
        return error(files, "'files' must be a list");
      for (const auto& fn : files) {
        SLUICE_RETURN_IF_ERROR(check_keys(fn, {"path", "content", "source"}, "a file"));
        TemplateFile f;
        if (!fn["path"])
          return error(fn, "a file needs a 'path'");
        SLUICE_ASSIGN_OR_RETURN(f.path, scalar(fn["path"], "path"));
        if (f.path.starts_with("/") || f.path.find("..") != std::string::npos) {
          return error(fn["path"], "a file's path is relative to the run directory");
        }
        if (fn["content"]) {
          SLUICE_ASSIGN_OR_RETURN(f.content, scalar(fn["content"], "content"));
        } else if (fn["source"]) {
          SLUICE_ASSIGN_OR_RETURN(std::string src, scalar(fn["source"], "source"));
          const std::filesystem::path full = std::filesystem::path(dir_) / src;
          std::ifstream in(full);
          if (!in)
            return error(fn["source"], fmt::format("cannot read {}", full.string()));
          std::stringstream ss;
          ss << in.rdbuf();
          f.content = ss.str();
        } else {
          return error(fn, "a file needs 'content' or 'source'");
        }
        job.files.push_back(std::move(f));
      }
    }
    const YAML::Node cmds = root["commands"];
    if (!cmds)
      return error(root, "the job needs 'commands' (at least 'bench')");
    SLUICE_RETURN_IF_ERROR(
        check_keys(cmds, {"build", "start", "ready", "bench", "stop"}, "commands"));
    const auto cmd = [&](const char* key, std::string* out) -> Status {
      if (cmds[key]) {
        SLUICE_ASSIGN_OR_RETURN(*out, scalar(cmds[key], key));
      }
      return {};
    };
    SLUICE_RETURN_IF_ERROR(cmd("build", &job.commands.build));
    SLUICE_RETURN_IF_ERROR(cmd("start", &job.commands.start));
    SLUICE_RETURN_IF_ERROR(cmd("ready", &job.commands.ready));
    SLUICE_RETURN_IF_ERROR(cmd("bench", &job.commands.bench));
    SLUICE_RETURN_IF_ERROR(cmd("stop", &job.commands.stop));
    if (job.commands.bench.empty())
      return error(cmds, "'commands' needs a 'bench' command");
    if (!job.commands.ready.empty() && job.commands.start.empty()) {
      return error(cmds["ready"], "a 'ready' command needs a 'start' command");
    }
    if (root["timeouts"]) {
      const YAML::Node t = root["timeouts"];
      SLUICE_RETURN_IF_ERROR(check_keys(t, {"build", "start", "bench", "stop"}, "timeouts"));
      if (t["build"]) {
        SLUICE_ASSIGN_OR_RETURN(job.timeouts.build_s, duration(t["build"], "build"));
      }
      if (t["start"]) {
        SLUICE_ASSIGN_OR_RETURN(job.timeouts.start_s, duration(t["start"], "start"));
      }
      if (t["bench"]) {
        SLUICE_ASSIGN_OR_RETURN(job.timeouts.bench_s, duration(t["bench"], "bench"));
      }
      if (t["stop"]) {
        SLUICE_ASSIGN_OR_RETURN(job.timeouts.stop_s, duration(t["stop"], "stop"));
      }
    }
    if (root["repetitions"]) {
      SLUICE_ASSIGN_OR_RETURN(double r, number(root["repetitions"], "repetitions"));
      if (r < 1 || r > 1000 || r != std::floor(r)) {
        return error(root["repetitions"], "'repetitions' must be a whole number 1..1000");
      }
      job.repetitions = static_cast<int>(r);
    }
    if (root["budget"]) {
      const YAML::Node b = root["budget"];
      SLUICE_RETURN_IF_ERROR(check_keys(b, {"iterations", "time"}, "budget"));
      if (b["iterations"]) {
        SLUICE_ASSIGN_OR_RETURN(double it, number(b["iterations"], "iterations"));
        if (it < 1)
          return error(b["iterations"], "'iterations' must be at least 1");
        job.budget.iterations = static_cast<int64_t>(it);
      }
      if (b["time"]) {
        SLUICE_ASSIGN_OR_RETURN(job.budget.seconds, duration(b["time"], "time"));
      }
    }
    if (root["isolation"]) {
      const YAML::Node iso = root["isolation"];
      SLUICE_RETURN_IF_ERROR(check_keys(iso, {"netns", "host_changes"}, "isolation"));
      if (iso["netns"]) {
        SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(iso["netns"], "netns"));
        job.isolate_netns = s == "true";
      }
      if (iso["host_changes"]) {
        SLUICE_ASSIGN_OR_RETURN(std::string s, scalar(iso["host_changes"], "host_changes"));
        if (s != "allow" && s != "refuse") {
          return error(iso["host_changes"], "'host_changes' is allow or refuse");
        }
        job.allow_host_changes = s == "allow";
      }
    }
    if (root["env"]) {
      const YAML::Node e = root["env"];
      if (!e.IsMap())
        return error(e, "'env' must be a mapping of NAME: value");
      for (const auto& kv : e) {
        SLUICE_ASSIGN_OR_RETURN(std::string v, scalar(kv.second, "env"));
        job.env[kv.first.as<std::string>()] = v;
      }
    }
    if (root["export"]) {
      SLUICE_ASSIGN_OR_RETURN(job.export_format, scalar(root["export"], "export"));
      static const std::set<std::string> kFormats = {"yaml",  "sysctl", "nginx",
                                                     "redis", "env",    "sql"};
      if (!kFormats.contains(job.export_format)) {
        return error(root["export"], "'export' is yaml, sysctl, nginx, redis, env or sql");
      }
    } else {
      job.export_format = "yaml";
    }
    for (const Parameter& p : job.parameters) {
      if (job.is_host_wide(p) && !job.allow_host_changes && !p.fixed) {
        return error_line(p.line,
                          fmt::format("parameter '{}' changes a host-wide setting ({} {}); add "
                                      "'isolation: {{host_changes: allow}}' to permit it",
                                      p.name, apply_kind_name(p.apply), p.target));
      }
    }
    return job;
  }

 private:
  std::string origin_;
  std::string dir_;
};

}  // namespace

Status check_study_name(std::string_view name) {
  const bool ok_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
  });
  if (name.empty() || name.size() > 100 || !ok_chars || name.front() == '.') {
    return invalid_argument(fmt::format(
        "study name '{}' must be 1 to 100 letters, digits, '.', '_' or '-', not starting with "
        "'.' (it names a directory under the work directory)",
        name.size() > 120 ? std::string(name.substr(0, 120)) + "…" : std::string(name)));
  }
  return {};
}

Result<std::string> canonical_value(const Parameter& p, std::string_view value) {
  const std::string v(value);
  switch (p.type) {
    case ParamType::kBool: {
      if (v == "true" || v == "1" || v == "yes" || v == "on")
        return std::string("true");
      if (v == "false" || v == "0" || v == "no" || v == "off")
        return std::string("false");
      return invalid_argument(fmt::format("'{}' is not a bool value for '{}'", v, p.name));
    }
    case ParamType::kInt:
    case ParamType::kFloat: {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !std::isfinite(d)) {
        return invalid_argument(fmt::format("'{}' is not a number for '{}'", v, p.name));
      }
      if (p.type == ParamType::kInt && d != std::floor(d)) {
        return invalid_argument(fmt::format("'{}' is not a whole number for '{}'", v, p.name));
      }
      if (d < p.min || d > p.max) {
        return invalid_argument(fmt::format("{} is outside {}'s range [{}, {}]", v, p.name,
                                            format_double(p.min), format_double(p.max)));
      }
      return format_double(d);
    }
    case ParamType::kEnum:
    case ParamType::kString: {
      if (p.type == ParamType::kEnum || !p.values.empty()) {
        for (const auto& a : p.values) {
          if (a == v)
            return v;
        }
        if (p.type == ParamType::kEnum) {
          std::string list;
          for (const auto& a : p.values)
            list += (list.empty() ? "" : ", ") + a;
          return invalid_argument(
              fmt::format("'{}' is not one of {}'s values ({})", v, p.name, list));
        }
      }
      return v;
    }
  }
  return v;
}

Result<Job> parse_job(std::string_view text, std::string_view origin, std::string_view dir) {
  return Parser(std::string(origin), std::string(dir)).parse(text);
}

Result<Job> load_job_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return not_found(fmt::format("cannot read job file {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::filesystem::path p(path);
  std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  dir = std::filesystem::absolute(dir).lexically_normal().string();
  auto job = parse_job(ss.str(), path, dir);
  if (job)
    job->path = std::filesystem::absolute(p).lexically_normal().string();
  return job;
}

}  // namespace sluice::wf
