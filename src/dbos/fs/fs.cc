// The DBOS filesystems: on SQLite each operation is a few statements of fs_ops.sql in one
// transaction; on PostgreSQL it is one function call (pg_fs.cc).
#include "sluice/dbos/fs.h"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "dbos/connection.h"
#include "dbos/fs/fs_internal.h"
#include "dbos/fs/pg_fs.h"
#include "dbos/sql_library.h"
#include "sluice/common/knobs.h"

namespace sluice::dbos {

using fs_internal::base_of;
using fs_internal::blob_bytes;
using fs_internal::copy_blocks;
using fs_internal::dir_entry;
using fs_internal::fs_error;
using fs_internal::Meta;
using fs_internal::now_us;
using fs_internal::parent_of;
using fs_internal::to_meta;

namespace {

const IntKnob kBlockSize({.name = "dbos.fs_block_size",
                          .default_value = 4096,
                          .min = 64,
                          .max = 1 << 20,
                          .stage = KnobStage::kRuntime,
                          .help = "block size of new files in the dbos filesystems (bytes); each "
                                  "file keeps the size it was created with"});
const IntKnob kPartitions({.name = "dbos.fs_partitions",
                           .default_value = 8,
                           .min = 1,
                           .max = 4096,
                           .stage = KnobStage::kStart,
                           .help = "partitions (rows of Map) created for the dbos filesystems "
                                   "when Map is empty: homes of users, spread of parallel files"});

constexpr size_t kMaxName = 255;
constexpr size_t kMaxPath = 4095;

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 6) {
      extra = 1;
    } else if ((c >> 4) == 14) {
      extra = 2;
    } else if ((c >> 3) == 30) {
      extra = 3;
    } else {
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 2) {
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

// The statements of one dialect's fs_ops.sql and fs_analytics.sql.
using Statements = std::map<std::string, std::string, std::less<>>;

const Statements& statements(Dialect d) {
  static std::mutex mu;
  static std::map<Dialect, Statements> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(d);
  if (it != cache.end()) {
    return it->second;
  }
  Statements all;
  const std::string prefix = std::string(dialect_name(d)) + "/";
  for (const auto& f : detail::embedded_sql_files()) {
    std::string_view path(f.path);
    if (path == prefix + "fs_ops.sql" || path == prefix + "fs_analytics.sql") {
      for (auto& [name, body] : split_sections(f.text)) {
        all[name] = body;
      }
    }
  }
  return cache.emplace(d, std::move(all)).first->second;
}

// The embedded file `<dialect>/<file>`, or null.
const char* embedded_text(Dialect d, std::string_view file) {
  const std::string want = fmt::format("{}/{}", dialect_name(d), file);
  for (const auto& f : detail::embedded_sql_files()) {
    if (want == f.path) {
      return f.text;
    }
  }
  return nullptr;
}

std::string os_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? std::string(pw->pw_name) : fmt::format("uid{}", ::geteuid());
}

}  // namespace

std::string_view file_layout_name(FileLayout l) {
  return l == FileLayout::kParallel ? "parallel" : "localized";
}

Result<FileLayout> parse_file_layout(std::string_view name) {
  if (name == "localized") {
    return FileLayout::kLocalized;
  }
  if (name == "parallel") {
    return FileLayout::kParallel;
  }
  return invalid_argument(
      fmt::format("unknown filesystem layout '{}': use localized or parallel", name));
}

int error_number(const Status& s) {
  if (s.is_ok()) {
    return 0;
  }
  if (auto e = fs_internal::named_errno(s.message())) {
    return e->number;
  }
  switch (s.code()) {
    case StatusCode::kNotFound: return ENOENT;
    case StatusCode::kAlreadyExists: return EEXIST;
    case StatusCode::kInvalidArgument: return EINVAL;
    case StatusCode::kResourceExhausted: return ENOSPC;
    case StatusCode::kPermissionDenied: return EACCES;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded: return EAGAIN;
    default: return EIO;
  }
}

