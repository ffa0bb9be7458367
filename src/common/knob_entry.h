// Internal: how the knob registry stores one knob. Not part of the public API.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "sluice/common/knobs.h"

namespace sluice::detail {

// Invariants: `info` is written under the registry's mutex only; its name, type, stage, range
// and values never change after declaration. `bits` holds the current value of bool, int, float
// (bit pattern of the double) and enum (index) knobs and is read by get() without the mutex, so a
// hot path pays one relaxed load. String values live in info.value, under the mutex.
struct KnobEntry {
  KnobInfo info;
  std::atomic<int64_t> bits{0};
  int64_t default_bits = 0;
};

}  // namespace sluice::detail
