// The study loop, scoring (Equation 4), exports.
#include "sluice/wayfinder/study.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"
#include "sluice/wayfinder/pipeline.h"
#include "sluice/wayfinder/search.h"
#include "sluice/wayfinder/space.h"

namespace sluice::wf {
namespace {

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string short_duration(double s) {
  const int64_t n = std::llround(s);
  if (n < 90)
    return fmt::format("{}s", n);
  if (n < 5400)
    return fmt::format("{}m{:02}s", n / 60, n % 60);
  return fmt::format("{}h{:02}m", n / 3600, (n / 60) % 60);
}

}  // namespace

std::vector<Observation> history_of(const Job& job, const std::vector<Trial>& trials) {
  const auto obj = objectives(job, trials);
  std::vector<Observation> out;
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial& t = trials[i];
    if (t.pending || t.role == TrialRole::kConfirm)
      continue;
    out.push_back({.iteration = t.iteration,
                   .config = t.config,
                   .outcome = t.outcome,
                   .metrics = t.metrics,
                   .objective = obj[i],
                   .is_default = t.role == TrialRole::kDefault,
                   .seconds = t.eval_s + t.build_s});
  }
  return out;
}

std::vector<std::optional<double>> objectives(const Job& job, const std::vector<Trial>& trials) {
  std::vector<std::optional<double>> out(trials.size());
  const auto usable = [](const Trial& t) { return !t.pending && t.outcome == Outcome::kOk; };
  if (job.metrics.size() == 1) {
    const MetricSpec& m = job.metrics[0];
    for (size_t i = 0; i < trials.size(); ++i) {
      auto it = trials[i].metrics.find(m.name);
      if (usable(trials[i]) && it != trials[i].metrics.end()) {
        out[i] = m.direction == Direction::kMaximize ? it->second : -it->second;
      }
    }
    return out;
  }
  // Equation 4: weighted sum of min-max normalised metrics, minimised ones subtracted.
  std::map<std::string, std::pair<double, double>> range;
  for (const Trial& t : trials) {
    if (!usable(t))
      continue;
    for (const auto& [k, v] : t.metrics) {
      auto [it, fresh] = range.try_emplace(k, v, v);
      if (!fresh) {
        it->second.first = std::min(it->second.first, v);
        it->second.second = std::max(it->second.second, v);
      }
    }
  }
  for (size_t i = 0; i < trials.size(); ++i) {
    if (!usable(trials[i]))
      continue;
    double s = 0;
    bool complete = true;
    for (const MetricSpec& m : job.metrics) {
      auto it = trials[i].metrics.find(m.name);
      if (it == trials[i].metrics.end()) {
        complete = false;
        break;
      }
      const auto [lo, hi] = range[m.name];
      const double norm = hi > lo ? (it->second - lo) / (hi - lo) : 0.0;
      s += m.weight * (m.direction == Direction::kMaximize ? norm : -norm);
    }
    if (complete)
      out[i] = s;
  }
  return out;
}

std::optional<size_t> best_trial(const Job& job, const std::vector<Trial>& trials) {
  const auto obj = objectives(job, trials);
  std::optional<size_t> best;
  for (size_t i = 0; i < trials.size(); ++i) {
    if (!obj[i] || trials[i].role == TrialRole::kConfirm)
      continue;
    if (!best || *obj[i] > *obj[*best])
      best = i;
  }
  return best;
}

