// The filesystem operations on PostgreSQL: one PL/pgSQL call each (pg_fs.h).
#include "dbos/fs/pg_fs.h"

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <variant>

namespace sluice::dbos {

using fs_internal::fs_error;
using fs_internal::max_file_bytes;
using fs_internal::now_us;
using fs_internal::parent_of;

namespace {

int64_t mode_bits(uint32_t mode) {
  return static_cast<int64_t>(mode & 07777);
}

}  // namespace

Result<QueryResult> PgFs::call(std::string_view function, std::initializer_list<Arg> args,
                               bool idempotent) {
  Result<QueryResult> called =
      session_.call(function, std::span<const Arg>(args.begin(), args.size()), idempotent);
  if (!called.is_ok()) {
    // Raised once rows had changed (the quota race of dbos_fs_settle), so the transaction is
    // gone; still the POSIX error it names.
    if (auto e = fs_internal::named_errno(called.status().message())) {
      return fs_error(e->number, called.status().message().substr(e->text_at));
    }
    return called.status();
  }
  const QueryResult& r = *called;
  // A failed operation returns one row whose last column, out_error, holds "ENOENT: …": the
  // same Status the SQLite path builds for that mistake.
  SLUICE_ASSERT(!r.columns.empty() && r.columns.back() == "out_error",
                "a function of fs_functions.sql lacks its out_error column");
  if (!r.rows.empty()) {
    if (const auto* error = std::get_if<std::string>(&r.rows.front().back())) {
      if (auto e = fs_internal::named_errno(*error)) {
        return fs_error(e->number, error->substr(e->text_at));
      }
      return internal_error(fmt::format("dbos_{}: {}", function, *error));
    }
  }
  return called;
}

Status PgFs::create(const std::string& path, uint32_t mode, bool exclusive) {
  return call("fs_create",
              {{"in_path", path},
               {"in_parent", parent_of(path)},
               {"in_mode", mode_bits(mode)},
               {"in_exclusive", int64_t{exclusive ? 1 : 0}},
               {"in_user", options_.user},
               {"in_p_key", home_partition_},
               {"in_layout", std::string(file_layout_name(options_.layout))},
               {"in_block_size", options_.block_size},
               {"in_now_us", now_us()}},
              !exclusive)
      .status();
}

Status PgFs::mkdir(const std::string& path, uint32_t mode) {
  return call("fs_mkdir",
              {{"in_path", path},
               {"in_parent", parent_of(path)},
               {"in_mode", mode_bits(mode)},
               {"in_user", options_.user},
               {"in_p_key", home_partition_},
               {"in_now_us", now_us()}},
              false)
      .status();
}

Status PgFs::unlink(const std::string& path) {
  return call("fs_unlink",
              {{"in_path", path}, {"in_parent", parent_of(path)}, {"in_now_us", now_us()}}, false)
      .status();
}

Status PgFs::rmdir(const std::string& path) {
  return call("fs_rmdir",
              {{"in_path", path}, {"in_parent", parent_of(path)}, {"in_now_us", now_us()}}, false)
      .status();
}

Status PgFs::rename(const std::string& from, const std::string& to) {
  return call("fs_rename",
              {{"in_from", from},
               {"in_to", to},
               {"in_from_parent", parent_of(from)},
               {"in_to_parent", parent_of(to)},
               {"in_now_us", now_us()}},
              false)
      .status();
}

Result<fs_internal::Meta> PgFs::stat(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, call("fs_stat", {{"in_path", path}}, true));
  return fs_internal::to_meta(r.rows.at(0));
}

Result<std::vector<DirEntry>> PgFs::readdir(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(QueryResult r, call("fs_readdir", {{"in_path", path}}, true));
  std::vector<DirEntry> out;
  out.reserve(r.rows.size());
  for (const Row& row : r.rows) {
    out.push_back(fs_internal::dir_entry(row));
  }
  return out;
}

Result<std::string> PgFs::read(const std::string& path, int64_t offset, int64_t length) {
  SLUICE_ASSIGN_OR_RETURN(
      QueryResult r,
      call("fs_read", {{"in_path", path}, {"in_offset", offset}, {"in_length", length}}, true));
  const Row& head = r.rows.at(0);  // the file's size and block size; the blocks follow
  const int64_t size = value_to_int(head[0]).value_or(0);
  if (offset >= size) {
    return std::string();
  }
  std::string out(static_cast<size_t>(std::min(length, size - offset)), '\0');
  fs_internal::copy_blocks(r.rows, 2, value_to_int(head[1]).value_or(1), offset, out);
  return out;
}

Status PgFs::write(const std::string& path, int64_t offset, std::string_view data) {
  return call("fs_write",
              {{"in_path", path},
               {"in_offset", offset},
               {"in_data", Blob{std::string(data)}},
               {"in_now_us", now_us()},
               {"in_max_bytes", max_file_bytes()}},
              true)
      .status();
}

Status PgFs::put(const std::string& path, std::string_view data, uint32_t mode) {
  return call("fs_put",
              {{"in_path", path},
               {"in_parent", parent_of(path)},
               {"in_data", Blob{std::string(data)}},
               {"in_mode", mode_bits(mode)},
               {"in_user", options_.user},
               {"in_p_key", home_partition_},
               {"in_layout", std::string(file_layout_name(options_.layout))},
               {"in_block_size", options_.block_size},
               {"in_now_us", now_us()},
               {"in_max_bytes", max_file_bytes()}},
              true)
      .status();
}

Status PgFs::truncate(const std::string& path, int64_t size) {
  return call("fs_truncate",
              {{"in_path", path},
               {"in_size", size},
               {"in_now_us", now_us()},
               {"in_max_bytes", max_file_bytes()}},
              true)
      .status();
}

Status PgFs::chmod(const std::string& path, uint32_t mode) {
  return call("fs_chmod",
              {{"in_path", path}, {"in_mode", mode_bits(mode)}, {"in_now_us", now_us()}}, true)
      .status();
}

Status PgFs::set_times(const std::string& path, int64_t atime_us, int64_t mtime_us) {
  return call("fs_set_times",
              {{"in_path", path},
               {"in_atime_us", atime_us},
               {"in_mtime_us", mtime_us},
               {"in_now_us", now_us()}},
              true)
      .status();
}

}  // namespace sluice::dbos
