// `sluice tune run|status|best|export|explain|discover|restore` and the wayfinder demo step.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sluice/cli/checks.h"
#include "sluice/cli/command.h"
#include "sluice/common/knobs.h"
#include "sluice/wayfinder/job.h"
#include "sluice/wayfinder/pipeline.h"
#include "sluice/wayfinder/search.h"
#include "sluice/wayfinder/store.h"
#include "sluice/wayfinder/study.h"

namespace sluice::wf::cli {
namespace {

struct TuneOptions {
  std::string job;
  std::string study;
  std::string store;
  std::string search = "random";
  uint64_t seed = 1;
  int64_t budget = 0;
  double time_s = 0;
  int confirm = 0;
  std::string work_dir;
  bool csv = false;
  std::string output;
  std::string source = "net";
  std::string prefix;
  std::string sluice_binary;
  int probe_steps = 3;
  std::string save_model;
  std::string warm_start;
  std::string model = "deeptune";
  bool json = false;
  int top = 5;
};

void on_signal(int) {
  request_stop();
}

Status write_or_print(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::fputs(text.c_str(), stdout);
    return {};
  }
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out)
    return io_error(fmt::format("cannot write {}", path));
  std::fprintf(stderr, "wrote %s\n", path.c_str());
  return {};
}

// A stored study with its job re-parsed from the text kept in the store.
struct Loaded {
  StudyInfo info;
  Job job;
  std::vector<Trial> trials;
};

Result<Loaded> load_study(StudyStore& store, const std::string& name) {
  std::string want = name;
  if (want.empty()) {
    SLUICE_ASSIGN_OR_RETURN(auto all, store.list_studies());
    if (all.empty())
      return not_found(fmt::format("no studies in {}", store.url()));
    want = all.back().name;
  }
  SLUICE_ASSIGN_OR_RETURN(auto info, store.find_study(want));
  if (!info)
    return not_found(fmt::format("no study named '{}' in {}", want, store.url()));
  const std::string dir = std::filesystem::path(info->job_path).parent_path().string();
  SLUICE_ASSIGN_OR_RETURN(Job job, parse_job(info->job_text, info->job_path, dir));
  SLUICE_ASSIGN_OR_RETURN(auto trials, store.trials(info->id));
  return Loaded{*info, std::move(job), std::move(trials)};
}

std::optional<size_t> default_trial(const std::vector<Trial>& trials) {
  for (size_t i = 0; i < trials.size(); ++i) {
    if (trials[i].role == TrialRole::kDefault && !trials[i].pending)
      return i;
  }
  return std::nullopt;
}

std::string metrics_text(const Job& job, const Trial& t) {
  std::string s;
  for (const MetricSpec& m : job.metrics) {
    auto it = t.metrics.find(m.name);
    if (it == t.metrics.end())
      continue;
    s += fmt::format("{}{} = {:.6g}", s.empty() ? "" : ", ", m.name, it->second);
  }
  return s.empty() ? std::string(outcome_name(t.outcome)) : s;
}