namespace {

// The lines of the job's template files that use parameter `name`, with every parameter
// placeholder replaced by its value: the directive exactly as the server read it (nginx's
// `listen … backlog=N`, redis' hyphenated names). Lines with other placeholders (the run
// directory) are left out; empty when no line qualifies.
std::vector<std::string> template_lines(const Job& job, const std::string& name,
                                        const std::map<std::string, std::string>& values) {
  std::vector<std::string> out;
  const std::string needle = "{{" + name + "}}";
  for (const TemplateFile& f : job.files) {
    for (size_t i = 0, j; i < f.content.size(); i = j + 1) {
      j = f.content.find('\n', i);
      if (j == std::string::npos)
        j = f.content.size();
      std::string line = f.content.substr(i, j - i);
      if (line.find(needle) == std::string::npos)
        continue;
      for (const auto& [k, v] : values) {
        const std::string ph = "{{" + k + "}}";
        for (size_t at; (at = line.find(ph)) != std::string::npos;)
          line.replace(at, ph.size(), v);
      }
      if (line.find("{{") != std::string::npos)
        continue;
      const size_t first = line.find_first_not_of(" \t");
      const size_t last = line.find_last_not_of(" \t\r");
      if (first != std::string::npos)
        out.push_back(line.substr(first, last - first + 1));
    }
  }
  return out;
}

}  // namespace

std::string export_configuration(const Job& job, const Configuration& c) {
  std::string out =
      fmt::format("# Best configuration found by `sluice tune` for job '{}'.\n", job.name);
  const std::string& f = job.export_format;
  std::string sysctls;
  std::map<std::string, std::string> values;
  for (const Parameter& p : job.parameters) {
    auto it = c.find(p.name);
    values[p.name] = it == c.end() ? p.default_value : it->second;
  }
  std::set<std::string> written;  // a template line using two parameters is written once
  for (const Parameter& p : job.parameters) {
    const std::string& v = values[p.name];
    if (p.apply == ApplyKind::kSysctl) {
      const std::string kv = p.type == ParamType::kBool ? (v == "true" ? "1" : "0") : v;
      sysctls += fmt::format("{} = {}\n", p.target, kv);
      continue;
    }
    if ((f == "nginx" || f == "redis") && p.apply == ApplyKind::kTemplate) {
      const auto lines = template_lines(job, p.name, values);
      if (!lines.empty()) {
        for (const std::string& line : lines) {
          if (written.insert(line).second)
            out += line + "\n";
        }
        continue;
      }
    }
    if (f == "sysctl") {
      out += fmt::format("# {} = {}\n", p.name, v);
    } else if (f == "nginx") {
      out += fmt::format("{} {};\n", p.name, v);
    } else if (f == "redis") {
      out += fmt::format("{} {}\n", p.name, v);
    } else if (f == "env") {
      out += fmt::format("{}={}\n", p.apply == ApplyKind::kEnv ? p.target : p.name, v);
    } else if (f == "sql") {
      out += fmt::format("PRAGMA {} = {};\n", p.name, v);
    } else {
      out += fmt::format("{}: {}\n", p.apply == ApplyKind::kKnob ? p.target : p.name, v);
    }
  }
  if (!sysctls.empty()) {
    if (f == "sysctl") {
      out += sysctls;
    } else {
      out +=
          "# sysctl settings (for /etc/sysctl.d/*.conf; the net.* ones apply per network "
          "namespace):\n";
      std::string commented;
      for (size_t i = 0, j; i < sysctls.size(); i = j + 1) {
        j = sysctls.find('\n', i);
        commented += "# " + sysctls.substr(i, j - i) + "\n";
      }
      out += commented;
    }
  }
  return out;
}

std::string trials_csv(const Job& job, const std::vector<Trial>& trials) {
  const auto obj = objectives(job, trials);
  const auto csv = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos)
      return s;
    std::string q = "\"";
    for (char ch : s)
      q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::string out = "iteration,role,outcome,objective";
  for (const MetricSpec& m : job.metrics)
    out += "," + csv(m.name);
  out += ",build_s,build_cached,eval_s,started_ns,search_s";
  for (const Parameter& p : job.parameters)
    out += "," + csv(p.name);
  out += ",message\n";
  for (size_t i = 0; i < trials.size(); ++i) {
    const Trial& t = trials[i];
    out += fmt::format("{},{},{},{}", t.iteration, trial_role_name(t.role),
                       t.pending ? "pending" : outcome_name(t.outcome),
                       obj[i] ? fmt::format("{:.6g}", *obj[i]) : "");
    for (const MetricSpec& m : job.metrics) {
      auto it = t.metrics.find(m.name);
      out += "," + (it == t.metrics.end() ? std::string() : fmt::format("{:.6g}", it->second));
    }
    out += fmt::format(",{:.3f},{},{:.3f},{},{:.4f}", t.build_s, t.build_cached ? 1 : 0, t.eval_s,
                       t.started_ns, t.search_s);
    for (const Parameter& p : job.parameters) {
      auto it = t.config.find(p.name);
      out += "," + csv(it == t.config.end() ? "" : it->second);
    }
    out += "," + csv(t.message) + "\n";
  }
  return out;
}

