#include "cli/table.h"

#include <algorithm>

namespace sluice::cli {

void TextTable::print(std::FILE* out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(width[i] - row[i].size() + 2, ' ');
      }
    }
    std::fprintf(out, "%s\n", line.c_str());
  };
  for (size_t r = 0; r < rows_.size(); ++r) {
    print_row(rows_[r]);
    if (r == 0) {
      std::vector<std::string> rule;
      for (size_t w : width) {
        rule.emplace_back(w, '-');
      }
      print_row(rule);
    }
  }
}

}  // namespace sluice::cli
