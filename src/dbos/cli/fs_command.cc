// `sluice fs`: the dbos filesystems from the shell, with or without a FUSE mount.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/table.h"
#include "common/strings.h"
#include "dbos/fs/fuse_mount.h"
#include "sluice/cli/checks.h"
#include "sluice/cli/command.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/fs.h"

namespace sluice::dbos::cli {
namespace {

using sluice::cli::bind_action;
using sluice::cli::TextTable;

struct FsCliOptions {
  std::string backend;
  std::string layout = "localized";
  std::string user;
  int64_t block_size = 0;
  // per command
  std::string path = "/";
  std::string path2;
  std::string local;
  bool long_format = false;
  bool parents = false;
  bool recursive = false;
  bool json = false;
  bool foreground = false;
  bool debug = false;
  bool single_thread = false;
  bool by_user = false;
  std::string min_size = "0";
  std::string larger;
  std::string newer;
  int64_t limit = 0;
  std::string quota;
};

struct OpenedFs {
  std::shared_ptr<Database> db;
  std::unique_ptr<FileSystem> fs;
};

Result<OpenedFs> open_fs(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(FileLayout layout, parse_file_layout(o.layout));
  SLUICE_ASSIGN_OR_RETURN(auto db, Database::open(o.backend));
  SLUICE_ASSIGN_OR_RETURN(
      auto fs,
      FileSystem::open(db, {.user = o.user, .layout = layout, .block_size = o.block_size}));
  return OpenedFs{std::move(db), std::move(fs)};
}

// "4096", "20K", "1.5M", "2G" (powers of 1024).
Result<int64_t> parse_size(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return invalid_argument(fmt::format("'{}' is not a size (bytes, or with K, M, G)", text));
  }
  std::string unit = text.substr(used);
  double mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") {
    mult = 1024;
  } else if (unit == "M" || unit == "MiB") {
    mult = 1024.0 * 1024;
  } else if (unit == "G" || unit == "GiB") {
    mult = 1024.0 * 1024 * 1024;
  } else if (!unit.empty() && unit != "B") {
    return invalid_argument(fmt::format("'{}' is not a size (bytes, or with K, M, G)", text));
  }
  if (!std::isfinite(v) || v < 0) {
    return invalid_argument(fmt::format("size '{}' is negative or not a number", text));
  }
  // 2^63 bytes and more would wrap to a negative size in the conversion.
  if (v * mult >= 0x1p63) {
    return invalid_argument(fmt::format("size '{}' is too large (at most 8 EiB)", text));
  }
  return static_cast<int64_t>(v * mult);
}