Result<std::string> FileSystem::normalize_path(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return fs_error(EINVAL, fmt::format("path '{}' is not absolute: names are fully qualified "
                                        "and start with '/'",
                                        path));
  }
  if (path.size() > kMaxPath) {
    return fs_error(ENAMETOOLONG,
                    fmt::format("path of {} bytes is longer than {} bytes", path.size(), kMaxPath));
  }
  if (path.find('\0') != std::string_view::npos) {
    return fs_error(EINVAL, "path holds a NUL byte");
  }
  if (!valid_utf8(path)) {
    return fs_error(EINVAL, fmt::format("path '{}' is not valid UTF-8", path));
  }
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    std::string_view part = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      if (!parts.empty()) {
        parts.pop_back();
      }
      continue;
    }
    if (part.size() > kMaxName) {
      return fs_error(ENAMETOOLONG, fmt::format("name '{}…' of {} bytes is longer than {} bytes",
                                                part.substr(0, 32), part.size(), kMaxName));
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto p : parts) {
    out.push_back('/');
    out.append(p);
  }
  return out.empty() ? std::string("/") : out;
}

struct FileSystem::Impl {
  Session* session = nullptr;
  const Statements* sql = nullptr;
  FsOptions options;
  std::vector<int64_t> partition_keys;  // of Map, sorted; parallel block b goes to [b mod n]
  int64_t home_partition = 0;
  // PostgreSQL: every operation is a function of fs_functions.sql; the statements of the
  // members below run on SQLite only (and, on both engines, to install and to frame batches).
  std::unique_ptr<PgFs> pg;

  // fs_functions.sql, run again only when it changed (its digest is kept in dbos_meta).
  Status install_functions() {
    const char* text = embedded_text(Dialect::kPostgres, "fs_functions.sql");
    if (text == nullptr) {
      return internal_error("the dbos library was built without fs_functions.sql");
    }
    const std::string digest = script_digest({text});
    SLUICE_ASSIGN_OR_RETURN(QueryResult r, run("functions_digest", {}));
    if (!r.rows.empty() && value_to_text(r.rows[0][0]) == digest) {
      return {};
    }
    SLUICE_RETURN_IF_ERROR(session->execute_script(text));
    return exec("set_functions_digest", {digest});
  }

  // New users' homes are dealt round-robin over the partitions.
  Status add_user(const std::string& user) {
    SLUICE_ASSIGN_OR_RETURN(QueryResult n, run("user_count", {}));
    const auto users = static_cast<size_t>(value_to_int(n.rows.at(0).at(0)).value_or(0));
    return exec("user_add", {user, partition_keys[users % partition_keys.size()]});
  }

  Result<QueryResult> run(std::string_view name, std::vector<Value> params) {
    auto it = sql->find(name);
    SLUICE_ASSERT(it != sql->end(), "fs_ops.sql lacks a statement the filesystem uses");
    return session->query(it->second, params);
  }
  Status exec(std::string_view name, std::vector<Value> params) {
    return run(name, std::move(params)).status();
  }

  // A read-only transaction: SQLite does not take the write lock (WAL readers never wait).
  Status read_txn(const std::function<Status()>& fn) {
    if (session->in_transaction()) {
      return fn();  // inside FileSystem::batch
    }
    Connection& conn = session->connection();
    Status s;
    for (int attempt = 0; attempt < 50; ++attempt) {
      s = conn.begin(false);
      if (s.is_ok()) {
        s = fn();
        if (s.is_ok()) {
          s = conn.commit();
          if (s.is_ok()) {
            return s;
          }
        }
      }
      const ErrorKind kind = conn.last_error_kind();
      (void)conn.rollback();
      if (kind != ErrorKind::kConflict) {
        break;
      }
    }
    return s;
  }

  Result<std::optional<Meta>> meta(const std::string& path, std::string_view lock = "meta") {
    SLUICE_ASSIGN_OR_RETURN(QueryResult r, run(lock, {path}));
    if (r.rows.empty()) {
      return std::optional<Meta>();
    }
    return std::optional<Meta>(to_meta(r.rows[0]));
  }

  // The entry at `path`, or the errno that explains why there is none: ENOENT, or ENOTDIR when
  // an ancestor is a file.
  Result<Meta> existing(const std::string& path, std::string_view lock = "meta") {
    SLUICE_ASSIGN_OR_RETURN(auto m, meta(path, lock));
    if (m) {
      return *m;
    }
    return missing(path);
  }

