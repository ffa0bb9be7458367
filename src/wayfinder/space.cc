// Space: sampling, grids and encodings of a job's parameters.
#include "sluice/wayfinder/space.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "sluice/common/status.h"

namespace sluice::wf {
namespace {

// FNV-1a: stable across runs and builds (the build cache and resume depend on it).
uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  return h;
}

std::string number_text(const Parameter& p, double v) {
  if (p.type == ParamType::kInt) {
    return fmt::format("{}", static_cast<int64_t>(std::llround(v)));
  }
  return fmt::format("{:.6g}", v);
}

double to_unit(const Parameter& p, double v) {
  if (p.max <= p.min)
    return 0;
  if (p.log_scale)
    return (std::log(v) - std::log(p.min)) / (std::log(p.max) - std::log(p.min));
  return (v - p.min) / (p.max - p.min);
}

double from_unit(const Parameter& p, double u) {
  if (p.log_scale)
    return std::exp(std::log(p.min) + u * (std::log(p.max) - std::log(p.min)));
  return p.min + u * (p.max - p.min);
}

bool varies(const Parameter& p) {
  if (p.fixed)
    return false;
  switch (p.type) {
    case ParamType::kBool: return true;
    case ParamType::kInt:
    case ParamType::kFloat: return p.max > p.min;
    case ParamType::kEnum:
    case ParamType::kString: return p.values.size() > 1;
  }
  return false;
}

}  // namespace

std::string configuration_key(const Configuration& c) {
  std::string s;
  for (const auto& [k, v] : c) {
    if (!s.empty())
      s += ',';
    s += k;
    s += '=';
    s += v;
  }
  return s;
}

uint64_t configuration_hash(const Configuration& c) {
  return fnv1a(configuration_key(c));
}

std::string compile_hash(const Job& job, const Configuration& c) {
  Configuration compile;
  for (const Parameter& p : job.parameters) {
    if (p.stage == Stage::kCompile) {
      auto it = c.find(p.name);
      compile[p.name] = it == c.end() ? p.default_value : it->second;
    }
  }
  // The build command is part of the key: a changed recipe must not reuse old builds.
  return fmt::format("{:016x}", fnv1a(configuration_key(compile) + "\n" + job.commands.build));
}

Space::Space(const Job& job) : params_(job.parameters) {}

Configuration Space::default_configuration() const {
  Configuration c;
  for (const Parameter& p : params_)
    c[p.name] = p.fixed ? *p.fixed : p.default_value;
  return c;
}

Configuration Space::sample(std::mt19937_64& rng) const {
  Configuration c;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (const Parameter& p : params_) {
    if (p.fixed) {
      c[p.name] = *p.fixed;
      continue;
    }
    switch (p.type) {
      case ParamType::kBool: c[p.name] = unit(rng) < 0.5 ? "false" : "true"; break;
      case ParamType::kInt: {
        // Uniform over the integers (or log-uniform), bounds included.
        double v;
        if (p.log_scale) {
          v = std::floor(from_unit(p, unit(rng)) + 0.5);
        } else {
          std::uniform_int_distribution<int64_t> d(static_cast<int64_t>(p.min),
                                                   static_cast<int64_t>(p.max));
          v = static_cast<double>(d(rng));
        }
        c[p.name] = number_text(p, std::clamp(v, p.min, p.max));
        break;
      }
      case ParamType::kFloat: c[p.name] = number_text(p, from_unit(p, unit(rng))); break;
      case ParamType::kEnum:
      case ParamType::kString: {
        std::uniform_int_distribution<size_t> d(0, p.values.size() - 1);
        c[p.name] = p.values[d(rng)];
        break;
      }
    }
  }
  return c;
}

