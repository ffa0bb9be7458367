// Bounds for numeric command-line options, with messages that name the bounds plainly:
//
//   cmd->add_option("--reps", reps, "repetitions")->check(sluice::cli::at_least(1));
//   -> "--reps: must be at least 1 (got 0)"
//
// CLI11's own PositiveNumber and NonNegativeNumber print the largest double as their upper
// bound, and its Range lets NaN through. Overflow and NaN are refused for every option by the
// program itself (src/cli/main.cc); these add the bounds an option's meaning sets.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>

namespace sluice::cli {
namespace detail {

// 1073741824, not 1.07374e+09: bounds are read by people.
inline std::string number_text(double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 1e15) {
    return fmt::format("{}", static_cast<long long>(v));
  }
  return fmt::format("{:g}", v);
}

inline CLI::Validator bounds(double min, double max, std::string description) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0') {
          return {};  // not a number: the option's conversion says so
        }
        if (std::isnan(v) || v < min || v > max) {
          return std::isinf(max)
                     ? fmt::format("must be at least {} (got {})", number_text(min), text)
                     : fmt::format("must be from {} to {} (got {})", number_text(min),
                                   number_text(max), text);
        }
        return {};
      },
      std::move(description));
}

}  // namespace detail

// A number no smaller than `min`.
inline CLI::Validator at_least(double min) {
  return detail::bounds(min, HUGE_VAL, ">= " + detail::number_text(min));
}

// A number from `min` to `max`, both included.
inline CLI::Validator in_range(double min, double max) {
  return detail::bounds(min, max, detail::number_text(min) + ".." + detail::number_text(max));
}

}  // namespace sluice::cli