// Median of the confirm-phase measurements of one configuration and metric.
std::optional<double> confirm_median(const std::vector<Trial>& trials, const Configuration& c,
                                     const std::string& metric) {
  std::vector<double> v;
  for (const Trial& t : trials) {
    if (t.role != TrialRole::kConfirm || t.pending || t.outcome != Outcome::kOk)
      continue;
    if (t.config != c)
      continue;
    auto it = t.metrics.find(metric);
    if (it != t.metrics.end())
      v.push_back(it->second);
  }
  if (v.empty())
    return std::nullopt;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The best's value against the default's, as a change of the metric itself (bounded at -100%
// for a value that fell to zero, where a ratio of the other way round would be unbounded), and
// whether that is better for the metric's direction.
std::string change_text(const MetricSpec& m, double def, double best) {
  if (def == best)
    return "the same as the default";
  const bool better = m.direction == Direction::kMaximize ? best > def : best < def;
  if (def == 0)
    return better ? "better than the default (0)" : "worse than the default (0)";
  return fmt::format("{:+.1f}% against the default ({})", 100 * (best / def - 1),
                     better ? "better" : "worse");
}

Status print_summary(const Loaded& s, std::FILE* out) {
  std::map<std::string, int> by_outcome;
  int pending = 0;
  for (const Trial& t : s.trials) {
    if (t.pending) {
      ++pending;
    } else {
      ++by_outcome[std::string(outcome_name(t.outcome))];
    }
  }
  std::fprintf(out, "study %s (search %s, seed %llu): %zu trials", s.info.name.c_str(),
               s.info.search.c_str(), static_cast<unsigned long long>(s.info.seed),
               s.trials.size());
  for (const auto& [k, v] : by_outcome)
    std::fprintf(out, ", %d %s", v, k.c_str());
  if (pending)
    std::fprintf(out, ", %d pending", pending);
  std::fprintf(out, "\n  job: %s\n", s.info.job_path.c_str());
  const auto def = default_trial(s.trials);
  const auto best = best_trial(s.job, s.trials);
  if (def) {
    std::fprintf(out, "  default (iteration %lld): %s\n",
                 static_cast<long long>(s.trials[*def].iteration),
                 metrics_text(s.job, s.trials[*def]).c_str());
  }
  if (best) {
    const Trial& b = s.trials[*best];
    std::fprintf(out, "  best    (iteration %lld): %s\n", static_cast<long long>(b.iteration),
                 metrics_text(s.job, b).c_str());
    for (const MetricSpec& m : s.job.metrics) {
      if (def && s.trials[*def].outcome == Outcome::kOk) {
        const double d = s.trials[*def].metrics.at(m.name), v = b.metrics.at(m.name);
        std::fprintf(out, "  %s in the search: %s\n", m.name.c_str(), change_text(m, d, v).c_str());
      }
      const auto cd = confirm_median(s.trials, Space(s.job).default_configuration(), m.name);
      const auto cb = confirm_median(s.trials, b.config, m.name);
      if (cd && cb) {
        std::fprintf(out,
                     "  %s confirmed (alternating re-runs, medians): default %.6g, best %.6g, "
                     "%s\n",
                     m.name.c_str(), *cd, *cb, change_text(m, *cd, *cb).c_str());
      }
    }
  }
  return {};
}

Status run_tune(const TuneOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(Job job, load_job_file(o.job));
  SLUICE_ASSIGN_OR_RETURN(auto store, StudyStore::open(o.store));
  clear_stop();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  StudyOptions so{.study = o.study,
                  .search = o.search,
                  .seed = o.seed,
                  .confirm = o.confirm,
                  .work_dir = o.work_dir,
                  .progress = stderr,
                  .model_in = o.warm_start,
                  .model_out = o.save_model};
  if (o.budget > 0)
    so.budget = o.budget;
  if (o.time_s > 0)
    so.time_s = o.time_s;
  auto summary = run_study(job, *store, so);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!summary)
    return summary.status();
  SLUICE_ASSIGN_OR_RETURN(Loaded s, load_study(*store, o.study.empty() ? job.name : o.study));
  SLUICE_RETURN_IF_ERROR(print_summary(s, stdout));
  std::printf("  builds run: %d; store: %s\n", summary->builds_run, store->url().c_str());
  if (!summary->model_path.empty())
    std::printf("  model: %s (start a related study warm with --warm-start)\n",
                summary->model_path.c_str());
  if (summary->stopped) {
    return cancelled(
        "stopped; every finished trial is stored, and the same command resumes "
        "the study");
  }
  return {};
}

Status run_status(const TuneOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto store, StudyStore::open(o.store));
  if (o.study.empty()) {
    SLUICE_ASSIGN_OR_RETURN(auto all, store->list_studies());
    if (all.empty()) {
      std::printf("no studies in %s\n", store->url().c_str());
      return {};
    }
    for (const auto& info : all) {
      SLUICE_ASSIGN_OR_RETURN(Loaded s, load_study(*store, info.name));
      SLUICE_RETURN_IF_ERROR(print_summary(s, stdout));
    }
    return {};
  }
  SLUICE_ASSIGN_OR_RETURN(Loaded s, load_study(*store, o.study));
  return print_summary(s, stdout);
}

Status run_best(const TuneOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto store, StudyStore::open(o.store));
  SLUICE_ASSIGN_OR_RETURN(Loaded s, load_study(*store, o.study));
  const auto best = best_trial(s.job, s.trials);
  if (!best)
    return not_found(fmt::format("study '{}' has no successful trial yet", s.info.name));
  return write_or_print(o.output, export_configuration(s.job, s.trials[*best].config));
}

Status run_export(const TuneOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto store, StudyStore::open(o.store));
  SLUICE_ASSIGN_OR_RETURN(Loaded s, load_study(*store, o.study));
  return write_or_print(o.output, trials_csv(s.job, s.trials));
}

