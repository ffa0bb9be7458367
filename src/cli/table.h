// Internal to the `sluice` program: plain-text tables with aligned columns.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace sluice::cli {

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Writes the header, a rule, then the rows; the last column is not padded.
  void print(std::FILE* out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace sluice::cli
