#include "common/strings.h"

#include <cctype>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace sluice {

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

Status read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return errno_status(errno != 0 ? errno : ENOENT, path);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return io_error(path + ": read failed");
  }
  *out = std::move(buf).str();
  return {};
}

}  // namespace sluice
