#include "cli/registry.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

namespace sluice::cli {
namespace {

struct Chosen {
  int depth = -1;
  Action action;
};

Chosen& chosen() {
  static Chosen c;
  return c;
}

int depth_of(const CLI::App& app) {
  int depth = 0;
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent()) {
    ++depth;
  }
  return depth;
}

}  // namespace

std::vector<CommandSpec>& registered_commands() {
  static std::vector<CommandSpec> commands;
  return commands;
}

std::vector<DemoStep>& registered_demo_steps() {
  static std::vector<DemoStep> steps;
  return steps;
}

bool register_command(CommandSpec spec) {
  registered_commands().push_back(std::move(spec));
  return true;
}

std::string DemoContext::scratch_path(const std::string& stem) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::current_path(ec);
  if (ec || access(dir.c_str(), W_OK) != 0)
    dir = std::filesystem::temp_directory_path();
  return (dir / (stem + "." + std::to_string(getpid()))).string();
}

bool register_demo_step(DemoStep step) {
  registered_demo_steps().push_back(std::move(step));
  return true;
}

void bind_action(CLI::App& cmd, Action action) {
  CLI::App* app = &cmd;
  // CLI11 runs a subcommand's callback when it was given on the command line; the deepest one
  // given is what the user asked for.
  cmd.callback([app, action = std::move(action)] {
    const int depth = depth_of(*app);
    if (depth > chosen().depth) {
      chosen() = {depth, action};
    }
  });
}

const Action* chosen_action() {
  return chosen().depth < 0 ? nullptr : &chosen().action;
}

}  // namespace sluice::cli
