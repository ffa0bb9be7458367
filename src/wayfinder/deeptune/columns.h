// DeepTune's view of a space: the encoded input columns, which parameter each belongs to, and the
// z-score statistics that turn Space::encode() into the model's input.
//
// The statistics are the exact moments of each column under the space's own uniform sampling
// (the distribution DeepTune's candidate pool is drawn from), not of the observed history:
//   numeric, continuous or log-scale: the encoding is uniform on [0, 1]: mean 1/2, std 1/√12;
//   int with m = max - min + 1 values: mean 1/2, std √((m + 1) / (12 (m - 1)));
//   bool: mean 1/2, std 1/2;
//   one-hot column of a parameter with m values: mean 1/m, std √((1/m)(1 - 1/m)).
// A column that cannot vary (m = 1) gets std 1. So the figures never drift as observations
// arrive, a rare enum value's column never divides by a near-zero spread, and one parameter has
// the same statistics in every space that holds it (which keeps transferred weights exact).
//
// Thread safety: plain values.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "sluice/wayfinder/space.h"

namespace sluice::wf::deeptune {

struct ParameterColumns {
  size_t parameter = 0;  // index into Space::parameters()
  size_t begin = 0;      // its encoded columns [begin, end)
  size_t end = 0;
};

struct Columns {
  std::vector<std::string> names;            // Space::encoded_names()
  std::vector<ParameterColumns> parameters;  // the unpinned parameters, in encoding order
  std::vector<double> mean, stddev;          // per column
  size_t size() const { return names.size(); }
};

Columns make_columns(const Space& space);

// Appends the z-scored encoding of `c` to `out` (size() floats).
void append_normalized(const Space& space, const Columns& columns, const Configuration& c,
                       std::vector<float>& out);
// z-scores an already encoded row.
void append_normalized(const Columns& columns, std::span<const double> encoded,
                       std::vector<float>& out);

}  // namespace sluice::wf::deeptune