  Status missing(const std::string& path) {
    // Name the first missing or non-directory ancestor.
    std::string p = path;
    std::string deepest_missing = path;
    while (p != "/") {
      p = parent_of(p);
      SLUICE_ASSIGN_OR_RETURN(auto m, meta(p));
      if (m) {
        if (!m->dir) {
          return fs_error(ENOTDIR, fmt::format("{}: {} is a file, not a directory", path, p));
        }
        break;
      }
      deepest_missing = p;
    }
    if (deepest_missing != path) {
      return fs_error(ENOENT, fmt::format("{}: directory {} does not exist; create it first "
                                          "(mkdir)",
                                          path, deepest_missing));
    }
    return fs_error(ENOENT, fmt::format("no such file or directory: {}", path));
  }

  // The parent of a path about to be created: must exist and be a directory. (Its PostgreSQL
  // twin, dbos_fs_lock_parent, locks it FOR UPDATE: a concurrent rmdir waits, and two FOR SHARE
  // holders upgrading to update its mtime would deadlock.) Creates in one directory serialize,
  // as they do on the directory inode's lock in a kernel filesystem.
  Result<Meta> parent_dir(const std::string& path) {
    const std::string parent = parent_of(path);
    SLUICE_ASSIGN_OR_RETURN(Meta m, existing(parent, "meta_for_update"));
    if (!m.dir) {
      return fs_error(ENOTDIR, fmt::format("{}: {} is a file, not a directory", path, parent));
    }
    return m;
  }

  Status check_file(const std::string& path, const Meta& m) {
    if (m.dir) {
      return fs_error(EISDIR, fmt::format("{} is a directory", path));
    }
    return {};
  }

  Status insert(const std::string& path, bool dir, uint32_t mode, int64_t block_size) {
    Value f_id;
    Value layout;
    if (!dir) {
      SLUICE_ASSIGN_OR_RETURN(QueryResult id, run("next_f_id", {}));
      f_id = value_to_int(id.rows.at(0).at(0)).value_or(0);
      layout = std::string(file_layout_name(options.layout));
    }
    const int64_t t = now_us();
    SLUICE_ASSIGN_OR_RETURN(
        QueryResult r,
        run("insert_entry", {path, parent_of(path), std::string(dir ? "dir" : "file"), options.user,
                             static_cast<int64_t>(mode & 07777), home_partition, f_id, layout,
                             dir ? int64_t{0} : block_size, t}));
    if (r.rows_changed == 0) {
      return fs_error(EEXIST, fmt::format("{} already exists", path));
    }
    return exec("touch", {parent_of(path), t});
  }

  // Quota and size limit for a file growing from `old_size` to `new_size`.
  Status charge(const Meta& m, const std::string& path, int64_t old_size, int64_t new_size) {
    if (new_size > fs_internal::max_file_bytes()) {
      return fs_error(EFBIG, fmt::format("{} would grow to {} bytes, past dbos.fs_max_file_bytes "
                                         "= {}",
                                         path, new_size, fs_internal::max_file_bytes()));
    }
    const int64_t delta = new_size - old_size;
    if (delta == 0) {
      return {};
    }
    if (delta > 0) {
      SLUICE_ASSIGN_OR_RETURN(QueryResult u, run("user_get", {m.owner}));
      if (!u.rows.empty()) {
        const int64_t quota = value_to_int(u.rows[0][1]).value_or(0);
        const int64_t used = value_to_int(u.rows[0][2]).value_or(0);
        if (quota > 0 && used + delta > quota) {
          return fs_error(EDQUOT, fmt::format("{}: user {} would use {} bytes, over the quota "
                                              "of {} bytes (set_quota)",
                                              path, m.owner, used + delta, quota));
        }
      }
    }
    return exec("user_add_bytes", {m.owner, delta});
  }

  Result<QueryResult> read_blocks(const Meta& m, int64_t first, int64_t last) {
    if (m.layout == FileLayout::kParallel) {
      return run("parallel_read", {m.f_id, first, last});
    }
    return run("localized_read", {m.p_key, m.f_id, first, last});
  }

