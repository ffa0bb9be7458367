#include "wayfinder/deeptune/columns.h"

#include <cmath>

namespace sluice::wf::deeptune {

Columns make_columns(const Space& space) {
  Columns out;
  out.names = space.encoded_names();
  const auto& params = space.parameters();
  size_t col = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = params[i];
    if (p.fixed)
      continue;
    ParameterColumns pc{.parameter = i, .begin = col, .end = col};
    switch (p.type) {
      case ParamType::kBool:
        out.mean.push_back(0.5);
        out.stddev.push_back(0.5);
        pc.end = ++col;
        break;
      case ParamType::kInt: {
        const double m = std::floor(p.max) - std::ceil(p.min) + 1;
        out.mean.push_back(0.5);
        if (p.log_scale) {
          out.stddev.push_back(1 / std::sqrt(12.0));
        } else {
          out.stddev.push_back(m > 1 ? std::sqrt((m + 1) / (12 * (m - 1))) : 1.0);
        }
        pc.end = ++col;
        break;
      }
      case ParamType::kFloat:
        out.mean.push_back(0.5);
        out.stddev.push_back(p.max > p.min ? 1 / std::sqrt(12.0) : 1.0);
        pc.end = ++col;
        break;
      case ParamType::kEnum:
      case ParamType::kString: {
        const double m = static_cast<double>(p.values.size());
        for (size_t v = 0; v < p.values.size(); ++v) {
          out.mean.push_back(1 / m);
          out.stddev.push_back(m > 1 ? std::sqrt((1 / m) * (1 - 1 / m)) : 1.0);
        }
        col += p.values.size();
        pc.end = col;
        break;
      }
    }
    out.parameters.push_back(pc);
  }
  return out;
}

void append_normalized(const Columns& columns, std::span<const double> encoded,
                       std::vector<float>& out) {
  for (size_t j = 0; j < encoded.size() && j < columns.size(); ++j) {
    out.push_back(static_cast<float>((encoded[j] - columns.mean[j]) / columns.stddev[j]));
  }
}

void append_normalized(const Space& space, const Columns& columns, const Configuration& c,
                       std::vector<float>& out) {
  const std::vector<double> e = space.encode(c);
  append_normalized(columns, e, out);
}

}  // namespace sluice::wf::deeptune
