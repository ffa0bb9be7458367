#include "sluice/common/knobs.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/knob_entry.h"
#include "common/strings.h"

extern char** environ;

namespace sluice {

using detail::KnobEntry;

std::string_view knob_type_name(KnobType type) {
  switch (type) {
    case KnobType::kBool: return "bool";
    case KnobType::kInt: return "int";
    case KnobType::kFloat: return "float";
    case KnobType::kEnum: return "enum";
    case KnobType::kString: return "string";
  }
  return "?";
}

std::string_view knob_stage_name(KnobStage stage) {
  switch (stage) {
    case KnobStage::kCompile: return "compile";
    case KnobStage::kStart: return "start";
    case KnobStage::kRuntime: return "runtime";
  }
  return "?";
}

std::string_view knob_source_name(KnobSource source) {
  switch (source) {
    case KnobSource::kDefault: return "default";
    case KnobSource::kFile: return "file";
    case KnobSource::kEnvironment: return "env";
    case KnobSource::kFlag: return "flag";
  }
  return "?";
}

namespace {

std::string env_var_for(std::string_view name) {
  std::string out = "SLUICE_";
  for (char c : name) {
    out += (c == '.' || c == '-') ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string format_double(double v) {
  // Shortest text that reads back to the same double.
  return fmt::format("{}", v);
}

std::string range_text(const KnobInfo& info) {
  switch (info.type) {
    case KnobType::kBool: return "true or false";
    case KnobType::kInt:
      return fmt::format("an integer in [{}, {}]", static_cast<int64_t>(info.min),
                         static_cast<int64_t>(info.max));
    case KnobType::kFloat:
      return fmt::format("a number in [{}, {}]", format_double(info.min), format_double(info.max));
    case KnobType::kEnum: return fmt::format("one of {}", fmt::join(info.values, ", "));
    case KnobType::kString: return "any text";
  }
  return "";
}

Result<bool> parse_bool(std::string_view text) {
  const std::string t = to_lower(trim(text));
  if (t == "true" || t == "1" || t == "yes" || t == "on") {
    return true;
  }
  if (t == "false" || t == "0" || t == "no" || t == "off") {
    return false;
  }
  return invalid_argument("not a boolean");
}

// Integers accept a binary size suffix (k, m, g, t: ×1024ⁿ), so sizes read naturally: 64M.
Result<int64_t> parse_int(std::string_view text) {
  std::string_view t = trim(text);
  int shift = 0;
  if (!t.empty()) {
    switch (std::tolower(static_cast<unsigned char>(t.back()))) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: break;
    }
    if (shift != 0) {
      t.remove_suffix(1);
    }
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size()) {
    return invalid_argument("not an integer");
  }
  if (shift != 0) {
    const int64_t limit = INT64_MAX >> shift;
    if (v > limit || v < -limit) {
      return invalid_argument("integer overflow");
    }
    v *= int64_t{1} << shift;
  }
  return v;
}

Result<double> parse_float(std::string_view text) {
  const std::string t(trim(text));
  if (t.empty()) {
    return invalid_argument("not a number");
  }
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || !std::isfinite(v)) {
    return invalid_argument("not a finite number");
  }
  return v;
}

// Levenshtein distance, for "did you mean" on unknown knob names.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0U : 1U)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

struct KnobRegistry::Impl {
  mutable std::mutex mutex;
  std::map<std::string, std::unique_ptr<KnobEntry>, std::less<>> knobs;  // guarded by mutex
  bool start_frozen = false;                                             // guarded by mutex

  KnobEntry* find(std::string_view name) const {
    auto it = knobs.find(name);
    return it == knobs.end() ? nullptr : it->second.get();
  }

