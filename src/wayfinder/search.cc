// Random and grid search, and the registry of searchers.
#include "sluice/wayfinder/search.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>

#include "wayfinder/searchers.h"

namespace sluice::wf {

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kBuildFailure: return "build_failure";
    case Outcome::kStartFailure: return "start_failure";
    case Outcome::kCrash: return "crash";
    case Outcome::kTimeout: return "timeout";
    case Outcome::kMetricMissing: return "metric_missing";
  }
  return "?";
}

Result<Outcome> parse_outcome(std::string_view name) {
  for (Outcome o : {Outcome::kOk, Outcome::kBuildFailure, Outcome::kStartFailure, Outcome::kCrash,
                    Outcome::kTimeout, Outcome::kMetricMissing}) {
    if (outcome_name(o) == name)
      return o;
  }
  return invalid_argument(fmt::format("unknown outcome '{}'", name));
}

Status Searcher::save_model(const std::string&) {
  return unimplemented(fmt::format("search '{}' keeps no model to save", name()));
}

Result<Insight> Searcher::explain(std::span<const Observation>) {
  return unimplemented(
      fmt::format("search '{}' has no model to explain; use --search deeptune", name()));
}

namespace {

// Random search (the paper's baseline): unique random configurations, no use of the results.
class RandomSearch final : public Searcher {
 public:
  RandomSearch(const Space& space, uint64_t seed) : space_(space), seed_(seed) {}
  std::string_view name() const override { return "random"; }

  Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                             size_t n) override {
    std::set<uint64_t> seen;
    for (const auto& o : history)
      seen.insert(configuration_hash(o.config));
    // Seeded by the history's length: a resumed study proposes what it would have.
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + history.size());
    std::vector<Configuration> out;
    for (size_t i = 0; i < n; ++i) {
      Configuration c = space_.sample(rng);
      for (int attempt = 0; attempt < 100 && seen.contains(configuration_hash(c)); ++attempt) {
        c = space_.sample(rng);
      }
      if (seen.contains(configuration_hash(c)))
        break;  // the space looks exhausted
      seen.insert(configuration_hash(c));
      out.push_back(std::move(c));
    }
    return out;
  }
  void observe(const Observation&) override {}

 private:
  const Space& space_;
  uint64_t seed_;
};

// Grid search: every grid point in mixed-radix order (one parameter value after the other),
// skipping configurations the history already holds.
class GridSearch final : public Searcher {
 public:
  explicit GridSearch(const Space& space) : space_(space), size_(space.grid_size()) {}
  std::string_view name() const override { return "grid"; }

  Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                             size_t n) override {
    if (!size_) {
      return invalid_argument(
          "the grid of this space has more than 2^63 points; use random "
          "search or fewer grid_points");
    }
    std::set<uint64_t> seen;
    for (const auto& o : history)
      seen.insert(configuration_hash(o.config));
    std::vector<Configuration> out;
    while (out.size() < n && next_ < *size_) {
      Configuration c = space_.grid_point(next_++);
      if (seen.insert(configuration_hash(c)).second)
        out.push_back(std::move(c));
    }
    return out;
  }
  void observe(const Observation&) override {}

 private:
  const Space& space_;
  std::optional<uint64_t> size_;
  uint64_t next_ = 0;
};

// Where plugins live: $SLUICE_PLUGIN_DIR when set (and only there), else beside the running
// program (the build tree, an installed bin/), else ../lib/sluice from it.
std::vector<std::filesystem::path> plugin_dirs() {
  if (const char* env = std::getenv("SLUICE_PLUGIN_DIR"); env && *env)
    return {std::filesystem::path(env)};
  std::vector<std::filesystem::path> dirs;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path());
    dirs.push_back(exe.parent_path().parent_path() / "lib" / "sluice");
  }
  return dirs;
}

// A searcher that lives in a plugin (sluice-<name>.so) because its dependencies are heavy:
// libtorch's start-up costs ~0.6 s per process, which every other sluice command would pay.
// The plugin is dlopen'ed on first use and must export `sluice_wf_searcher_factory`, returning
// its SearcherFactory; its undefined symbols resolve against the program (linked -rdynamic).
Result<SearcherFactory> load_plugin_factory(const std::string& name) {
  static std::mutex m;
  static std::map<std::string, SearcherFactory> loaded;
  std::lock_guard lock(m);
  if (auto it = loaded.find(name); it != loaded.end())
    return it->second;
  std::string tried;
  for (const auto& dir : plugin_dirs()) {
    auto path = dir / fmt::format("sluice-{}.so", name);
    if (!std::filesystem::exists(path)) {
      tried += (tried.empty() ? "" : ", ") + path.string();
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      return unavailable(
          fmt::format("search '{}': cannot load {}: {}", name, path.string(), dlerror()));
    using Entry = const SearcherFactory* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "sluice_wf_searcher_factory"));
    if (!entry)
      return unavailable(fmt::format("search '{}': {} exports no sluice_wf_searcher_factory", name,
                                     path.string()));
    // The handle stays open for the life of the process: the factory's code lives in it.
    return loaded[name] = *entry();
  }
  return unavailable(
      fmt::format("search '{}' needs its plugin sluice-{}.so, not found (looked for {}); build the "
                  "project's default target, or set SLUICE_PLUGIN_DIR",
                  name, name, tried));
}

SearcherFactory plugin_searcher(std::string name) {
  return [name](const Space& s, const SearchOptions& o) -> Result<std::unique_ptr<Searcher>> {
    SLUICE_ASSIGN_OR_RETURN(auto factory, load_plugin_factory(name));
    return factory(s, o);
  };
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, SearcherFactory>& registry() {
  static std::map<std::string, SearcherFactory> r = {
      {"random",
       [](const Space& s, const SearchOptions& o) -> Result<std::unique_ptr<Searcher>> {
         return std::unique_ptr<Searcher>(std::make_unique<RandomSearch>(s, o.seed));
       }},
      {"grid",
       [](const Space& s, const SearchOptions&) -> Result<std::unique_ptr<Searcher>> {
         return std::unique_ptr<Searcher>(std::make_unique<GridSearch>(s));
       }},
      {"bayes", make_bayes_search},
      {"optuna", make_optuna_search},
      {"deeptune", plugin_searcher("deeptune")},
  };
  return r;
}

}  // namespace

bool register_searcher(std::string name, SearcherFactory factory) {
  std::lock_guard lock(registry_mutex());
  registry()[std::move(name)] = std::move(factory);
  return true;
}

std::vector<std::string> searcher_names() {
  std::lock_guard lock(registry_mutex());
  std::vector<std::string> out;
  for (const auto& [k, v] : registry())
    out.push_back(k);
  return out;
}

Result<std::unique_ptr<Searcher>> make_searcher(std::string_view name, const Space& space,
                                                const SearchOptions& options) {
  SearcherFactory f;
  {
    std::lock_guard lock(registry_mutex());
    auto it = registry().find(std::string(name));
    if (it == registry().end()) {
      std::string list;
      for (const auto& [k, v] : registry())
        list += (list.empty() ? "" : ", ") + k;
      return invalid_argument(fmt::format("unknown search '{}' (known: {})", name, list));
    }
    f = it->second;
  }
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Searcher> s, f(space, options));
  if (!options.model_in.empty() && !s->keeps_model()) {
    return invalid_argument(fmt::format(
        "search '{}' keeps no model to start warm from; --warm-start needs --search deeptune",
        s->name()));
  }
  return s;
}

}  // namespace sluice::wf
