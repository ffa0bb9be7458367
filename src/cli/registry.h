// Internal to the `sluice` program: what modules registered through sluice/cli/command.h.
#pragma once

#include <vector>

#include "sluice/cli/command.h"

namespace sluice::cli {

// In registration order; the program sorts them.
std::vector<CommandSpec>& registered_commands();
std::vector<DemoStep>& registered_demo_steps();

// The action bound to the most deeply nested command the user chose, or null when none.
const Action* chosen_action();

}  // namespace sluice::cli