  Status write_block(const Meta& m, int64_t block_no, std::string bytes) {
    if (m.layout == FileLayout::kParallel) {
      const int64_t n = static_cast<int64_t>(partition_keys.size());
      return exec("parallel_write",
                  {m.f_id, block_no, partition_keys[static_cast<size_t>(block_no % n)],
                   Blob{std::move(bytes)}});
    }
    return exec("localized_write", {m.p_key, m.f_id, block_no, Blob{std::move(bytes)}});
  }

  Status delete_blocks_from(const Meta& m, int64_t block_no) {
    if (m.layout == FileLayout::kParallel) {
      return exec("parallel_delete_from", {m.f_id, block_no});
    }
    return exec("localized_delete_from", {m.p_key, m.f_id, block_no});
  }

  Result<std::string> read_locked(const std::string& path, const Meta& m, int64_t offset,
                                  int64_t length) {
    SLUICE_RETURN_IF_ERROR(check_file(path, m));
    if (offset >= m.size || length == 0) {
      return std::string();
    }
    const int64_t n = std::min(length, m.size - offset);
    const int64_t bs = m.block_size;
    std::string out(static_cast<size_t>(n), '\0');
    SLUICE_ASSIGN_OR_RETURN(QueryResult r, read_blocks(m, offset / bs, (offset + n - 1) / bs));
    copy_blocks(r.rows, 0, bs, offset, out);
    return out;
  }

  Status write_locked(const std::string& path, Meta& m, int64_t offset, std::string_view data) {
    SLUICE_RETURN_IF_ERROR(check_file(path, m));
    if (data.empty()) {
      return {};
    }
    const auto len = static_cast<int64_t>(data.size());
    if (offset > fs_internal::max_file_bytes() - len) {  // also keeps offset + len from overflowing
      return fs_error(EFBIG, fmt::format("{}: a write of {} bytes at offset {} ends past "
                                         "dbos.fs_max_file_bytes = {}",
                                         path, len, offset, fs_internal::max_file_bytes()));
    }
    const int64_t new_size = std::max(m.size, offset + len);
    SLUICE_RETURN_IF_ERROR(charge(m, path, m.size, new_size));
    const int64_t bs = m.block_size;
    const int64_t first = offset / bs;
    const int64_t last = (offset + len - 1) / bs;
    // Blocks written only in part keep the rest of their bytes: read the two edge blocks.
    std::map<int64_t, std::string> edges;
    const bool first_partial = offset % bs != 0;
    const bool last_partial = (offset + len) % bs != 0;
    if (first_partial || last_partial) {
      SLUICE_ASSIGN_OR_RETURN(QueryResult r, read_blocks(m, first, last));
      for (const Row& row : r.rows) {
        const int64_t b = value_to_int(row[0]).value_or(0);
        if (b == first || b == last) {
          edges[b] = blob_bytes(row[1]);
        }
      }
    }
    for (int64_t b = first; b <= last; ++b) {
      const int64_t block_start = b * bs;
      const int64_t from = std::max(offset, block_start);
      const int64_t to = std::min(offset + len, block_start + bs);
      std::string bytes;
      auto it = edges.find(b);
      if (it != edges.end()) {
        bytes = std::move(it->second);
      }
      // Stored blocks end at the last byte written: the tail of a short block is a hole.
      const auto need = static_cast<size_t>(to - block_start);
      if (bytes.size() < need) {
        bytes.resize(need, '\0');
      }
      std::copy_n(data.data() + (from - offset), to - from, bytes.data() + (from - block_start));
      SLUICE_RETURN_IF_ERROR(write_block(m, b, std::move(bytes)));
    }
    SLUICE_RETURN_IF_ERROR(exec("set_size", {path, new_size, now_us()}));
    m.size = new_size;
    return {};
  }

