#include "cli/table.h"

#include <algorithm>
#include <cstdio>

namespace sluice::cli {
namespace {

// A cell as one line of visible text: control bytes (a NUL would end the printed line, a
// newline would break the table) are shown as \n, \t or \xNN.
std::string visible(const std::string& cell) {
  if (std::none_of(cell.begin(), cell.end(),
                   [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return cell;
  }
  std::string out;
  for (char c : cell) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void TextTable::print(std::FILE* out) const {
  std::vector<std::vector<std::string>> shown;
  shown.reserve(rows_.size());
  for (const auto& row : rows_) {
    std::vector<std::string> cells;
    cells.reserve(row.size());
    for (const std::string& cell : row) {
      cells.push_back(visible(cell));
    }
    shown.push_back(std::move(cells));
  }
  std::vector<size_t> width;
  for (const auto& row : shown) {
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
    std::fwrite(line.data(), 1, line.size(), out);
    std::fputc('\n', out);
  };
  for (size_t r = 0; r < shown.size(); ++r) {
    print_row(shown[r]);
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
