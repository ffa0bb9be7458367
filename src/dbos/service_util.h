// Internal helpers shared by the services.
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice::dbos {

// Wall-clock microseconds: the time stamps stored in the tables.
inline int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sluice::dbos