Result<StudySummary> run_study(const Job& job, StudyStore& store, const StudyOptions& options) {
  StudySummary summary;
  HostJournal journal(store);
  SLUICE_ASSIGN_OR_RETURN(int restored, journal.restore_all());
  if (restored > 0 && options.progress) {
    std::fprintf(options.progress,
                 "restored %d host setting(s) and namespace(s) left by an interrupted run\n",
                 restored);
  }
  std::string work_dir = options.work_dir;
  if (work_dir.empty()) {
    SLUICE_ASSIGN_OR_RETURN(KnobInfo k, KnobRegistry::global().info("wayfinder.work_dir"));
    work_dir = k.value;
  }
  const std::string study_name = options.study.empty() ? job.name : options.study;
  SLUICE_RETURN_IF_ERROR(check_study_name(study_name));
  work_dir += "/" + study_name;
  // Everything that can refuse the run is checked before a new study's row is written, so a
  // refused run leaves nothing behind; a resumed study is checked against what it started with.
  const StudyInfo wanted{.name = study_name,
                         .job_path = job.path,
                         .job_text = job.text,
                         .search = options.search,
                         .seed = options.seed,
                         .model_in = options.model_in};
  SLUICE_ASSIGN_OR_RETURN(std::optional<StudyInfo> existing, store.find_study(study_name));
  StudyInfo study = existing.value_or(wanted);
  // A resumed study starts from the model it started from; naming another is refused, naming
  // none resumes with the stored one.
  if (!options.model_in.empty() && options.model_in != study.model_in) {
    return failed_precondition(fmt::format(
        "study '{}' started {}; resuming it warm from {} would mix two starting points. Name a "
        "new study with --study",
        study.name, study.model_in.empty() ? "cold" : "warm from " + study.model_in,
        options.model_in));
  }
  if (study.job_text != job.text) {
    return failed_precondition(fmt::format(
        "study '{}' was started from a different version of {}; resuming it would mix two "
        "spaces. Name a new study with --study, or restore the job file",
        study.name, study.job_path));
  }
  const Space space(job);
  // Every placeholder must resolve before the first trial, so a typo costs no trial.
  {
    std::map<std::string, std::string> values = space.default_configuration();
    for (const char* k : {"workdir", "job_dir", "build_dir", "flags", "knob_flags", "iteration"}) {
      values[k] = "";
    }
    std::vector<std::pair<std::string, std::string>> texts = {
        {"commands.build", job.commands.build},
        {"commands.start", job.commands.start},
        {"commands.ready", job.commands.ready},
        {"commands.bench", job.commands.bench},
        {"commands.stop", job.commands.stop}};
    for (const TemplateFile& f : job.files)
      texts.emplace_back("file " + f.path, f.content);
    for (const auto& [where, text] : texts) {
      auto r = render_template(text, values);
      if (!r)
        return r.status().with_context(fmt::format("{}: {}", job.path, where));
    }
  }
  // A resumed study keeps the searcher and seed it started with.
  SLUICE_ASSIGN_OR_RETURN(
      auto searcher,
      make_searcher(study.search, space, {.seed = study.seed, .model_in = study.model_in}));
  // A model that cannot be saved is refused before the first trial, not after the last.
  if (!options.model_out.empty() && !searcher->keeps_model()) {
    return invalid_argument(
        fmt::format("search '{}' keeps no model to save; --save-model needs --search deeptune",
                    searcher->name()));
  }
  if (!existing) {
    SLUICE_ASSIGN_OR_RETURN(study, store.open_study(wanted));
  }
  summary.study_id = study.id;
  SLUICE_ASSIGN_OR_RETURN(std::vector<Trial> trials, store.trials(study.id));
  for (const Observation& o : history_of(job, trials))
    searcher->observe(o);

  Evaluator evaluator(job, store, {.work_dir = work_dir});
  const int64_t budget = options.budget.value_or(job.budget.iterations);
  const double time_limit = options.time_s.value_or(job.budget.seconds);
  const int64_t t0 = monotonic_ns();
  const bool tty = options.progress && isatty(fileno(options.progress));
  int64_t evaluated_now = 0;
  double seconds_now = 0;

  const auto counted = [&] {
    int64_t n = 0;
    for (const Trial& t : trials)
      n += (!t.pending && t.role != TrialRole::kConfirm) ? 1 : 0;
    return n;
  };
  const auto progress = [&](const Trial& last) {
    if (!options.progress)
      return;
    const auto best = best_trial(job, trials);
    std::optional<double> base;
    for (const Trial& t : trials) {
      if (t.role == TrialRole::kDefault && !t.pending && t.outcome == Outcome::kOk) {
        base = t.metrics.at(job.metrics[0].name);
      }
    }
    int64_t fails = 0, done = 0;
    for (const Trial& t : trials) {
      if (t.pending)
        continue;
      ++done;
      fails += is_failure(t.outcome) ? 1 : 0;
    }
    std::string best_text = "none yet";
    if (best && job.metrics.size() > 1) {
      const auto obj = objectives(job, trials);
      best_text =
          fmt::format("score {:.3f} (Eq. 4) at iteration {}", *obj[*best], trials[*best].iteration);
    } else if (best) {
      const double v = trials[*best].metrics.at(job.metrics[0].name);
      best_text = fmt::format("{:.6g} {}", v, job.metrics[0].name);
      if (base && *base != 0)
        best_text += fmt::format(" ({:+.1f}% vs default)", 100 * (v / *base - 1));
    }
    int64_t confirmed = 0;
    for (const Trial& t : trials)
      confirmed += (!t.pending && t.role == TrialRole::kConfirm) ? 1 : 0;
    const int64_t left = std::max<int64_t>(0, budget - counted()) +
                         std::max<int64_t>(0, int64_t{options.confirm} * 2 - confirmed);
    const double eta =
        evaluated_now ? seconds_now / static_cast<double>(evaluated_now) * static_cast<double>(left)
                      : 0;
    const std::string line =
        fmt::format("iter {}/{} | {} {} | best {} | failures {}/{} ({:.0f}%) | ETA {}", counted(),
                    budget, trial_role_name(last.role),
                    last.pending ? "stopped" : outcome_name(last.outcome), best_text, fails, done,
                    done ? 100.0 * static_cast<double>(fails) / static_cast<double>(done) : 0.0,
                    short_duration(eta));
    if (tty) {
      std::fprintf(options.progress, "\r\033[K%s", line.c_str());
    } else {
      std::fprintf(options.progress, "%s\n", line.c_str());
    }
    std::fflush(options.progress);
  };

  const auto run_one = [&](Trial t) -> Status {
    t.started_ns = wall_ns();
    SLUICE_RETURN_IF_ERROR(store.begin_trial(study.id, t));
    const int64_t ts = monotonic_ns();
    auto r = evaluator.evaluate(t.config, t.iteration);
    if (!r) {
      if (r.status().code() == StatusCode::kCancelled)
        summary.stopped = true;
      return r.status();
    }
    t.pending = false;
    t.outcome = r->outcome;
    t.metrics = r->metrics;
    t.samples = r->samples;
    t.message = r->message;
    t.build_s = r->build_s;
    t.build_cached = r->build_cached;
    t.eval_s = r->eval_s;
    SLUICE_RETURN_IF_ERROR(store.finish_trial(study.id, t));
    ++evaluated_now;
    seconds_now += static_cast<double>(monotonic_ns() - ts) / 1e9;
    auto it = std::find_if(trials.begin(), trials.end(),
                           [&](const Trial& x) { return x.iteration == t.iteration; });
    if (it != trials.end()) {
      *it = t;
    } else {
      trials.push_back(t);
    }
    if (t.role != TrialRole::kConfirm) {
      const auto hist = history_of(job, trials);
      for (const auto& o : hist) {
        if (o.iteration == t.iteration)
          searcher->observe(o);
      }
    }
    progress(t);
    return {};
  };
  const auto next_iteration = [&] {
    int64_t n = 0;
    for (const Trial& t : trials)
      n = std::max(n, t.iteration + 1);
    return n;
  };
  const auto out_of_time = [&] {
    return time_limit > 0 && static_cast<double>(monotonic_ns() - t0) / 1e9 >= time_limit;
  };

  Status st;
  // A trial left pending by an interrupted run goes first, with the same configuration.
  for (const Trial& t : std::vector<Trial>(trials)) {
    if (t.pending && st.is_ok()) {
      Trial again = t;
      st = run_one(again);
    }
  }
  while (st.is_ok() && counted() < budget && !out_of_time() && !stop_requested()) {
    const bool has_default = std::any_of(
        trials.begin(), trials.end(), [](const Trial& t) { return t.role == TrialRole::kDefault; });
    Trial t{.iteration = next_iteration()};
    if (!has_default) {
      t.role = TrialRole::kDefault;
      t.config = space.default_configuration();
    } else {
      const auto hist = history_of(job, trials);
      const int64_t ps = monotonic_ns();
      SLUICE_ASSIGN_OR_RETURN(auto proposals, searcher->propose(hist, 1));
      t.search_s = static_cast<double>(monotonic_ns() - ps) / 1e9;
      if (proposals.empty())
        break;  // the space is exhausted
      t.config = std::move(proposals[0]);
    }
    st = run_one(std::move(t));
  }
  // Confirmation: the default and the best, alternately, under the same conditions.
  if (st.is_ok() && options.confirm > 0 && !stop_requested()) {
    const auto best = best_trial(job, trials);
    if (best) {
      const Configuration best_config = trials[*best].config;
      const Configuration def = space.default_configuration();
      int64_t have = 0;
      for (const Trial& t : trials)
        have += t.role == TrialRole::kConfirm ? 1 : 0;
      for (int64_t k = have; k < 2 * options.confirm && st.is_ok() && !stop_requested(); ++k) {
        st = run_one({.iteration = next_iteration(),
                      .role = TrialRole::kConfirm,
                      .config = k % 2 == 0 ? def : best_config});
      }
    }
  }
  if (tty)
    std::fprintf(options.progress, "\n");
  // A model-based searcher leaves its model behind for transfer learning (§3.3): a later study
  // of a related target starts warm from it (StudyOptions::model_in).
  if (st.is_ok() || st.code() == StatusCode::kCancelled) {
    const std::string model_path = options.model_out.empty()
                                       ? fmt::format("{}/{}.model", work_dir, searcher->name())
                                       : options.model_out;
    // A finished study run again (to report it) evaluates nothing: the model its last run trained
    // step by step stays, rather than one retrained at once from the replayed history.
    std::error_code ec;
    const bool keep_last =
        options.model_out.empty() && evaluated_now == 0 && std::filesystem::exists(model_path, ec);
    if (keep_last) {
      summary.model_path = model_path;
    } else if (Status ms = searcher->save_model(model_path); ms.is_ok()) {
      summary.model_path = model_path;
    } else if (ms.code() != StatusCode::kUnimplemented) {
      return ms.with_context("saving the search model");
    } else if (!options.model_out.empty()) {
      return ms;
    }
  }
  summary.builds_run = evaluator.builds_run();
  for (const Trial& t : trials) {
    if (t.pending)
      continue;
    ++summary.trials;
    summary.failures += is_failure(t.outcome) ? 1 : 0;
  }
  if (stop_requested())
    summary.stopped = true;
  if (!st.is_ok() && !(st.code() == StatusCode::kCancelled))
    return st;
  return summary;
}

}  // namespace sluice::wf
