// oqueue_pingpong: the OQueue scenario driver.
//
//   oqueue_pingpong                       ping-pong: OQueue (spin, yield, block) vs the peers
//   oqueue_pingpong --scenarios strong,weak   observer scaling (the paper's Figure 2)
//   oqueue_pingpong --quick --json out.json   short run, results for tools/bench_report.py
//
// Every case runs interleaved with the others over --reps repetitions; tables give median, min,
// max and MAD, and ratios OQueue/peer as the median of per-repetition ratios.
#include <cstdio>

#include "oqueue/bench_main.h"
#include "sluice/common/knobs.h"

int main(int argc, char** argv) {
  CLI::App app{"OQueue RPC ping-pong and observer-scaling benchmarks"};
  sluice::oq::bench::BenchSettings settings;
  settings.scenarios = "pingpong,strong,weak";
  sluice::oq::bench::add_bench_options(app, settings);
  CLI11_PARSE(app, argc, argv);
  // Knobs such as SLUICE_OQUEUE_SPIN_BEFORE_SLEEP shape the waiting being measured.
  if (sluice::Status st = sluice::KnobRegistry::global().load_environment(
          sluice::KnobRegistry::current_environment());
      !st.is_ok()) {
    std::fprintf(stderr, "oqueue_pingpong: %s\n", st.to_string().c_str());
    return 2;
  }
  const std::string error = sluice::oq::bench::run_bench(settings, stdout, argv[0]);
  if (!error.empty()) {
    std::fprintf(stderr, "oqueue_pingpong: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
