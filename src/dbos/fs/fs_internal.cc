// Shared by both filesystem paths (fs_internal.h).
#include "dbos/fs/fs_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <variant>

#include "sluice/common/knobs.h"

namespace sluice::dbos::fs_internal {
namespace {

const IntKnob kMaxFileBytes({.name = "dbos.fs_max_file_bytes",
                             .default_value = int64_t{64} << 30,
                             .min = 1,
                             .max = int64_t{1} << 50,
                             .stage = KnobStage::kRuntime,
                             .help = "largest file of the dbos filesystems; writes past it fail "
                                     "with EFBIG"});

struct ErrnoName {
  int number;
  const char* name;
};
constexpr ErrnoName kErrnos[] = {
    {ENOENT, "ENOENT"},
    {EEXIST, "EEXIST"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {EISDIR, "EISDIR"},
    {ENOTDIR, "ENOTDIR"},
    {EINVAL, "EINVAL"},
    {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},
    {EDQUOT, "EDQUOT"},
    {EBUSY, "EBUSY"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {EACCES, "EACCES"},
    {EIO, "EIO"},
};

const char* errno_name(int e) {
  for (const auto& n : kErrnos) {
    if (n.number == e) {
      return n.name;
    }
  }
  return "EIO";
}

}  // namespace

Status fs_error(int e, std::string msg) {
  std::string m = fmt::format("{}: {}", errno_name(e), msg);
  switch (e) {
    case ENOENT: return not_found(std::move(m));
    case EEXIST: return already_exists(std::move(m));
    case EINVAL:
    case ENAMETOOLONG: return invalid_argument(std::move(m));
    case EFBIG:
    case ENOSPC:
    case EDQUOT: return resource_exhausted(std::move(m));
    case EACCES: return permission_denied(std::move(m));
    default: return failed_precondition(std::move(m));
  }
}

std::optional<NamedErrno> named_errno(const std::string& m) {
  for (size_t pos = 0; pos < m.size();) {
    for (const auto& n : kErrnos) {
      const std::string_view name(n.name);
      if (m.compare(pos, name.size(), name) == 0 && pos + name.size() < m.size() &&
          m[pos + name.size()] == ':') {
        return NamedErrno{n.number, std::min(m.size(), pos + name.size() + 2)};
      }
    }
    const size_t next = m.find(": ", pos);
    if (next == std::string::npos) {
      break;
    }
    pos = next + 2;
  }
  return std::nullopt;
}

int64_t max_file_bytes() {
  return kMaxFileBytes.get();
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

Meta to_meta(const Row& r) {
  Meta m;
  m.dir = value_to_text(r[0]) == "dir";
  m.f_id = value_to_int(r[1]).value_or(0);
  m.layout = value_to_text(r[2]) == "parallel" ? FileLayout::kParallel : FileLayout::kLocalized;
  m.size = value_to_int(r[3]).value_or(0);
  m.block_size = value_to_int(r[4]).value_or(0);
  m.p_key = value_to_int(r[5]).value_or(0);
  m.owner = value_to_text(r[6]);
  m.mode = value_to_int(r[7]).value_or(0);
  m.atime_us = value_to_int(r[8]).value_or(0);
  m.mtime_us = value_to_int(r[9]).value_or(0);
  m.ctime_us = value_to_int(r[10]).value_or(0);
  return m;
}

DirEntry dir_entry(const Row& r) {
  return {base_of(value_to_text(r[0])),
          value_to_text(r[1]) == "dir" ? FileType::kDirectory : FileType::kFile,
          value_to_int(r[2]).value_or(0)};
}

const std::string& blob_bytes(const Value& v) {
  static const std::string kEmpty;
  if (const auto* b = std::get_if<Blob>(&v)) {
    return b->bytes;
  }
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  return kEmpty;
}

void copy_blocks(const std::vector<Row>& rows, size_t col, int64_t block_size, int64_t offset,
                 std::string& out) {
  const auto end = offset + static_cast<int64_t>(out.size());
  for (const Row& row : rows) {
    if (std::holds_alternative<std::monostate>(row[col])) {
      continue;
    }
    const int64_t b = value_to_int(row[col]).value_or(0);
    const std::string& bytes = blob_bytes(row[col + 1]);
    const int64_t block_start = b * block_size;
    const int64_t from = std::max(offset, block_start);
    const int64_t to = std::min(end, block_start + static_cast<int64_t>(bytes.size()));
    if (to > from) {
      std::copy_n(bytes.data() + (from - block_start), to - from, out.data() + (from - offset));
    }
  }
}

}  // namespace sluice::dbos::fs_internal