  Status truncate_locked(const std::string& path, Meta& m, int64_t size) {
    SLUICE_RETURN_IF_ERROR(check_file(path, m));
    SLUICE_RETURN_IF_ERROR(charge(m, path, m.size, size));
    if (size < m.size) {
      const int64_t bs = m.block_size;
      // Blocks wholly past the end go; the last one is cut so a later growth reads zeros.
      const int64_t keep_blocks = (size + bs - 1) / bs;
      SLUICE_RETURN_IF_ERROR(delete_blocks_from(m, keep_blocks));
      if (size % bs != 0) {
        const int64_t b = size / bs;
        SLUICE_ASSIGN_OR_RETURN(QueryResult r, read_blocks(m, b, b));
        if (!r.rows.empty()) {
          std::string bytes = blob_bytes(r.rows[0][1]);
          if (static_cast<int64_t>(bytes.size()) > size % bs) {
            bytes.resize(static_cast<size_t>(size % bs));
            SLUICE_RETURN_IF_ERROR(write_block(m, b, std::move(bytes)));
          }
        }
      }
    }
    SLUICE_RETURN_IF_ERROR(exec("set_size", {path, size, now_us()}));
    m.size = size;
    return {};
  }

  Status remove_file(const std::string& path, const Meta& m) {
    SLUICE_RETURN_IF_ERROR(delete_blocks_from(m, 0));
    if (m.size != 0) {
      SLUICE_RETURN_IF_ERROR(exec("user_add_bytes", {m.owner, -m.size}));
    }
    return exec("delete_entry", {path});
  }
};

FileSystem::FileSystem(std::shared_ptr<Database> db, std::unique_ptr<Session> session,
                       FsOptions options)
    : db_(std::move(db)),
      session_(std::move(session)),
      options_(std::move(options)),
      impl_(std::make_unique<Impl>()) {}

FileSystem::~FileSystem() = default;

Result<std::unique_ptr<FileSystem>> FileSystem::open(std::shared_ptr<Database> db,
                                                     FsOptions options) {
  if (db == nullptr) {
    return invalid_argument("FileSystem::open: no database");
  }
  if (options.user.empty()) {
    options.user = os_user();
  }
  if (options.block_size == 0) {
    options.block_size = kBlockSize.get();
  }
  if (options.block_size < 64 || options.block_size > (1 << 20)) {
    return fs_error(EINVAL,
                    fmt::format("block size {} is outside 64 B .. 1 MiB", options.block_size));
  }
  const char* schema = embedded_text(db->dialect(), "fs_schema.sql");
  if (schema == nullptr) {
    return internal_error("the dbos library was built without fs_schema.sql");
  }
  SLUICE_ASSIGN_OR_RETURN(auto session, db->connect());
  auto fs = std::unique_ptr<FileSystem>(new FileSystem(db, std::move(session), std::move(options)));
  Impl& impl = *fs->impl_;
  impl.session = fs->session_.get();
  impl.sql = &statements(db->dialect());
  impl.options = fs->options_;
  Session& s = *fs->session_;
  const Status installed =
      s.transact(
           [&]() -> Status {
             if (s.dialect() == Dialect::kPostgres) {
               // One installer at a time: CREATE … IF NOT EXISTS races on the catalogs.
               SLUICE_RETURN_IF_ERROR(s.query("SELECT pg_advisory_xact_lock(1935894371)").status());
             }
             // The script takes exclusive locks (DDL) on PostgreSQL: run it only once.
             SLUICE_ASSIGN_OR_RETURN(QueryResult present, impl.run("installed", {}));
             if (value_to_int(present.rows.at(0).at(0)).value_or(0) == 0) {
               SLUICE_RETURN_IF_ERROR(s.execute_script(schema));
             }
             if (s.dialect() == Dialect::kPostgres) {
               SLUICE_RETURN_IF_ERROR(impl.install_functions());
             }
             SLUICE_ASSIGN_OR_RETURN(QueryResult n, impl.run("partitions", {}));
             if (value_to_int(n.rows.at(0).at(0)).value_or(0) == 0) {
               for (int64_t p = 0; p < kPartitions.get(); ++p) {
                 SLUICE_RETURN_IF_ERROR(impl.exec("add_partition", {p}));
               }
             }
             SLUICE_ASSIGN_OR_RETURN(QueryResult keys, impl.run("partition_keys", {}));
             impl.partition_keys.clear();
             for (const Row& row : keys.rows) {
               impl.partition_keys.push_back(value_to_int(row[0]).value_or(0));
             }
             SLUICE_RETURN_IF_ERROR(impl.exec("add_root", {now_us()}));
             SLUICE_RETURN_IF_ERROR(impl.add_user(impl.options.user));
             SLUICE_ASSIGN_OR_RETURN(QueryResult u, impl.run("user_get", {impl.options.user}));
             impl.home_partition = value_to_int(u.rows.at(0).at(0)).value_or(0);
             return {};
           },
           true)
          .with_context("installing the dbos filesystem tables");
  if (!installed.is_ok()) {
    return installed;
  }
  if (s.dialect() == Dialect::kPostgres) {
    impl.pg = std::make_unique<PgFs>(s, fs->options_, impl.home_partition);
  }
  return fs;
}

