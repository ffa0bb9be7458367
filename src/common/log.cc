#include "sluice/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "sluice/common/knobs.h"

namespace sluice {
namespace {

const EnumKnob kLogLevel({.name = "log.level",
                          .default_value = "warn",
                          .values = {std::begin(kLogLevels), std::end(kLogLevels)},
                          .stage = KnobStage::kRuntime,
                          .help = "least severe log message written to stderr"});

}  // namespace

void apply_log_level() {
  static const bool stderr_logger = [] {
    auto logger = spdlog::stderr_color_mt("sluice");
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    spdlog::set_default_logger(logger);
    return true;
  }();
  (void)stderr_logger;
  spdlog::set_level(spdlog::level::from_str(kLogLevel.get()));
}

}  // namespace sluice