std::string effects_table(const std::vector<ParameterEffect>& rows, size_t top) {
  std::string out = fmt::format("  {:<32} {:>10} {:>10}  {}\n", "parameter", "importance", "effect",
                                "best value");
  for (size_t i = 0; i < rows.size() && i < top; ++i) {
    const ParameterEffect& e = rows[i];
    out += fmt::format("  {:<32} {:>9.1f}% {:>+10.3f}  {}\n", e.parameter, 100 * e.importance,
                       e.effect, e.best_value);
  }
  return out;
}

nlohmann::json effects_json(const std::vector<ParameterEffect>& rows) {
  nlohmann::json a = nlohmann::json::array();
  for (const ParameterEffect& e : rows) {
    a.push_back({{"parameter", e.parameter},
                 {"importance", e.importance},
                 {"effect", e.effect},
                 {"best_value", e.best_value}});
  }
  return a;
}

// `sluice tune explain`: a model trained on the study's history says which parameters raise and
// lower the metric, and how well it predicts crashes (the paper's Table 3).
Status run_explain(const TuneOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto store, StudyStore::open(o.store));
  SLUICE_ASSIGN_OR_RETURN(Loaded s, load_study(*store, o.study));
  const Space space(s.job);
  SLUICE_ASSIGN_OR_RETURN(auto model, make_searcher(o.model, space, {.seed = s.info.seed}));
  const auto history = history_of(s.job, s.trials);
  if (history.size() < 4) {
    return failed_precondition(
        fmt::format("study '{}' has {} finished trials; explain needs at least 4", s.info.name,
                    history.size()));
  }
  for (const Observation& obs : history)
    model->observe(obs);
  SLUICE_ASSIGN_OR_RETURN(Insight in, model->explain(history));
  if (o.json) {
    nlohmann::json j = {{"study", s.info.name},
                        {"trials", history.size()},
                        {"raise", effects_json(in.raise)},
                        {"lower", effects_json(in.lower)},
                        {"importance", effects_json(in.all)},
                        {"crash_prediction",
                         {{"evaluated", in.crashes.evaluated},
                          {"crashes", in.crashes.crashes},
                          {"accuracy", in.crashes.accuracy},
                          {"precision", in.crashes.precision},
                          {"recall", in.crashes.recall}}},
                        {"notes", in.notes},
                        {"caution", in.caution}};
    std::printf("%s\n", j.dump(2).c_str());
    return {};
  }
  const size_t top = static_cast<size_t>(o.top);
  std::printf("study %s: %zu trials explained by a %s model\n", s.info.name.c_str(), history.size(),
              o.model.c_str());
  if (!in.caution.empty())
    std::printf("caution: %s\n", in.caution.c_str());
  std::printf("\nparameters that raise the objective (higher is better):\n%s",
              effects_table(in.raise, top).c_str());
  std::printf("\nparameters that lower it:\n%s", effects_table(in.lower, top).c_str());
  const CrashAccuracy& c = in.crashes;
  std::printf(
      "\ncrash prediction on %lld held-out trials (%lld failed): accuracy %.1f%%, "
      "precision %.1f%%, recall %.1f%%\n",
      static_cast<long long>(c.evaluated), static_cast<long long>(c.crashes), 100 * c.accuracy,
      100 * c.precision, 100 * c.recall);
  if (!in.notes.empty())
    std::printf("\n%s\n", in.notes.c_str());
  return {};
}

Status run_discover(const TuneOptions& o) {
  DiscoverOptions d{.source = o.source, .prefix = o.prefix, .probe_steps = o.probe_steps};
  if (o.source == "knobs") {
    if (o.sluice_binary.empty()) {
      d.knobs_json = KnobRegistry::global().to_json();
    } else {
      const CommandResult r = run_command(
          {.command = fmt::format("'{}' knobs --json", o.sluice_binary), .timeout_s = 30});
      if (r.exit_code != 0) {
        return failed_precondition(
            fmt::format("{} knobs --json failed: {}", o.sluice_binary, r.err));
      }
      d.knobs_json = r.out;
    }
  }
  SLUICE_ASSIGN_OR_RETURN(DiscoverReport rep, discover(d));
  std::fprintf(stderr, "%d parameters found, %d numeric kept, %d skipped (strings, multi-value)\n",
               rep.found, rep.numeric, rep.skipped);
  return write_or_print(o.output, rep.yaml);
}