// A time: seconds since the epoch, or an age ("90s", "10m", "2h", "3d" ago). Returns µs.
Result<int64_t> parse_time(const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (...) {
    return invalid_argument(fmt::format(
        "'{}' is not a time: seconds since the epoch, or an age like 90s, 10m, 2h, 3d", text));
  }
  const std::string unit = text.substr(used);
  int64_t per_unit = 0;  // seconds
  if (unit == "s") {
    per_unit = 1;
  } else if (unit == "m") {
    per_unit = 60;
  } else if (unit == "h") {
    per_unit = 3600;
  } else if (unit == "d") {
    per_unit = 86400;
  } else if (!unit.empty()) {
    return invalid_argument(fmt::format(
        "'{}' is not a time: seconds since the epoch, or an age like 90s, 10m, 2h, 3d", text));
  }
  // Past the year 292,000 the microseconds would wrap (to a time long past, matching all).
  constexpr int64_t kMaxSeconds = INT64_MAX / 1'000'000 / 86400 * 86400;
  int64_t secs = 0;
  if (v < 0 || __builtin_mul_overflow(v, unit.empty() ? 1 : per_unit, &secs) ||
      secs > kMaxSeconds) {
    return invalid_argument(fmt::format("time '{}' is negative or too far away", text));
  }
  if (unit.empty()) {
    return secs * 1'000'000;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return now - secs * 1'000'000;
}

std::string format_time(int64_t us) {
  const auto t = static_cast<time_t>(us / 1'000'000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void print_rows(const QueryResult& r, bool json) {
  if (json) {
    auto rows = nlohmann::json::array();
    for (const Row& row : r.rows) {
      nlohmann::json obj = nlohmann::json::object();
      for (size_t c = 0; c < r.columns.size(); ++c) {
        auto i = value_to_int(row[c]);
        if (i && row[c].index() == 1) {
          obj[r.columns[c]] = *i;
        } else {
          obj[r.columns[c]] = value_to_text(row[c]);
        }
      }
      rows.push_back(std::move(obj));
    }
    std::printf("%s\n", rows.dump(2).c_str());
    return;
  }
  TextTable table(r.columns);
  for (const Row& row : r.rows) {
    std::vector<std::string> cells;
    for (size_t c = 0; c < row.size(); ++c) {
      cells.push_back(r.columns[c] == "mtime_us" ? format_time(value_to_int(row[c]).value_or(0))
                                                 : value_to_text(row[c]));
    }
    table.add(std::move(cells));
  }
  table.print(stdout);
}

Status run_put(const FsCliOptions& o) {
  std::string data;
  if (o.local == "-") {
    data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    SLUICE_RETURN_IF_ERROR(read_file(o.local, &data).with_context("cannot read"));
  }
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  return op.fs->put(o.path, data);
}

Status run_get(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  SLUICE_ASSIGN_OR_RETURN(FileStat st, op.fs->stat(o.path));
  SLUICE_ASSIGN_OR_RETURN(std::string data, op.fs->read(o.path, 0, st.size));
  if (o.local.empty() || o.local == "-") {
    std::fwrite(data.data(), 1, data.size(), stdout);
    return {};  // the program checks that stdout took it
  }
  // stdio, not a stream, so that a failed write or close says why (ENOSPC from /dev/full).
  std::FILE* out = std::fopen(o.local.c_str(), "wb");
  if (out == nullptr) {
    return errno_status(errno, fmt::format("cannot write {}", o.local));
  }
  const bool written =
      std::fwrite(data.data(), 1, data.size(), out) == data.size() && std::fflush(out) == 0;
  const int err = errno;
  if (std::fclose(out) != 0 || !written) {
    return errno_status(written ? errno : err, fmt::format("cannot write {}", o.local));
  }
  return {};
}

Status run_ls(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  SLUICE_ASSIGN_OR_RETURN(FileStat st, op.fs->stat(o.path));
  std::vector<DirEntry> entries;
  if (st.type == FileType::kFile) {
    entries.push_back({o.path.substr(o.path.rfind('/') + 1), FileType::kFile, st.size});
  } else {
    SLUICE_ASSIGN_OR_RETURN(entries, op.fs->readdir(o.path));
  }
  if (!o.long_format) {
    for (const auto& e : entries) {
      std::printf("%s%s\n", e.name.c_str(), e.type == FileType::kDirectory ? "/" : "");
    }
    return {};
  }
  TextTable table({"name", "type", "size"});
  for (const auto& e : entries) {
    table.add({e.name, e.type == FileType::kDirectory ? "dir" : "file", std::to_string(e.size)});
  }
  table.print(stdout);
  return {};
}

Status remove_tree(FileSystem& fs, const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(auto entries, fs.readdir(path));
  for (const auto& e : entries) {
    const std::string child = (path == "/" ? "" : path) + "/" + e.name;
    if (e.type == FileType::kDirectory) {
      SLUICE_RETURN_IF_ERROR(remove_tree(fs, child));
    } else {
      SLUICE_RETURN_IF_ERROR(fs.unlink(child));
    }
  }
  return path == "/" ? Status{} : fs.rmdir(path);
}

Status run_rm(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  SLUICE_ASSIGN_OR_RETURN(FileStat st, op.fs->stat(o.path));
  if (st.type == FileType::kDirectory) {
    if (o.recursive) {
      if (st.path == "/") {
        // As GNU rm refuses `rm -r /`: one typo would empty the whole filesystem.
        return invalid_argument("refusing to remove / recursively; remove what is under it");
      }
      return remove_tree(*op.fs, st.path);
    }
    return op.fs->rmdir(o.path);
  }
  return op.fs->unlink(o.path);
}

Status run_mkdir(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  if (!o.parents) {
    return op.fs->mkdir(o.path);
  }
  SLUICE_ASSIGN_OR_RETURN(std::string p, FileSystem::normalize_path(o.path));
  for (size_t pos = 1; pos <= p.size(); ++pos) {
    if (pos == p.size() || p[pos] == '/') {
      Status s = op.fs->mkdir(p.substr(0, pos));
      if (!s.is_ok() && error_number(s) != EEXIST) {
        return s;
      }
    }
  }
  SLUICE_ASSIGN_OR_RETURN(FileStat st, op.fs->stat(p));
  if (st.type != FileType::kDirectory) {
    return already_exists(fmt::format("EEXIST: {} exists and is a file", p));
  }
  return {};
}

Status run_mv(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  return op.fs->rename(o.path, o.path2);
}

Status run_stat(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  SLUICE_ASSIGN_OR_RETURN(FileStat st, op.fs->stat(o.path));
  const bool dir = st.type == FileType::kDirectory;
  if (o.json) {
    nlohmann::json j = {{"path", st.path},         {"type", dir ? "dir" : "file"},
                        {"size", st.size},         {"mode", fmt::format("{:04o}", st.mode)},
                        {"owner", st.owner},       {"atime_us", st.atime_us},
                        {"mtime_us", st.mtime_us}, {"ctime_us", st.ctime_us}};
    if (!dir) {
      j["layout"] = std::string(file_layout_name(st.layout));
      j["block_size"] = st.block_size;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return {};
  }
  std::printf("path:   %s\ntype:   %s\nsize:   %lld\nmode:   %04o\nowner:  %s\n", st.path.c_str(),
              dir ? "dir" : "file", static_cast<long long>(st.size), st.mode, st.owner.c_str());
  if (!dir) {
    std::printf("layout: %s\nblock:  %lld\n", std::string(file_layout_name(st.layout)).c_str(),
                static_cast<long long>(st.block_size));
  }
  std::printf("mtime:  %s UTC\nctime:  %s UTC\n", format_time(st.mtime_us).c_str(),
              format_time(st.ctime_us).c_str());
  return {};
}

Status run_du(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  if (o.by_user) {
    SLUICE_ASSIGN_OR_RETURN(int64_t min, parse_size(o.min_size));
    SLUICE_ASSIGN_OR_RETURN(QueryResult r, op.fs->usage_by_user(min));
    print_rows(r, o.json);
    return {};
  }
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, op.fs->directory_sizes(o.path));
  if (r.rows.empty()) {
    return op.fs->stat(o.path).status();  // says ENOENT (or it is a file: nothing to sum)
  }
  print_rows(r, o.json);
  return {};
}

Status run_find(const FsCliOptions& o) {
  if (o.larger.empty() == o.newer.empty()) {
    return invalid_argument("give exactly one of --larger SIZE or --newer TIME");
  }
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  SLUICE_ASSIGN_OR_RETURN(std::string root, FileSystem::normalize_path(o.path));
  QueryResult r;
  if (!o.larger.empty()) {
    SLUICE_ASSIGN_OR_RETURN(int64_t min, parse_size(o.larger));
    SLUICE_ASSIGN_OR_RETURN(r, op.fs->largest_files(min + 1, o.limit > 0 ? o.limit : INT64_MAX));
  } else {
    SLUICE_ASSIGN_OR_RETURN(int64_t since, parse_time(o.newer));
    SLUICE_ASSIGN_OR_RETURN(r, op.fs->changed_since(since));
  }
  // Keep the files under the root (the queries cover the whole tree).
  if (root != "/") {
    std::vector<Row> kept;
    for (Row& row : r.rows) {
      const std::string p = value_to_text(row[0]);
      if (p.size() > root.size() && p.starts_with(root) && p[root.size()] == '/') {
        kept.push_back(std::move(row));
      }
    }
    r.rows = std::move(kept);
  }
  print_rows(r, o.json);
  return {};
}

Status run_quota(const FsCliOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(int64_t bytes, parse_size(o.quota));
  SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
  return op.fs->set_quota(o.path, bytes);
}

Status run_mount(const FsCliOptions& o) {
  // The mount would hide whatever is there; a mount point is an empty directory.
  std::error_code ec;
  if (!std::filesystem::is_directory(o.path, ec)) {
    return invalid_argument(fmt::format("mount point {} is not a directory", o.path));
  }
  if (!std::filesystem::is_empty(o.path, ec) || ec) {
    return invalid_argument(fmt::format("mount point {} is not an empty directory", o.path));
  }
  // Open once before detaching so a bad backend or layout is reported here, on the terminal.
  { SLUICE_ASSIGN_OR_RETURN(OpenedFs probe, open_fs(o)); }
  MountOptions m{.mountpoint = o.path,
                 .foreground = o.foreground,
                 .debug = o.debug,
                 .single_thread = o.single_thread};
  // The first handle opens the database (after the mount detached); the handles of requests
  // served at once share it, and with it SQLite's group commit.
  std::mutex mu;
  std::shared_ptr<Database> db;
  return serve_fuse(m, [&]() -> Result<std::unique_ptr<FileSystem>> {
    std::lock_guard lock(mu);
    if (db == nullptr) {
      SLUICE_ASSIGN_OR_RETURN(OpenedFs op, open_fs(o));
      db = op.db;
      return std::move(op.fs);  // the FileSystem keeps its Database alive
    }
    SLUICE_ASSIGN_OR_RETURN(FileLayout layout, parse_file_layout(o.layout));
    return FileSystem::open(db, {.user = o.user, .layout = layout, .block_size = o.block_size});
  });
}

void setup_fs(CLI::App& cmd) {
  auto o = std::make_shared<FsCliOptions>();
  cmd.add_option("--backend", o->backend, "sqlite:PATH or postgres://… (default: dbos.backend)");
  cmd.add_option("--layout", o->layout, "layout of new files: localized or parallel")
      ->check(CLI::IsMember({"localized", "parallel"}));
  cmd.add_option("--user", o->user, "owner of new files (default: the OS user)");
  cmd.add_option("--block-size", o->block_size,
                 "block size of new files in bytes (default: the knob dbos.fs_block_size)")
      ->check(sluice::cli::at_least(0));
  cmd.require_subcommand(1);

  auto* mount = cmd.add_subcommand("mount", "Serve the filesystem on DIR through FUSE");
  mount->add_option("dir", o->path, "an empty directory")->required();
  mount->add_flag("--foreground,-f", o->foreground, "stay in the foreground until unmounted");
  mount->add_flag("--debug", o->debug, "trace FUSE requests (implies --foreground)");
  mount->add_flag("--single-thread,-s", o->single_thread,
                  "serve one request at a time on one database session (default: requests in "
                  "flight run on several threads, a session each)");
  bind_action(*mount, [o] { return run_mount(*o); });

  auto* put = cmd.add_subcommand("put", "Copy a local file (or - for stdin) to PATH");
  put->add_option("local", o->local, "local file, or -")->required();
  put->add_option("path", o->path, "destination, fully qualified")->required();
  bind_action(*put, [o] { return run_put(*o); });

  auto* get = cmd.add_subcommand("get", "Copy PATH to a local file (default: stdout)");
  get->add_option("path", o->path, "file, fully qualified")->required();
  get->add_option("local", o->local, "local file, or - for stdout");
  bind_action(*get, [o] { return run_get(*o); });

  auto* ls = cmd.add_subcommand("ls", "List a directory");
  ls->add_option("path", o->path, "directory (default /)");
  ls->add_flag("-l", o->long_format, "with type and size");
  bind_action(*ls, [o] { return run_ls(*o); });

  auto* rm = cmd.add_subcommand("rm", "Remove a file or an empty directory");
  rm->add_option("path", o->path, "file or directory")->required();
  rm->add_flag("-r,--recursive", o->recursive, "a directory with everything below it");
  bind_action(*rm, [o] { return run_rm(*o); });

  auto* mkdir = cmd.add_subcommand("mkdir", "Create a directory");
  mkdir->add_option("path", o->path, "directory")->required();
  mkdir->add_flag("-p,--parents", o->parents, "with missing parents; no error if it exists");
  bind_action(*mkdir, [o] { return run_mkdir(*o); });

  auto* mv = cmd.add_subcommand("mv", "Rename a file or directory (one transaction)");
  mv->add_option("from", o->path, "source")->required();
  mv->add_option("to", o->path2, "destination")->required();
  bind_action(*mv, [o] { return run_mv(*o); });

  auto* stat = cmd.add_subcommand("stat", "Size, mode, owner, layout, times of PATH");
  stat->add_option("path", o->path, "file or directory")->required();
  stat->add_flag("--json", o->json, "as JSON");
  bind_action(*stat, [o] { return run_stat(*o); });

  auto* du = cmd.add_subcommand("du", "Bytes under each directory, or per user (SQL)");
  du->add_option("path", o->path, "root directory (default /)");
  du->add_flag("--by-user", o->by_user,
               "per user: files and bytes of files of at least --min-size (the paper's query)");
  du->add_option("--min-size", o->min_size, "with --by-user: count files of at least this size");
  du->add_flag("--json", o->json, "rows as JSON");
  bind_action(*du, [o] { return run_du(*o); });

  auto* find = cmd.add_subcommand("find", "Files larger than a size or changed since a time");
  find->add_option("path", o->path, "root directory (default /)");
  find->add_option("--larger", o->larger, "files larger than SIZE (bytes, K, M, G), largest first");
  find->add_option("--newer", o->newer,
                   "files modified since TIME: epoch seconds or an age (90s, 10m, 2h, 3d)");
  find->add_option("--limit", o->limit, "at most this many (with --larger; 0: all)")
      ->check(sluice::cli::at_least(0));
  find->add_flag("--json", o->json, "rows as JSON");
  bind_action(*find, [o] { return run_find(*o); });

  auto* quota = cmd.add_subcommand("quota", "Limit the bytes a user's files may hold (0: none)");
  quota->add_option("user", o->path, "user name")->required();
  quota->add_option("bytes", o->quota, "bytes, or with K, M, G; 0 removes the limit")->required();
  bind_action(*quota, [o] { return run_quota(*o); });
}

}  // namespace

SLUICE_REGISTER_COMMAND(fs, {.name = "fs",
                             .help = "The dbos filesystems: mount with FUSE, put/get/ls, du/find",
                             .order = 43,
                             .setup = setup_fs});

}  // namespace sluice::dbos::cli