  Status unknown(std::string_view name) const {
    std::string best;
    size_t best_d = SIZE_MAX;
    for (const auto& [known, entry] : knobs) {
      const size_t d = edit_distance(name, known);
      if (d < best_d) {
        best_d = d;
        best = known;
      }
    }
    std::string msg = fmt::format("unknown knob '{}'", name);
    if (!best.empty() && best_d <= std::max<size_t>(3, name.size() / 3)) {
      msg += fmt::format("; did you mean '{}'?", best);
    }
    msg += " (`sluice knobs` lists every knob)";
    return not_found(std::move(msg));
  }
};

namespace {

// Parses `text` for `e` into bits (and canonical text). REQUIRES: the registry mutex is held.
Status parse_value(const KnobEntry& e, std::string_view text, int64_t* bits, std::string* canon) {
  const KnobInfo& info = e.info;
  auto bad = [&](std::string_view why) {
    return invalid_argument(
        fmt::format("knob '{}': '{}' is {}; valid: {}", info.name, text, why, range_text(info)));
  };
  switch (info.type) {
    case KnobType::kBool: {
      auto v = parse_bool(text);
      if (!v) {
        return bad("not a boolean");
      }
      *bits = *v ? 1 : 0;
      *canon = *v ? "true" : "false";
      return {};
    }
    case KnobType::kInt: {
      auto v = parse_int(text);
      if (!v) {
        return bad(v.status().message());
      }
      if (static_cast<double>(*v) < info.min || static_cast<double>(*v) > info.max) {
        return bad("out of range");
      }
      *bits = *v;
      *canon = std::to_string(*v);
      return {};
    }
    case KnobType::kFloat: {
      auto v = parse_float(text);
      if (!v) {
        return bad(v.status().message());
      }
      if (*v < info.min || *v > info.max) {
        return bad("out of range");
      }
      *bits = std::bit_cast<int64_t>(*v);
      *canon = format_double(*v);
      return {};
    }
    case KnobType::kEnum: {
      const std::string want = to_lower(trim(text));
      for (size_t i = 0; i < info.values.size(); ++i) {
        if (to_lower(info.values[i]) == want) {
          *bits = static_cast<int64_t>(i);
          *canon = info.values[i];
          return {};
        }
      }
      return bad("not an allowed value");
    }
    case KnobType::kString:
      *bits = 0;
      *canon = std::string(text);
      return {};
  }
  return internal_error("unknown knob type");
}

}  // namespace

KnobRegistry::KnobRegistry() : impl_(new Impl) {}
KnobRegistry::~KnobRegistry() {
  delete impl_;
}

KnobRegistry& KnobRegistry::global() {
  // Never destroyed: knobs are read from static destructors and detached threads.
  static KnobRegistry* registry = new KnobRegistry();
  return *registry;
}

KnobEntry* KnobRegistry::declare(KnobInfo info) {
  std::lock_guard lock(impl_->mutex);
  SLUICE_ASSERT(!info.name.empty() && info.name.find('.') != std::string::npos,
                "a knob name is <module>.<knob>");
  SLUICE_ASSERT(impl_->find(info.name) == nullptr, "a knob is declared once");
  auto entry = std::make_unique<KnobEntry>();
  info.env_var = env_var_for(info.name);
  info.source = KnobSource::kDefault;
  entry->info = std::move(info);
  int64_t bits = 0;
  std::string canon;
  const Status s = parse_value(*entry, entry->info.default_value, &bits, &canon);
  if (!s.is_ok()) {
    detail::assert_failed("default in range", s.message().c_str(), __FILE__, __LINE__);
  }
  entry->info.default_value = canon;
  entry->info.value = canon;
  entry->default_bits = bits;
  entry->bits.store(bits, std::memory_order_relaxed);
  KnobEntry* raw = entry.get();
  impl_->knobs.emplace(raw->info.name, std::move(entry));
  return raw;
}

Status KnobRegistry::set(std::string_view name, std::string_view value, KnobSource source) {
  std::lock_guard lock(impl_->mutex);
  KnobEntry* e = impl_->find(name);
  if (e == nullptr) {
    return impl_->unknown(name);
  }
  int64_t bits = 0;
  std::string canon;
  SLUICE_RETURN_IF_ERROR(parse_value(*e, value, &bits, &canon));
  if (e->info.stage == KnobStage::kCompile && canon != e->info.value) {
    std::string msg =
        fmt::format("knob '{}' is fixed when sluice is built (now {})", name, e->info.value);
    if (!e->info.build_flag.empty()) {
      msg += fmt::format("; rebuild with -D{}={}", e->info.build_flag, canon);
    }
    return failed_precondition(std::move(msg));
  }
  if (e->info.stage == KnobStage::kStart && impl_->start_frozen && canon != e->info.value) {
    return failed_precondition(fmt::format(
        "knob '{}' is read once at start-up and the components have started; set it in the "
        "config file, the environment ({}) or with --set before starting",
        name, e->info.env_var));
  }
  if (source < e->info.source) {
    return {};  // a higher-precedence source already chose the value
  }
  e->info.value = canon;
  e->info.source = source;
  e->bits.store(bits, std::memory_order_relaxed);
  return {};
}

namespace {

// The knobs of one YAML map, each key prefixed with the names of the maps around it.
Status load_yaml_map(KnobRegistry& knobs, const YAML::Node& map, const std::string& prefix,
                     std::string_view origin) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string key = prefix + it->first.as<std::string>();
    const YAML::Node node = it->second;  // a copy of the handle: `second` is a temporary
    if (node.IsMap()) {
      SLUICE_RETURN_IF_ERROR(load_yaml_map(knobs, node, key + ".", origin));
      continue;
    }
    if (!node.IsScalar()) {
      return invalid_argument(
          fmt::format("{}: knob '{}' needs a single value, not a list or null", origin, key));
    }
    SLUICE_RETURN_IF_ERROR(knobs.set(key, node.Scalar(), KnobSource::kFile).with_context(origin));
  }
  return {};
}

}  // namespace