Status run_restore(const TuneOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto store, StudyStore::open(o.store));
  HostJournal journal(*store);
  SLUICE_ASSIGN_OR_RETURN(int n, journal.restore_all());
  std::printf("restored %d journalled host change(s)\n", n);
  return {};
}

void setup(CLI::App& tune) {
  tune.require_subcommand(1);
  auto o = std::make_shared<TuneOptions>();
  const auto store_opt = [o](CLI::App* c) {
    c->add_option("--store", o->store,
                  "dbos URL of the study store (default: knob "
                  "wayfinder.store)");
  };
  CLI::App* run = tune.add_subcommand("run", "Run (or resume) a study of a job file");
  run->add_option("job", o->job, "job file (YAML)")->required();
  run->add_option("--budget", o->budget, "iterations, the default measurement included")
      ->check(sluice::cli::at_least(1));
  run->add_option("--time", o->time_s, "wall-time budget in seconds for this run")
      ->check(sluice::cli::at_least(0.001));
  run->add_option("--search", o->search, "search algorithm")
      ->check(CLI::IsMember(searcher_names()));
  run->add_option("--seed", o->seed, "random seed");
  run->add_option("--study", o->study, "study name (default: the job's name)");
  run->add_option("--confirm", o->confirm,
                  "re-measure the default and the best alternately N times each at the end")
      ->check(sluice::cli::at_least(0));
  run->add_option("--work-dir", o->work_dir, "builds and run directories");
  run->add_option("--save-model", o->save_model,
                  "where a model-based search saves its model (default: in the work directory)");
  run->add_option("--warm-start", o->warm_start,
                  "start a model-based search from a saved model (transfer learning)")
      ->check(CLI::ExistingFile);
  store_opt(run);
  sluice::cli::bind_action(*run, [o] { return run_tune(*o); });

  CLI::App* status = tune.add_subcommand("status", "Studies: trials, outcomes, best vs default");
  status->add_option("study", o->study, "one study (default: all)");
  store_opt(status);
  sluice::cli::bind_action(*status, [o] { return run_status(*o); });

  CLI::App* best = tune.add_subcommand("best", "The best configuration as a ready-to-use file");
  best->add_option("study", o->study, "study (default: the latest)");
  best->add_option("-o,--output", o->output, "file to write (default: stdout)");
  store_opt(best);
  sluice::cli::bind_action(*best, [o] { return run_best(*o); });

  CLI::App* exp = tune.add_subcommand("export", "Every trial of a study as CSV");
  exp->add_option("study", o->study, "study (default: the latest)");
  exp->add_flag("--csv", o->csv, "CSV (the only format)");
  exp->add_option("-o,--output", o->output, "file to write (default: stdout)");
  store_opt(exp);
  sluice::cli::bind_action(*exp, [o] { return run_export(*o); });

  CLI::App* expl = tune.add_subcommand(
      "explain",
      "What a model learned: parameters that raise and lower the metric, crash accuracy");
  expl->add_option("study", o->study, "study (default: the latest)");
  expl->add_option("--model", o->model, "model-based searcher to train on the history")
      ->check(CLI::IsMember(searcher_names()));
  expl->add_option("--top", o->top, "rows per table")->check(CLI::Range(1, 1000));
  expl->add_flag("--json", o->json, "JSON instead of tables");
  store_opt(expl);
  sluice::cli::bind_action(*expl, [o] { return run_explain(*o); });

  CLI::App* disc = tune.add_subcommand(
      "discover", "Write a job file from a subsystem's writable parameters (probing x10, /10)");
  disc->add_option("--source", o->source, "net (sysctls of a fresh network namespace) or knobs")
      ->check(CLI::IsMember({"net", "knobs"}));
  disc->add_option("--prefix", o->prefix, "only parameters starting with this");
  disc->add_option("--sluice", o->sluice_binary,
                   "take knobs from this sluice binary's `knobs --json` (default: this one)");
  disc->add_option("--steps", o->probe_steps, "x10 and /10 steps tried each way")
      ->check(CLI::Range(1, 9));
  disc->add_option("-o,--output", o->output, "job file to write (default: stdout)");
  sluice::cli::bind_action(*disc, [o] { return run_discover(*o); });

  CLI::App* restore = tune.add_subcommand(
      "restore", "Restore host settings a killed study left changed (run also starts with it)");
  store_opt(restore);
  sluice::cli::bind_action(*restore, [o] { return run_restore(*o); });
}

