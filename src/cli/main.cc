// The `sluice` program: global flags, knob loading, and the command tree modules registered.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/registry.h"
#include "sluice/common/knobs.h"
#include "sluice/common/log.h"
#include "sluice/version.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int exit_code_for(const sluice::Status& s) {
  return s.code() == sluice::StatusCode::kInvalidArgument ||
                 s.code() == sluice::StatusCode::kNotFound
             ? kExitUsage
             : kExitFailure;
}

// Defaults, then the config file, then SLUICE_* variables, then --set and --log-level.
sluice::Status load_knobs(const std::string& config, const std::vector<std::string>& sets,
                          const std::string& log_level) {
  auto& knobs = sluice::KnobRegistry::global();
  std::string path = config;
  if (path.empty()) {
    if (const char* env = std::getenv("SLUICE_CONFIG"); env != nullptr) {
      path = env;
    }
  }
  if (!path.empty()) {
    SLUICE_RETURN_IF_ERROR(knobs.load_yaml_file(path));
  }
  SLUICE_RETURN_IF_ERROR(knobs.load_environment(sluice::KnobRegistry::current_environment()));
  SLUICE_RETURN_IF_ERROR(knobs.apply_assignments(sets));
  if (!log_level.empty()) {
    SLUICE_RETURN_IF_ERROR(knobs.set("log.level", log_level).with_context("--log-level"));
  }
  knobs.freeze_start_knobs();
  sluice::apply_log_level();
  return {};
}

// CLI11 2.1 reads integers with strtoll/strtoull and does not look at errno, so
// 99999999999999999999 becomes the largest integer and -1 a huge unsigned one, and its range
// checks let NaN through. Every INT, UINT and FLOAT option of the tree gets this check first.
std::string check_plain_number(const std::string& type, const std::string& text) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  if (type == "FLOAT") {
    const double v = std::strtod(begin, &end);
    if (end != begin && *end == '\0' && (errno == ERANGE || !std::isfinite(v))) {
      return text + " is not a finite number in range";
    }
    return {};
  }
  if (type == "UINT") {
    const char* p = begin;
    while (*p == ' ') {
      ++p;
    }
    if (*p == '-') {
      return text + " is negative; a non-negative integer is expected";
    }
    (void)std::strtoull(begin, &end, 0);
  } else {
    (void)std::strtoll(begin, &end, 0);
  }
  if (end != begin && *end == '\0' && errno == ERANGE) {
    return text + " is out of range for a 64-bit integer";
  }
  return {};  // anything else is CLI11's to judge
}

void check_numbers(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    std::string type = opt->get_type_name();
    type = type.substr(0, type.find_first_of(": "));
    if (type == "INT" || type == "UINT" || type == "FLOAT") {
      // An empty description keeps the option's help as it was.
      opt->check(CLI::Validator(
          [type](std::string& text) { return check_plain_number(type, text); }, "", ""));
    }
  }
  for (CLI::App* sub : app.get_subcommands({})) {
    check_numbers(*sub);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice: a user-space OS layer for data-intensive applications", "sluice"};
  app.set_version_flag("--version", std::string(sluice::kVersion));
  app.require_subcommand(0, 1);

  std::string config;
  std::vector<std::string> sets;
  std::string log_level;
  app.add_option("--config", config, "YAML file of knob values (default: $SLUICE_CONFIG)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sets, "set a knob: --set zicio.ring_buffers=32 (repeatable)")
      ->type_name("KNOB=VALUE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->type_name("LEVEL");

  auto& commands = sluice::cli::registered_commands();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  for (auto& spec : commands) {
    CLI::App* cmd = app.add_subcommand(spec.name, spec.help);
    spec.setup(*cmd);
  }

  check_numbers(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here with 0; every usage error exits 2, whatever CLI11's own
    // code for it (109 for an unexpected argument, 105 for a failed check…).
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  if (auto s = load_knobs(config, sets, log_level); !s.is_ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return exit_code_for(s);
  }

  const sluice::cli::Action* action = sluice::cli::chosen_action();
  if (action == nullptr) {
    // A command group given without one of its commands, or nothing at all.
    const CLI::App* deepest = &app;
    for (auto subs = app.get_subcommands(); !subs.empty(); subs = deepest->get_subcommands()) {
      deepest = subs.front();
    }
    std::fprintf(stderr, "%s\n", deepest->help().c_str());
    std::fprintf(stderr, "sluice: choose a command (see above)\n");
    return kExitUsage;
  }
  sluice::Status s;
  try {
    s = (*action)();
  } catch (const std::bad_alloc&) {
    s = sluice::resource_exhausted("out of memory (a size or count too large for this machine?)");
  } catch (const std::exception& e) {
    // A command's own checks should have refused what led here; say what it was, not abort.
    s = sluice::internal_error(std::string("unexpected error: ") + e.what());
  }
  if (!s.is_ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return exit_code_for(s);
  }
  // Output that never reached its file (a full disk, a closed pipe) is a failure, not a success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    const int err = errno;
    std::fprintf(stderr, "sluice: cannot write the output: %s\n",
                 err != 0 ? std::strerror(err) : "write error");
    return kExitFailure;
  }
  return 0;
}
