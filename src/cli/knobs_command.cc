// `sluice knobs`: every tunable of every module, as a table or as JSON for wayfinder.
#include <fmt/format.h>

#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/table.h"
#include "sluice/cli/command.h"
#include "sluice/common/knobs.h"

namespace sluice::cli {
namespace {

std::string range_of(const KnobInfo& k) {
  switch (k.type) {
    case KnobType::kBool: return "true|false";
    case KnobType::kInt:
      return fmt::format("{}..{}", static_cast<int64_t>(k.min), static_cast<int64_t>(k.max));
    case KnobType::kFloat: return fmt::format("{}..{}", k.min, k.max);
    case KnobType::kEnum: return fmt::format("{}", fmt::join(k.values, "|"));
    case KnobType::kString: return "text";
  }
  return "";
}

struct KnobsOptions {
  bool json = false;
  std::string prefix;
};

Status run_knobs(const KnobsOptions& opts) {
  const auto& registry = KnobRegistry::global();
  if (opts.json) {
    nlohmann::ordered_json all = nlohmann::ordered_json::parse(registry.to_json());
    nlohmann::ordered_json shown = nlohmann::ordered_json::array();
    for (auto& k : all) {
      if (k.value("name", "").starts_with(opts.prefix)) {
        shown.push_back(std::move(k));
      }
    }
    if (shown.empty()) {
      return not_found(fmt::format("no knob starts with '{}'", opts.prefix));
    }
    std::printf("%s\n", shown.dump(2).c_str());
    return {};
  }
  TextTable table({"knob", "value", "source", "type", "range", "stage", "help"});
  size_t shown = 0;
  for (const KnobInfo& k : registry.list()) {
    if (!k.name.starts_with(opts.prefix)) {
      continue;
    }
    ++shown;
    table.add({k.name, k.value, std::string(knob_source_name(k.source)),
               std::string(knob_type_name(k.type)), range_of(k),
               std::string(knob_stage_name(k.stage)), k.help});
  }
  if (shown == 0) {
    return not_found(fmt::format("no knob starts with '{}'", opts.prefix));
  }
  table.print(stdout);
  return {};
}

SLUICE_REGISTER_COMMAND(knobs, {.name = "knobs",
                                .help = "List every tunable: value, source, range, stage",
                                .order = 90,
                                .setup = [](CLI::App& cmd) {
                                  auto opts = std::make_shared<KnobsOptions>();
                                  cmd.add_flag("--json", opts->json,
                                               "JSON array, the input of wayfinder's search space");
                                  cmd.add_option("prefix", opts->prefix,
                                                 "only knobs whose name starts with this");
                                  bind_action(cmd, [opts] { return run_knobs(*opts); });
                                }});

}  // namespace
}  // namespace sluice::cli
