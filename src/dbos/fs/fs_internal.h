// Internal to the dbos filesystems: what the SQLite path (fs.cc, statements of fs_ops.sql) and
// the PostgreSQL path (pg_fs.cc, functions of fs_functions.sql) share: errors, Directory rows,
// block assembly, the file size limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/common/status.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/fs.h"

namespace sluice::dbos::fs_internal {

// A Status carrying `e`: the code follows the errno, the message starts with its name.
Status fs_error(int e, std::string msg);

struct NamedErrno {
  int number = 0;
  size_t text_at = 0;  // where the text after "NAME: " starts
};
// The errno name that leads the message, possibly after contexts ("ctx: ENOENT: …").
std::optional<NamedErrno> named_errno(const std::string& m);

// The knob dbos.fs_max_file_bytes: writes past it fail with EFBIG.
int64_t max_file_bytes();

int64_t now_us();
std::string parent_of(const std::string& path);  // of a normalised path; "/" for "/a"
std::string base_of(const std::string& path);

// One Directory row, as the `meta` statement (and dbos_fs_stat) return it.
struct Meta {
  bool dir = false;
  int64_t f_id = 0;
  FileLayout layout = FileLayout::kLocalized;
  int64_t size = 0;
  int64_t block_size = 0;
  int64_t p_key = 0;
  std::string owner;
  int64_t mode = 0;
  int64_t atime_us = 0;
  int64_t mtime_us = 0;
  int64_t ctime_us = 0;
};
Meta to_meta(const Row& r);

// A row of the `list` statement (or of dbos_fs_readdir): path, type, size.
DirEntry dir_entry(const Row& r);

const std::string& blob_bytes(const Value& v);

// Copies the stored blocks among `rows` (block number in column `col`, bytes in the next; rows
// without a block number are skipped) into `out`, which holds the bytes from `offset` on; what no
// block covers stays zero (a hole, or the unwritten tail of a short block).
void copy_blocks(const std::vector<Row>& rows, size_t col, int64_t block_size, int64_t offset,
                 std::string& out);

}  // namespace sluice::dbos::fs_internal