Status FileSystem::create(std::string_view path, uint32_t mode, bool exclusive) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (impl_->pg) {
    return impl_->pg->create(p, mode, exclusive);
  }
  return session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto m, impl_->meta(p, "meta_for_update"));
    if (m) {
      if (m->dir) {
        return fs_error(EISDIR, fmt::format("{} is a directory", p));
      }
      if (exclusive) {
        return fs_error(EEXIST, fmt::format("{} already exists", p));
      }
      return {};
    }
    SLUICE_RETURN_IF_ERROR(impl_->parent_dir(p).status());
    return impl_->insert(p, false, mode, options_.block_size);
  });
}

Status FileSystem::open_file(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (impl_->pg) {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->pg->stat(p));
    return impl_->check_file(p, m);
  }
  return impl_->read_txn([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p));
    return impl_->check_file(p, m);
  });
}

Result<std::string> FileSystem::read(std::string_view path, int64_t offset, int64_t length) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (offset < 0 || length < 0) {
    return fs_error(EINVAL, fmt::format("read of {}: negative offset or length", p));
  }
  if (impl_->pg) {
    return impl_->pg->read(p, offset, length);
  }
  std::string out;
  const Status txn = impl_->read_txn([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_share"));
    SLUICE_ASSIGN_OR_RETURN(out, impl_->read_locked(p, m, offset, length));
    return {};
  });
  if (!txn.is_ok()) {
    return txn;
  }
  return out;
}

Result<int64_t> FileSystem::write(std::string_view path, int64_t offset, std::string_view data) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (offset < 0) {
    return fs_error(EINVAL, fmt::format("write to {}: negative offset", p));
  }
  if (impl_->pg) {
    SLUICE_RETURN_IF_ERROR(impl_->pg->write(p, offset, data));
    return static_cast<int64_t>(data.size());
  }
  const Status txn = session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_update"));
    return impl_->write_locked(p, m, offset, data);
  });
  if (!txn.is_ok()) {
    return txn;
  }
  return static_cast<int64_t>(data.size());
}

Status FileSystem::put(std::string_view path, std::string_view data, uint32_t mode) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (impl_->pg) {
    return impl_->pg->put(p, data, mode);
  }
  const auto put_locked = [&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto m, impl_->meta(p, "meta_for_update"));
    if (!m) {
      SLUICE_RETURN_IF_ERROR(impl_->parent_dir(p).status());
      SLUICE_RETURN_IF_ERROR(impl_->insert(p, false, mode, options_.block_size));
      SLUICE_ASSIGN_OR_RETURN(m, impl_->meta(p, "meta_for_update"));
    }
    SLUICE_RETURN_IF_ERROR(impl_->truncate_locked(p, *m, 0));
    return impl_->write_locked(p, *m, 0, data);
  };
  if (!session_->in_transaction()) {
    return session_->transact(put_locked);
  }
  // Inside a batch: a put that fails after its create (EDQUOT, EFBIG) leaves none of itself for
  // the batch to commit, as every other operation, which fails before it changes a row.
  SLUICE_RETURN_IF_ERROR(impl_->exec("savepoint", {}));
  const Status s = put_locked();
  if (!s.is_ok()) {
    SLUICE_RETURN_IF_ERROR(impl_->exec("rollback_to_savepoint", {}));
  }
  SLUICE_RETURN_IF_ERROR(impl_->exec("release_savepoint", {}));
  return s;
}

Status FileSystem::truncate(std::string_view path, int64_t size) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (size < 0) {
    return fs_error(EINVAL, fmt::format("truncate of {} to a negative size", p));
  }
  if (impl_->pg) {
    return impl_->pg->truncate(p, size);
  }
  return session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_update"));
    return impl_->truncate_locked(p, m, size);
  });
}