Status KnobRegistry::load_yaml_text(std::string_view text, std::string_view origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& ex) {
    return invalid_argument(fmt::format("{}: not valid YAML: {}", origin, ex.what()));
  }
  if (root.IsNull()) {
    return {};  // an empty file sets nothing
  }
  if (!root.IsMap()) {
    return invalid_argument(fmt::format(
        "{}: expected a map of knob names to values (e.g. 'zicio.ring_buffers: 32')", origin));
  }
  // Depth-first over nested maps, in the file's order; `zicio: {ring_buffers: 32}` and
  // `zicio.ring_buffers: 32` agree. A recursion, not a stack of nodes: assigning a YAML::Node
  // (as std::reverse or a move into a container slot does) rebinds the node it refers to and so
  // rewrites the parsed tree.
  try {
    return load_yaml_map(*this, root, "", origin);
  } catch (const YAML::Exception& ex) {  // a key that is a list or a map
    return invalid_argument(fmt::format("{}: a knob name must be a string: {}", origin, ex.what()));
  }
}

Status KnobRegistry::load_yaml_file(const std::string& path) {
  std::string text;
  SLUICE_RETURN_IF_ERROR(read_file(path, &text).with_context("cannot read config file"));
  return load_yaml_text(text, path);
}

std::map<std::string, std::string> KnobRegistry::current_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.starts_with("SLUICE_")) {
      env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  return env;
}

Status KnobRegistry::load_environment(const std::map<std::string, std::string>& environment) {
  std::vector<std::pair<std::string, std::string>> found;
  {
    std::lock_guard lock(impl_->mutex);
    for (const auto& [name, entry] : impl_->knobs) {
      auto it = environment.find(entry->info.env_var);
      if (it != environment.end()) {
        found.emplace_back(name, it->second);
      }
    }
  }
  for (const auto& [name, value] : found) {
    SLUICE_RETURN_IF_ERROR(set(name, value, KnobSource::kEnvironment)
                               .with_context(fmt::format("environment {}", env_var_for(name))));
  }
  return {};
}

Status KnobRegistry::apply_assignments(const std::vector<std::string>& assignments) {
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalid_argument(
          fmt::format("--set '{}': expected <knob>=<value>, e.g. --set zicio.ring_buffers=32", a));
    }
    SLUICE_RETURN_IF_ERROR(set(trim(std::string_view(a).substr(0, eq)),
                               std::string_view(a).substr(eq + 1), KnobSource::kFlag));
  }
  return {};
}

void KnobRegistry::freeze_start_knobs() {
  std::lock_guard lock(impl_->mutex);
  impl_->start_frozen = true;
}

std::vector<KnobInfo> KnobRegistry::list() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<KnobInfo> out;
  out.reserve(impl_->knobs.size());
  for (const auto& [name, entry] : impl_->knobs) {
    out.push_back(entry->info);
  }
  return out;
}

Result<KnobInfo> KnobRegistry::info(std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  const KnobEntry* e = impl_->find(name);
  if (e == nullptr) {
    return impl_->unknown(name);
  }
  return e->info;
}

