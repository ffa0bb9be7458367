// The demo's first step: what sluice sees of this machine, and the knobs that steer it.
#include <fmt/format.h>

#include "sluice/cli/command.h"
#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"
#include "sluice/common/topology.h"

namespace sluice::cli {
namespace {

Status run_machine_step(DemoContext& ctx) {
  SLUICE_ASSIGN_OR_RETURN(CpuTopology topo, CpuTopology::detect());
  std::fprintf(ctx.out, "   cpus:  %s\n", topo.summary().c_str());
  const TscClock& clock = TscClock::global();
  if (clock.uses_tsc()) {
    std::fprintf(ctx.out,
                 "   clock: invariant TSC at %.3f GHz, calibrated against CLOCK_MONOTONIC\n",
                 clock.ticks_per_second() / 1e9);
  } else {
    std::fprintf(ctx.out, "   clock: no invariant TSC; timing with CLOCK_MONOTONIC\n");
  }
  const auto knobs = KnobRegistry::global().list();
  size_t changed = 0;
  for (const KnobInfo& k : knobs) {
    changed += k.source != KnobSource::kDefault ? 1 : 0;
  }
  std::fprintf(ctx.out,
               "   knobs: %zu declared, %zu set from config, environment or flags "
               "(`sluice knobs`)\n",
               knobs.size(), changed);
  return {};
}

SLUICE_REGISTER_DEMO_STEP(machine, {.name = "machine",
                                    .summary = "CPU topology, calibrated clock and knobs",
                                    .order = 0,
                                    .run = run_machine_step});

}  // namespace
}  // namespace sluice::cli
