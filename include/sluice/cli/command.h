// How a module adds itself to the `sluice` program: subcommands and `sluice demo` steps.
//
// A module lists its CLI sources with sluice_add_cli() in its CMakeLists.txt and registers from
// them at static-initialisation time:
//
//   SLUICE_REGISTER_COMMAND(oq, {.name = "oq", .help = "Observable queues", .order = 20,
//                                .setup = [](CLI::App& oq) {
//                                  auto* stats = oq.add_subcommand("stats", "…");
//                                  sluice::cli::bind_action(*stats, [] { return run_stats(); });
//                                }});
//
// No central switch knows the modules: the program builds its command tree from what was
// registered. Registration happens before main(); calling these functions later is an error.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "sluice/common/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace sluice::cli {

// What a command runs once its arguments parsed. A non-OK status is printed to stderr as
// "sluice <command>: <message>" and sets the exit code (2 for invalid arguments, 1 otherwise).
using Action = std::function<Status()>;

struct CommandSpec {
  std::string name;  // the word after `sluice`
  std::string help;  // one line for `sluice --help`
  int order = 100;   // position in `sluice --help`; lower comes first
  // Adds options, flags and nested subcommands to `cmd` (already created with name and help),
  // and binds an action to each runnable node with bind_action().
  std::function<void(CLI::App& cmd)> setup;
};

// Registers a top-level subcommand. Returns true so it can initialise a static.
bool register_command(CommandSpec spec);

// Runs `action` when `cmd` (or, for a node without children, exactly it) is the command chosen.
void bind_action(CLI::App& cmd, Action action);

// What a demo step gets: where to write, and whether the user asked for a quick run.
struct DemoContext {
  std::FILE* out = stdout;
  bool quick = false;  // `sluice demo --quick`: smallest sizes that still show the point

  // A path for a step's scratch file named `stem`.<pid>: in the working directory when it is
  // writable (a build tree on a disk that takes O_DIRECT), else the system's temporary
  // directory (often tmpfs, where direct I/O falls back to buffered reads). The step removes it.
  static std::string scratch_path(const std::string& stem);
};

struct DemoStep {
  std::string name;     // short id, e.g. "oqueue"
  std::string summary;  // one line: what the step shows
  int order = 100;      // steps run from low to high; modules lower in the stack go first
  std::function<Status(DemoContext&)> run;
};

// Registers a `sluice demo` step. Returns true so it can initialise a static.
bool register_demo_step(DemoStep step);

}  // namespace sluice::cli

#define SLUICE_REGISTER_COMMAND(id, ...)                       \
  [[maybe_unused]] static const bool sluice_cli_command_##id = \
      ::sluice::cli::register_command(__VA_ARGS__)

#define SLUICE_REGISTER_DEMO_STEP(id, ...)                  \
  [[maybe_unused]] static const bool sluice_cli_demo_##id = \
      ::sluice::cli::register_demo_step(__VA_ARGS__)