std::string KnobRegistry::to_json() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const KnobInfo& k : list()) {
    nlohmann::ordered_json j;
    j["name"] = k.name;
    j["type"] = knob_type_name(k.type);
    j["stage"] = knob_stage_name(k.stage);
    auto typed = [&](const std::string& text) -> nlohmann::ordered_json {
      switch (k.type) {
        case KnobType::kBool: return text == "true";
        case KnobType::kInt: return std::stoll(text);
        case KnobType::kFloat: return std::stod(text);
        default: return text;
      }
    };
    j["default"] = typed(k.default_value);
    j["value"] = typed(k.value);
    j["source"] = knob_source_name(k.source);
    if (k.type == KnobType::kInt) {
      j["min"] = static_cast<int64_t>(k.min);
      j["max"] = static_cast<int64_t>(k.max);
    } else if (k.type == KnobType::kFloat) {
      j["min"] = k.min;
      j["max"] = k.max;
    } else if (k.type == KnobType::kEnum) {
      j["values"] = k.values;
    }
    j["env"] = k.env_var;
    if (!k.build_flag.empty()) {
      j["build_flag"] = k.build_flag;
    }
    j["help"] = k.help;
    out.push_back(std::move(j));
  }
  return out.dump(2);
}

void KnobRegistry::reset_for_testing() {
  std::lock_guard lock(impl_->mutex);
  impl_->start_frozen = false;
  for (auto& [name, e] : impl_->knobs) {
    e->info.value = e->info.default_value;
    e->info.source = KnobSource::kDefault;
    e->bits.store(e->default_bits, std::memory_order_relaxed);
  }
}

// ---- typed handles ----

namespace {
KnobInfo base_info(std::string name, KnobType type, KnobStage stage, std::string help,
                   std::string build_flag) {
  KnobInfo info;
  info.name = std::move(name);
  info.type = type;
  info.stage = stage;
  info.help = std::move(help);
  info.build_flag = std::move(build_flag);
  return info;
}
}  // namespace

BoolKnob::BoolKnob(BoolKnobSpec s) {
  KnobInfo info = base_info(std::move(s.name), KnobType::kBool, s.stage, std::move(s.help),
                            std::move(s.build_flag));
  info.default_value = s.default_value ? "true" : "false";
  entry_ = KnobRegistry::global().declare(std::move(info));
  bits_ = &entry_->bits;
}
const std::string& BoolKnob::name() const {
  return entry_->info.name;
}

IntKnob::IntKnob(IntKnobSpec s) {
  KnobInfo info = base_info(std::move(s.name), KnobType::kInt, s.stage, std::move(s.help),
                            std::move(s.build_flag));
  SLUICE_ASSERT(s.min <= s.max, "an int knob needs min <= max");
  info.default_value = std::to_string(s.default_value);
  info.min = static_cast<double>(s.min);
  info.max = static_cast<double>(s.max);
  entry_ = KnobRegistry::global().declare(std::move(info));
  bits_ = &entry_->bits;
}
const std::string& IntKnob::name() const {
  return entry_->info.name;
}

FloatKnob::FloatKnob(FloatKnobSpec s) {
  KnobInfo info = base_info(std::move(s.name), KnobType::kFloat, s.stage, std::move(s.help),
                            std::move(s.build_flag));
  SLUICE_ASSERT(s.min <= s.max, "a float knob needs min <= max");
  info.default_value = format_double(s.default_value);
  info.min = s.min;
  info.max = s.max;
  entry_ = KnobRegistry::global().declare(std::move(info));
  bits_ = &entry_->bits;
}
const std::string& FloatKnob::name() const {
  return entry_->info.name;
}

EnumKnob::EnumKnob(EnumKnobSpec s) {
  KnobInfo info = base_info(std::move(s.name), KnobType::kEnum, s.stage, std::move(s.help),
                            std::move(s.build_flag));
  SLUICE_ASSERT(!s.values.empty(), "an enum knob needs values");
  info.default_value = std::move(s.default_value);
  info.values = std::move(s.values);
  entry_ = KnobRegistry::global().declare(std::move(info));
  bits_ = &entry_->bits;
}
const std::string& EnumKnob::get() const {
  return entry_->info.values[index()];
}
const std::string& EnumKnob::name() const {
  return entry_->info.name;
}

StringKnob::StringKnob(StringKnobSpec s) {
  KnobInfo info = base_info(std::move(s.name), KnobType::kString, s.stage, std::move(s.help),
                            std::move(s.build_flag));
  info.default_value = std::move(s.default_value);
  entry_ = KnobRegistry::global().declare(std::move(info));
}
std::string StringKnob::get() const {
  // The registry's mutex guards string values; take it through a cheap public path.
  auto info = KnobRegistry::global().info(entry_->info.name);
  return info ? info->value : std::string();
}
const std::string& StringKnob::name() const {
  return entry_->info.name;
}

}  // namespace sluice
