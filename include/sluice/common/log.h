// Logging through spdlog, to stderr. The level is the runtime knob `log.level` (so it follows the
// knob precedence: config file, SLUICE_LOG_LEVEL, `--log-level` / `--set log.level=debug`).
//
//   SLUICE_LOG(info, "channel {} opened on {} files", id, n);
//
// Thread safety: logging is safe from any thread; apply_log_level() may run concurrently.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "sluice/common/status.h"

namespace sluice {

// The levels `log.level` accepts, lowest first.
inline constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};

// Sets spdlog's level from the `log.level` knob's current value.
void apply_log_level();

}  // namespace sluice

#define SLUICE_LOG(level, ...) ::spdlog::level(__VA_ARGS__)