Status FileSystem::unlink(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (impl_->pg) {
    return impl_->pg->unlink(p);
  }
  return session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_update"));
    SLUICE_RETURN_IF_ERROR(impl_->check_file(p, m));
    SLUICE_RETURN_IF_ERROR(impl_->remove_file(p, m));
    return impl_->exec("touch", {parent_of(p), now_us()});
  });
}

Status FileSystem::mkdir(std::string_view path, uint32_t mode) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (p == "/") {
    return fs_error(EEXIST, "/ already exists");
  }
  if (impl_->pg) {
    return impl_->pg->mkdir(p, mode);
  }
  return session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(impl_->parent_dir(p).status());
    return impl_->insert(p, true, mode, 0);
  });
}

Status FileSystem::rmdir(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (p == "/") {
    return fs_error(EBUSY, "/ cannot be removed");
  }
  if (impl_->pg) {
    return impl_->pg->rmdir(p);
  }
  return session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_update"));
    if (!m.dir) {
      return fs_error(ENOTDIR, fmt::format("{} is a file, not a directory (use unlink)", p));
    }
    SLUICE_ASSIGN_OR_RETURN(QueryResult c, impl_->run("has_children", {p}));
    if (!c.rows.empty()) {
      return fs_error(ENOTEMPTY, fmt::format("directory {} is not empty", p));
    }
    SLUICE_RETURN_IF_ERROR(impl_->exec("delete_entry", {p}));
    return impl_->exec("touch", {parent_of(p), now_us()});
  });
}

Status FileSystem::rename(std::string_view from, std::string_view to) {
  SLUICE_ASSIGN_OR_RETURN(std::string src, normalize_path(from));
  SLUICE_ASSIGN_OR_RETURN(std::string dst, normalize_path(to));
  if (src == "/" || dst == "/") {
    return fs_error(EBUSY, "/ cannot be renamed or replaced");
  }
  if (dst.size() > src.size() && dst.starts_with(src) && dst[src.size()] == '/') {
    return fs_error(EINVAL, fmt::format("cannot move {} into its own subdirectory {}", src, dst));
  }
  if (impl_->pg) {
    return impl_->pg->rename(src, dst);
  }
  return session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(src, "meta_for_update"));
    SLUICE_RETURN_IF_ERROR(impl_->parent_dir(dst).status());
    if (src == dst) {
      return {};
    }
    SLUICE_ASSIGN_OR_RETURN(auto target, impl_->meta(dst, "meta_for_update"));
    if (target) {
      if (m.dir && !target->dir) {
        return fs_error(ENOTDIR, fmt::format("cannot replace file {} with directory {}", dst, src));
      }
      if (!m.dir && target->dir) {
        return fs_error(EISDIR, fmt::format("cannot replace directory {} with file {}", dst, src));
      }
      if (target->dir) {
        SLUICE_ASSIGN_OR_RETURN(QueryResult c, impl_->run("has_children", {dst}));
        if (!c.rows.empty()) {
          return fs_error(ENOTEMPTY, fmt::format("directory {} is not empty", dst));
        }
        SLUICE_RETURN_IF_ERROR(impl_->exec("delete_entry", {dst}));
      } else {
        SLUICE_RETURN_IF_ERROR(impl_->remove_file(dst, *target));
      }
    }
    const int64_t t = now_us();
    SLUICE_RETURN_IF_ERROR(impl_->exec("rename_one", {src, dst, parent_of(dst), t}));
    if (m.dir) {
      SLUICE_RETURN_IF_ERROR(impl_->exec("rename_subtree", {src, dst}));
    }
    SLUICE_RETURN_IF_ERROR(impl_->exec("touch", {parent_of(src), t}));
    return impl_->exec("touch", {parent_of(dst), t});
  });
}

Result<std::vector<DirEntry>> FileSystem::readdir(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  std::vector<DirEntry> out;
  if (impl_->pg) {
    return impl_->pg->readdir(p);
  }
  const Status txn = impl_->read_txn([&]() -> Status {
    out.clear();
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_share"));
    if (!m.dir) {
      return fs_error(ENOTDIR, fmt::format("{} is a file, not a directory", p));
    }
    SLUICE_ASSIGN_OR_RETURN(QueryResult r, impl_->run("list", {p}));
    for (const Row& row : r.rows) {
      out.push_back(dir_entry(row));
    }
    return {};
  });
  if (!txn.is_ok()) {
    return txn;
  }
  return out;
}

