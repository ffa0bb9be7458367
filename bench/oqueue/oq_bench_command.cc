// `sluice oq bench`: the RPC ping-pong of bench/oqueue/ (OQueue with each wait policy against
// the peer queues, interleaved, with ratios) at quick defaults. The same options as the
// `oqueue_pingpong` driver; `--scenarios strong,weak` adds the observer-scaling runs.
#include <cstdio>
#include <memory>

#include <CLI/CLI.hpp>

#include "oqueue/bench_main.h"
#include "oqueue/cli/oq_command.h"
#include "sluice/cli/command.h"
#include "sluice/common/status.h"

namespace {

[[maybe_unused]] const bool registered = sluice::oq::cli::register_oq_subcommand([](CLI::App& oq) {
  auto settings = std::make_shared<sluice::oq::bench::BenchSettings>();
  // Quick defaults: about 10 s for the ping-pong on two CPUs.
  settings->scenarios = "pingpong";
  settings->repetitions = 5;
  settings->target_ms = 20;
  settings->weak_target_ms = 100;
  settings->progress = false;
  CLI::App* bench = oq.add_subcommand(
      "bench", "RPC ping-pong: OQueue (spin, yield, block) vs lock-free peer queues, with ratios");
  sluice::oq::bench::add_bench_options(*bench, *settings);
  sluice::cli::bind_action(*bench, [settings]() -> sluice::Status {
    const std::string error = sluice::oq::bench::run_bench(*settings, stdout, "sluice oq bench");
    if (!error.empty())
      return sluice::invalid_argument(error);
    return {};
  });
});

}  // namespace