std::vector<std::string> Space::grid_values(size_t i) const {
  const Parameter& p = params_[i];
  std::vector<std::string> out;
  const auto add = [&](const std::string& v) {
    if (std::find(out.begin(), out.end(), v) == out.end())
      out.push_back(v);
  };
  if (p.fixed)
    return {*p.fixed};
  switch (p.type) {
    case ParamType::kBool:
      add(p.default_value);
      add("false");
      add("true");
      break;
    case ParamType::kInt:
    case ParamType::kFloat: {
      const int n = std::max(1, p.grid_points);
      std::vector<std::string> pts;
      for (int k = 0; k < n; ++k) {
        const double u = n == 1 ? 0.5 : static_cast<double>(k) / (n - 1);
        pts.push_back(number_text(p, std::clamp(from_unit(p, u), p.min, p.max)));
      }
      if (std::find(pts.begin(), pts.end(), p.default_value) != pts.end())
        add(p.default_value);
      for (const auto& v : pts)
        add(v);
      break;
    }
    case ParamType::kEnum:
    case ParamType::kString:
      if (std::find(p.values.begin(), p.values.end(), p.default_value) != p.values.end()) {
        add(p.default_value);
      }
      for (const auto& v : p.values)
        add(v);
      break;
  }
  return out;
}

std::optional<uint64_t> Space::grid_size() const {
  uint64_t n = 1;
  for (size_t i = 0; i < params_.size(); ++i) {
    const uint64_t k = grid_values(i).size();
    if (n > (uint64_t{1} << 63) / k)
      return std::nullopt;
    n *= k;
  }
  return n;
}

Configuration Space::grid_point(uint64_t index) const {
  Configuration c;
  for (size_t i = params_.size(); i-- > 0;) {
    const auto vals = grid_values(i);
    c[params_[i].name] = vals[index % vals.size()];
    index /= vals.size();
  }
  return c;
}

bool Space::can_vary(size_t i) const {
  return varies(params_.at(i));
}

namespace {
// Moves one parameter's value as Space::neighbour describes.
void move_value(const Parameter& p, std::string& value, std::mt19937_64& rng) {
  switch (p.type) {
    case ParamType::kBool: value = value == "true" ? "false" : "true"; break;
    case ParamType::kEnum:
    case ParamType::kString: {
      // Uniform over the other values (over all, should the current one not be listed).
      const auto cur = std::find(p.values.begin(), p.values.end(), value);
      const size_t others = p.values.size() - (cur == p.values.end() ? 1 : 2);
      size_t pick = std::uniform_int_distribution<size_t>(0, others)(rng);
      if (cur != p.values.end() && pick >= static_cast<size_t>(cur - p.values.begin()))
        ++pick;
      value = p.values[pick];
      break;
    }
    case ParamType::kInt:
    case ParamType::kFloat: {
      constexpr double kSteps[] = {0.02, 0.1, 0.3};
      const double step = kSteps[std::uniform_int_distribution<size_t>(0, 2)(rng)];
      const double v = std::clamp(std::strtod(value.c_str(), nullptr), p.min, p.max);
      const double u = to_unit(p, v);
      const double moved = std::clamp(u + std::normal_distribution<double>(0, step)(rng), 0.0, 1.0);
      std::string text = number_text(p, std::clamp(from_unit(p, moved), p.min, p.max));
      if (text == value && p.type == ParamType::kInt) {
        // A step too small for an integer still moves it by one, inward at a bound.
        const bool up = v + 1 <= p.max && (v - 1 < p.min || moved >= u);
        text = number_text(p, up ? v + 1 : v - 1);
      }
      value = std::move(text);
      break;
    }
  }
}
}  // namespace

Configuration Space::neighbour(Configuration c, std::mt19937_64& rng, size_t max_changes) const {
  return neighbour(std::move(c), rng, max_changes, {});
}

Configuration Space::neighbour(Configuration c, std::mt19937_64& rng, size_t max_changes,
                               std::span<const double> weights) const {
  std::vector<size_t> free;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (varies(params_[i]))
      free.push_back(i);
  }
  if (free.empty() || max_changes == 0)
    return c;
  const size_t count =
      std::min(free.size(), std::uniform_int_distribution<size_t>(1, max_changes)(rng));
  const auto weight = [&](size_t i) {
    return i < weights.size() ? std::max(weights[i], 0.0) : 0.0;
  };
  for (size_t k = 0; k < count; ++k) {
    // Without replacement: free[0, k) are chosen; draw among the rest.
    double total = 0;
    for (size_t j = k; j < free.size(); ++j)
      total += weight(free[j]);
    size_t pick = 0;
    if (total > 0) {
      double u = std::uniform_real_distribution<double>(0, total)(rng);
      pick = free.size() - 1;
      for (size_t j = k; j < free.size(); ++j) {
        u -= weight(free[j]);
        if (u < 0) {
          pick = j;
          break;
        }
      }
    } else {
      pick = std::uniform_int_distribution<size_t>(k, free.size() - 1)(rng);
    }
    std::swap(free[k], free[pick]);
    const Parameter& p = params_[free[k]];
    move_value(p, c[p.name], rng);
  }
  return c;
}

