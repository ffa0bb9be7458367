// `sluice demo`: sluice's main job on the embedded default. Each module contributes steps with
// SLUICE_REGISTER_DEMO_STEP; the demo runs them bottom layer first and stops at the first failure.
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/registry.h"
#include "sluice/cli/command.h"
#include "sluice/common/clock.h"

namespace sluice::cli {
namespace {

struct DemoOptions {
  bool quick = false;
  bool list = false;
  std::vector<std::string> only;
};

Status run_demo(const DemoOptions& opts) {
  std::vector<DemoStep> steps = registered_demo_steps();
  std::stable_sort(steps.begin(), steps.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  if (opts.list) {
    for (const DemoStep& step : steps) {
      std::printf("%-12s %s\n", step.name.c_str(), step.summary.c_str());
    }
    return {};
  }
  for (const std::string& name : opts.only) {
    if (std::none_of(steps.begin(), steps.end(), [&](const auto& s) { return s.name == name; })) {
      return invalid_argument(fmt::format("no demo step '{}' (see `sluice demo --list`)", name));
    }
  }
  if (!opts.only.empty()) {
    std::erase_if(steps, [&](const DemoStep& s) {
      return std::find(opts.only.begin(), opts.only.end(), s.name) == opts.only.end();
    });
  }
  DemoContext ctx;
  ctx.quick = opts.quick;
  const int64_t start = monotonic_ns();
  for (size_t i = 0; i < steps.size(); ++i) {
    const DemoStep& step = steps[i];
    std::printf("\n== [%zu/%zu] %s: %s\n", i + 1, steps.size(), step.name.c_str(),
                step.summary.c_str());
    std::fflush(stdout);
    const int64_t t0 = monotonic_ns();
    SLUICE_RETURN_IF_ERROR(step.run(ctx).with_context("demo step '" + step.name + "'"));
    std::printf("   (%.2f s)\n", static_cast<double>(monotonic_ns() - t0) / 1e9);
  }
  std::printf("\nsluice demo: %zu steps passed in %.2f s\n", steps.size(),
              static_cast<double>(monotonic_ns() - start) / 1e9);
  return {};
}

SLUICE_REGISTER_COMMAND(
    demo, {.name = "demo",
           .help = "Run sluice's main job on the embedded default, step by step",
           .order = 1,
           .setup = [](CLI::App& cmd) {
             auto opts = std::make_shared<DemoOptions>();
             cmd.add_flag("--quick", opts->quick, "smallest sizes that show the point");
             cmd.add_flag("--list", opts->list, "list the steps and exit");
             cmd.add_option("--only", opts->only, "run only these steps")->type_name("STEP");
             bind_action(cmd, [opts] { return run_demo(*opts); });
           }});

}  // namespace
}  // namespace sluice::cli