SLUICE_REGISTER_COMMAND(tune, {.name = "tune",
                               .help = "Configuration search: run, status, best, export, "
                                       "explain, discover",
                               .order = 60,
                               .setup = setup});

// The demo: random search over two SQLite pragmas of an insert benchmark, in a temp directory,
// with the study kept in an embedded SQLite store.
constexpr const char* kDemoJob = R"YAML(
name: demo-sqlite-inserts
parameters:
  - name: synchronous
    type: enum
    values: ["OFF", NORMAL, FULL]
    default: FULL
  - name: journal_mode
    type: enum
    values: [DELETE, TRUNCATE, WAL, MEMORY]
    default: DELETE
files:
  - path: bench.py
    content: |
      import json, os, sqlite3, time
      path = "inserts.db"
      for f in (path, path + "-wal", path + "-shm", path + "-journal"):
          if os.path.exists(f): os.remove(f)
      db = sqlite3.connect(path, isolation_level=None)
      db.execute("PRAGMA synchronous = {{synchronous}}")
      db.execute("PRAGMA journal_mode = {{journal_mode}}")
      db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
      n, batch = {{rows}}, 10
      t0 = time.perf_counter()
      for i in range(0, n, batch):
          db.execute("BEGIN")
          for k in range(i, i + batch):
              db.execute("INSERT INTO t VALUES (?, randomblob(100))", (k,))
          db.execute("COMMIT")
      print(json.dumps({"us_per_insert": (time.perf_counter() - t0) * 1e6 / n}))
commands:
  bench: python3 bench.py
metrics:
  - name: us_per_insert
    json: us_per_insert
    direction: minimize
isolation: {netns: false}
repetitions: 1
timeouts: {bench: 60}
export: sql
)YAML";

Status run_demo(sluice::cli::DemoContext& ctx) {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/sluice-demo-wayfinder-XXXXXX";
  if (mkdtemp(tmpl) == nullptr)
    return errno_status(errno, "mkdtemp");
  const std::string dir = tmpl;
  const auto cleanup = [&] {
    std::error_code ec;
    fs::remove_all(dir, ec);
  };
  std::string text = kDemoJob;
  const std::string rows = ctx.quick ? "300" : "1000";
  text.replace(text.find("{{rows}}"), 8, rows);
  auto job = parse_job(text, "demo job", dir);
  if (!job) {
    cleanup();
    return job.status();
  }
  auto store = StudyStore::open("sqlite:" + dir + "/studies.db");
  if (!store) {
    cleanup();
    return store.status();
  }
  const int64_t budget = ctx.quick ? 4 : 8;
  std::fprintf(ctx.out,
               "   random search, %lld trials: PRAGMA synchronous x journal_mode, %s inserts in "
               "batches of 10\n",
               static_cast<long long>(budget), rows.c_str());
  auto summary = run_study(*job, **store,
                           {.search = "random",
                            .seed = 7,
                            .budget = budget,
                            .work_dir = dir + "/work",
                            .progress = nullptr});
  if (!summary) {
    cleanup();
    return summary.status();
  }
  auto trials = (*store)->trials(summary->study_id);
  if (!trials) {
    cleanup();
    return trials.status();
  }
  for (const Trial& t : *trials) {
    std::fprintf(ctx.out, "   %2lld %-7s synchronous=%-6s journal_mode=%-8s %s\n",
                 static_cast<long long>(t.iteration), std::string(trial_role_name(t.role)).c_str(),
                 t.config.at("synchronous").c_str(), t.config.at("journal_mode").c_str(),
                 t.outcome == Outcome::kOk
                     ? fmt::format("{:8.1f} us/insert", t.metrics.at("us_per_insert")).c_str()
                     : std::string(outcome_name(t.outcome)).c_str());
  }
  const auto best = best_trial(*job, *trials);
  if (best) {
    std::fprintf(ctx.out, "   best, as a ready-to-use file:\n");
    const std::string file = export_configuration(*job, (*trials)[*best].config);
    for (size_t i = 0, j; i < file.size(); i = j + 1) {
      j = file.find('\n', i);
      std::fprintf(ctx.out, "     %s\n", file.substr(i, j - i).c_str());
    }
  }
  cleanup();
  return {};
}

SLUICE_REGISTER_DEMO_STEP(wayfinder,
                          {.name = "wayfinder",
                           .summary = "configuration search: random search over SQLite pragmas",
                           .order = 50,
                           .run = run_demo});

}  // namespace
}  // namespace sluice::wf::cli