Result<FileStat> FileSystem::stat(std::string_view path) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  Meta m;
  if (impl_->pg) {
    SLUICE_ASSIGN_OR_RETURN(m, impl_->pg->stat(p));
  } else {
    const Status txn = impl_->read_txn([&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(m, impl_->existing(p));
      return {};
    });
    if (!txn.is_ok()) {
      return txn;
    }
  }
  return FileStat{.path = p,
                  .type = m.dir ? FileType::kDirectory : FileType::kFile,
                  .size = m.size,
                  .mode = static_cast<uint32_t>(m.mode),
                  .owner = m.owner,
                  .layout = m.layout,
                  .block_size = m.block_size,
                  .atime_us = m.atime_us,
                  .mtime_us = m.mtime_us,
                  .ctime_us = m.ctime_us};
}

Status FileSystem::chmod(std::string_view path, uint32_t mode) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (impl_->pg) {
    return impl_->pg->chmod(p, mode);
  }
  return session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(impl_->existing(p, "meta_for_update").status());
    return impl_->exec("set_mode", {p, static_cast<int64_t>(mode & 07777), now_us()});
  });
}

Status FileSystem::set_times(std::string_view path, int64_t atime_us, int64_t mtime_us) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
  if (impl_->pg) {
    return impl_->pg->set_times(p, atime_us, mtime_us);
  }
  return session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(Meta m, impl_->existing(p, "meta_for_update"));
    return impl_->exec("set_times", {p, atime_us < 0 ? m.atime_us : atime_us,
                                     mtime_us < 0 ? m.mtime_us : mtime_us, now_us()});
  });
}

Status FileSystem::batch(const std::function<Status()>& fn) {
  if (session_->dialect() != Dialect::kPostgres || session_->in_transaction()) {
    return session_->transact(fn);
  }
  // PostgreSQL locks a batch's rows in the order the batch touches them: batches over the same
  // files in other orders deadlock, and under many clients again on every retry. Every batch
  // holds one advisory lock shared; a retry takes it exclusively, so it runs with no other batch
  // beside it (later batches queue behind it) and cannot deadlock with one again.
  int tries = 0;
  return session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(impl_->exec(tries++ == 0 ? "batch_shared" : "batch_exclusive", {}));
    return fn();
  });
}

Status FileSystem::batch(std::span<const std::string> paths, bool write,
                         const std::function<Status()>& fn) {
  std::vector<std::string> normalized;
  normalized.reserve(paths.size());
  for (const std::string& path : paths) {
    SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(path));
    normalized.push_back(std::move(p));
  }
  if (session_->dialect() != Dialect::kPostgres) {
    return batch(fn);
  }
  // The statement sorts them (the "C" order of the paths) and locks them in that order.
  const std::string list = nlohmann::json(normalized).dump();
  return batch([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(impl_->exec(write ? "lock_for_update" : "lock_for_share", {list}));
    return fn();
  });
}

Status FileSystem::set_quota(std::string_view user, int64_t bytes) {
  if (bytes < 0) {
    return fs_error(EINVAL, "a quota is 0 (unlimited) or a positive number of bytes");
  }
  return session_->transact([&]() -> Status {
    SLUICE_RETURN_IF_ERROR(impl_->add_user(std::string(user)));
    return impl_->exec("user_set_quota", {std::string(user), bytes});
  });
}

Result<QueryResult> FileSystem::usage_by_user(int64_t min_size) {
  return impl_->run("usage_by_user", {min_size});
}

Result<QueryResult> FileSystem::largest_files(int64_t min_size, int64_t limit) {
  return impl_->run("largest_files", {min_size, limit});
}

Result<QueryResult> FileSystem::changed_since(int64_t since_us) {
  return impl_->run("changed_since", {since_us});
}

Result<QueryResult> FileSystem::directory_sizes(std::string_view root) {
  SLUICE_ASSIGN_OR_RETURN(std::string p, normalize_path(root));
  return impl_->run("directory_sizes", {p});
}

}  // namespace sluice::dbos
