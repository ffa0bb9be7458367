#include "dbos/sql_library.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::dbos {

std::map<std::string, std::string, std::less<>> split_sections(std::string_view text) {
  std::map<std::string, std::string, std::less<>> out;
  std::string current;
  std::string body;
  size_t pos = 0;
  auto flush = [&] {
    if (!current.empty()) {
      out[current] = body;
    }
    body.clear();
  };
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) {
      eol = text.size();
    }
    std::string_view line = text.substr(pos, eol - pos);
    constexpr std::string_view kMarker = "-- name:";
    if (line.starts_with(kMarker)) {
      flush();
      std::string_view name = line.substr(kMarker.size());
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) {
        name.remove_prefix(1);
      }
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) {
        name.remove_suffix(1);
      }
      current = std::string(name);
    } else if (!current.empty()) {
      body.append(line);
      body.push_back('\n');
    }
    pos = eol + 1;
  }
  flush();
  return out;
}

Status SqlLibrary::add_file(Dialect dialect, std::string_view file, std::string_view text) {
  if (!file.ends_with(".sql")) {
    return {};
  }
  std::string_view stem = file.substr(0, file.size() - 4);
  if (!stem.empty() && std::isdigit(static_cast<unsigned char>(stem.front()))) {
    size_t digits = 0;
    while (digits < stem.size() && std::isdigit(static_cast<unsigned char>(stem[digits]))) {
      ++digits;
    }
    migrations_.push_back(
        {std::stoi(std::string(stem.substr(0, digits))), std::string(stem), std::string(text)});
    return {};
  }
  const bool is_sched = stem.starts_with("sched_");
  if (!is_sched && stem != "services") {
    return {};
  }
  if (is_sched) {
    std::string name(stem.substr(6));
    if (std::find(schedulers_.begin(), schedulers_.end(), name) == schedulers_.end()) {
      schedulers_.push_back(name);
    }
  }
  if (dialect == Dialect::kPostgres) {
    install_scripts_.emplace_back(text);
    return {};
  }
  if (is_sched) {
    procedures_[std::string(stem)] = std::string(text);
    return {};
  }
  for (auto& [name, body] : split_sections(text)) {
    procedures_[name] = body;
  }
  return {};
}

Result<SqlLibrary> SqlLibrary::load(Dialect dialect, const std::string& extra_dir) {
  SqlLibrary lib;
  const std::string prefix = std::string(dialect_name(dialect)) + "/";
  for (const auto& f : detail::embedded_sql_files()) {
    std::string_view path(f.path);
    if (path.starts_with(prefix)) {
      SLUICE_RETURN_IF_ERROR(lib.add_file(dialect, path.substr(prefix.size()), f.text));
    }
  }
  if (!extra_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path dir = fs::path(extra_dir) / dialect_name(dialect);
    if (!fs::is_directory(dir, ec)) {
      return not_found(fmt::format(
          "dbos.scheduler_dir: {} is not a directory (expected <dir>/{}/sched_<name>.sql)",
          dir.string(), dialect_name(dialect)));
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.starts_with("sched_") && name.ends_with(".sql")) {
        files.push_back(e.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
      std::ifstream in(p);
      if (!in) {
        return io_error(fmt::format("cannot read scheduler file {}", p.string()));
      }
      std::stringstream ss;
      ss << in.rdbuf();
      SLUICE_RETURN_IF_ERROR(lib.add_file(dialect, p.filename().string(), ss.str()));
    }
  }
  std::sort(lib.migrations_.begin(), lib.migrations_.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 0; i < lib.migrations_.size(); ++i) {
    if (lib.migrations_[i].version != static_cast<int>(i + 1)) {
      return internal_error(fmt::format("dbos migrations of {} are not numbered 1..n at {}",
                                        dialect_name(dialect), lib.migrations_[i].name));
    }
  }
  std::sort(lib.schedulers_.begin(), lib.schedulers_.end());
  return lib;
}

std::string SqlLibrary::install_digest() const {
  return script_digest(install_scripts_);
}

std::string script_digest(const std::vector<std::string>& scripts) {
  // FNV-1a over the scripts: stable across runs and builds.
  uint64_t h = 1469598103934665603ULL;
  for (const auto& s : scripts) {
    for (char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

}  // namespace sluice::dbos
