// The knob registry: every tunable of every sluice module, declared once.
//
// A knob has a dotted name (`zicio.ring_buffers`: module, then knob), a type, a default, the
// values it may take, a stage and one line of help. Its value comes from, in rising precedence:
//
//   default  <  config file (YAML)  <  environment (SLUICE_ZICIO_RING_BUFFERS)  <  flags (--set
//   k=v)
//
// A value outside the knob's range is refused with the valid range in the message. Stages say
// when a value can change: `compile` knobs are fixed by the build (set them with the CMake option
// named in build_flag), `start` knobs are read once when a component starts and are refused after
// freeze_start_knobs(), `runtime` knobs may change at any time and are read with one atomic load.
//
// Declare a knob as a namespace-scope constant in the module's .cc file that uses it:
//
//   const sluice::IntKnob kRingBuffers({.name = "zicio.ring_buffers", .default_value = 16,
//                                       .min = 1, .max = 4096, .stage = sluice::KnobStage::kStart,
//                                       .help = "2 MiB buffers in a channel's ring"});
//   … kRingBuffers.get() …
//
// `sluice knobs` lists every registered knob; `sluice knobs --json` emits the list that
// wayfinder turns into a search space.
//
// Thread safety: declaring happens during static initialisation; get() is safe from any thread
// at any time; set() and the load_* functions are safe from any thread.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/common/status.h"

namespace sluice {

enum class KnobType { kBool, kInt, kFloat, kEnum, kString };
enum class KnobStage { kCompile, kStart, kRuntime };
// Where a knob's current value came from, lowest precedence first.
enum class KnobSource { kDefault, kFile, kEnvironment, kFlag };

std::string_view knob_type_name(KnobType type);        // "bool", "int", …
std::string_view knob_stage_name(KnobStage stage);     // "compile", "start", "runtime"
std::string_view knob_source_name(KnobSource source);  // "default", "file", "env", "flag"

// A snapshot of one knob, as `sluice knobs` shows it. Numbers are kept both typed and as text.
struct KnobInfo {
  std::string name;
  KnobType type = KnobType::kInt;
  KnobStage stage = KnobStage::kRuntime;
  std::string help;
  std::string default_value;  // as text, parseable by set()
  std::string value;          // current value, as text
  KnobSource source = KnobSource::kDefault;
  double min = 0;  // int and float knobs
  double max = 0;
  std::vector<std::string> values;  // enum knobs: the allowed values
  std::string build_flag;           // compile knobs: the CMake option that sets it
  std::string env_var;              // SLUICE_<NAME> with dots as underscores, upper case
};

namespace detail {
struct KnobEntry;
}  // namespace detail

class KnobRegistry {
 public:
  // The process-wide registry every declared knob joins.
  static KnobRegistry& global();

  // Sets `name` from text ("32", "true", "1.5", "o_direct") with the precedence of `source`:
  // a value from a lower-precedence source never overrides one from a higher one.
  // Errors: not found (unknown name, with the closest known name suggested), invalid argument
  // (unparseable or out of range, with the valid range), failed precondition (a compile knob,
  // or a start knob after freeze_start_knobs()).
  Status set(std::string_view name, std::string_view value, KnobSource source = KnobSource::kFlag);

  // Loads a YAML file of knob values, nested (`zicio: {ring_buffers: 32}`) or flat
  // (`zicio.ring_buffers: 32`). Stops at the first bad entry and names the file and the knob.
  Status load_yaml_file(const std::string& path);
  Status load_yaml_text(std::string_view text, std::string_view origin = "<config>");

  // Reads SLUICE_<KNOB> variables for every knob from `environment` (name → value; use
  // current_environment() for the process's own).
  Status load_environment(const std::map<std::string, std::string>& environment);
  static std::map<std::string, std::string> current_environment();

  // Applies "name=value" assignments from the command line.
  Status apply_assignments(const std::vector<std::string>& assignments);

  // After this, start-stage knobs refuse new values (components have read them).
  void freeze_start_knobs();

  // All knobs, sorted by name.
  std::vector<KnobInfo> list() const;
  Result<KnobInfo> info(std::string_view name) const;
  // The list as a JSON array of objects with the fields of KnobInfo.
  std::string to_json() const;

  // Back to defaults and unfrozen. For tests.
  void reset_for_testing();

  // Used by the typed handles below.
  detail::KnobEntry* declare(KnobInfo info);

  KnobRegistry(const KnobRegistry&) = delete;
  KnobRegistry& operator=(const KnobRegistry&) = delete;
  ~KnobRegistry();

 private:
  KnobRegistry();
  struct Impl;
  Impl* impl_;
};

struct BoolKnobSpec {
  std::string name;
  bool default_value = false;
  KnobStage stage = KnobStage::kRuntime;
  std::string help;
  std::string build_flag;  // compile stage only
};
struct IntKnobSpec {
  std::string name;
  int64_t default_value = 0;
  int64_t min = 0;
  int64_t max = 0;
  KnobStage stage = KnobStage::kRuntime;
  std::string help;
  std::string build_flag;
};
struct FloatKnobSpec {
  std::string name;
  double default_value = 0;
  double min = 0;
  double max = 0;
  KnobStage stage = KnobStage::kRuntime;
  std::string help;
  std::string build_flag;
};
struct EnumKnobSpec {
  std::string name;
  std::string default_value;
  std::vector<std::string> values;
  KnobStage stage = KnobStage::kRuntime;
  std::string help;
  std::string build_flag;
};
struct StringKnobSpec {
  std::string name;
  std::string default_value;
  KnobStage stage = KnobStage::kRuntime;
  std::string help;
  std::string build_flag;
};

// Typed handles; get() is one relaxed atomic load, inlined. Declaring one registers the knob in
// KnobRegistry::global(); a duplicate name or a default outside the range is a programmer error and
// aborts at start-up.
class BoolKnob {
 public:
  explicit BoolKnob(BoolKnobSpec spec);
  bool get() const { return bits_->load(std::memory_order_relaxed) != 0; }
  const std::string& name() const;

 private:
  detail::KnobEntry* entry_;
  const std::atomic<int64_t>* bits_;
};

class IntKnob {
 public:
  explicit IntKnob(IntKnobSpec spec);
  int64_t get() const { return bits_->load(std::memory_order_relaxed); }
  const std::string& name() const;

 private:
  detail::KnobEntry* entry_;
  const std::atomic<int64_t>* bits_;
};

class FloatKnob {
 public:
  explicit FloatKnob(FloatKnobSpec spec);
  double get() const { return std::bit_cast<double>(bits_->load(std::memory_order_relaxed)); }
  const std::string& name() const;

 private:
  detail::KnobEntry* entry_;
  const std::atomic<int64_t>* bits_;
};

class EnumKnob {
 public:
  explicit EnumKnob(EnumKnobSpec spec);
  // Index into spec.values; one relaxed load.
  size_t index() const { return static_cast<size_t>(bits_->load(std::memory_order_relaxed)); }
  const std::string& get() const;  // the value's name; stable storage
  const std::string& name() const;

 private:
  detail::KnobEntry* entry_;
  const std::atomic<int64_t>* bits_;
};

class StringKnob {
 public:
  explicit StringKnob(StringKnobSpec spec);
  std::string get() const;  // a copy: strings can change concurrently
  const std::string& name() const;

 private:
  detail::KnobEntry* entry_;
};

}  // namespace sluice