Configuration Space::recombine(std::span<const Configuration* const> parents,
                               std::mt19937_64& rng) const {
  SLUICE_ASSERT(!parents.empty(), "Space::recombine needs at least one parent");
  Configuration c;
  std::uniform_int_distribution<size_t> pick(0, parents.size() - 1);
  for (const Parameter& p : params_) {
    if (p.fixed) {
      c[p.name] = *p.fixed;
      continue;
    }
    const Configuration& parent = *parents[pick(rng)];
    auto it = parent.find(p.name);
    c[p.name] = it == parent.end() ? p.default_value : it->second;
  }
  return c;
}

namespace {
const std::string& value_of(const Configuration& c, const Parameter& p) {
  auto it = c.find(p.name);
  return it == c.end() ? p.default_value : it->second;
}
double unit_value(const Parameter& p, const std::string& text) {
  return to_unit(p, std::clamp(std::strtod(text.c_str(), nullptr), p.min, p.max));
}
}  // namespace

std::vector<double> Space::unit_spreads(std::span<const Configuration* const> parents) const {
  std::vector<double> out(params_.size(), 0);
  if (parents.empty())
    return out;
  const auto n = static_cast<double>(parents.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    if (p.type != ParamType::kInt && p.type != ParamType::kFloat)
      continue;
    double sum = 0, sum_sq = 0;
    for (const Configuration* parent : parents) {
      const double u = unit_value(p, value_of(*parent, p));
      sum += u;
      sum_sq += u * u;
    }
    const double mean = sum / n;
    out[i] = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
  }
  return out;
}

Configuration Space::sample_around(std::span<const Configuration* const> parents,
                                   std::span<const double> spreads, std::mt19937_64& rng,
                                   double prior_weight) const {
  SLUICE_ASSERT(!parents.empty(), "Space::sample_around needs at least one parent");
  SLUICE_ASSERT(spreads.size() == params_.size(), "Space::sample_around needs unit_spreads()");
  constexpr double kMinWidth = 0.02;
  constexpr double kMaxWidth = 0.3;
  Configuration c = sample(rng);  // the prior's draw, kept where the coin says so
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<size_t> pick(0, parents.size() - 1);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    if (!varies(p) || unit(rng) < prior_weight)
      continue;
    std::string value = value_of(*parents[pick(rng)], p);
    if (p.type == ParamType::kInt || p.type == ParamType::kFloat) {
      const double width = std::clamp(spreads[i], kMinWidth, kMaxWidth);
      const double moved = std::clamp(
          unit_value(p, value) + std::normal_distribution<double>(0, width)(rng), 0.0, 1.0);
      value = number_text(p, std::clamp(from_unit(p, moved), p.min, p.max));
    }
    c[p.name] = std::move(value);
  }
  return c;
}

std::vector<double> Space::encode(const Configuration& c) const {
  std::vector<double> out;
  for (const Parameter& p : params_) {
    if (p.fixed)
      continue;
    auto it = c.find(p.name);
    const std::string v = it == c.end() ? p.default_value : it->second;
    switch (p.type) {
      case ParamType::kBool: out.push_back(v == "true" ? 1.0 : 0.0); break;
      case ParamType::kInt:
      case ParamType::kFloat: out.push_back(to_unit(p, std::strtod(v.c_str(), nullptr))); break;
      case ParamType::kEnum:
      case ParamType::kString:
        for (const auto& a : p.values)
          out.push_back(a == v ? 1.0 : 0.0);
        break;
    }
  }
  return out;
}

std::vector<std::string> Space::encoded_names() const {
  std::vector<std::string> out;
  for (const Parameter& p : params_) {
    if (p.fixed)
      continue;
    if (p.type == ParamType::kEnum || p.type == ParamType::kString) {
      for (const auto& a : p.values)
        out.push_back(p.name + "=" + a);
    } else {
      out.push_back(p.name);
    }
  }
  return out;
}

}  // namespace sluice::wf
