// `sluice oq`: the observable-queue command, and the hook other files use to add nested
// subcommands to it (e.g. `sluice oq bench` from bench/oqueue/).
//
//   static const bool registered = sluice::oq::cli::register_oq_subcommand([](CLI::App& oq) {
//     auto* bench = oq.add_subcommand("bench", "…");
//     sluice::cli::bind_action(*bench, [] { return run_bench(); });
//   });
//
// Call it at static-initialisation time (as above); the `oq` command's setup calls every hook
// when the program builds its command tree. Not thread-safe: registration happens before main().
#pragma once

#include <functional>

namespace CLI {
class App;
}  // namespace CLI

namespace sluice::oq::cli {

// Adds `setup` to the hooks run on the `oq` CLI::App. Returns true so it can initialise a static.
bool register_oq_subcommand(std::function<void(CLI::App& oq)> setup);

}  // namespace sluice::oq::cli
