// sluice::dbos::FileSystem — the DBOS filesystems (PVLDB 2021, §4.4): files as rows of blocks.
//
// Every file and directory is one row of `Directory`, keyed by its fully qualified path, so
// opening a file is one key lookup (no directory walk) and open/close are no-ops. A file's bytes
// are rows of `block_size` bytes in one of two block tables, chosen per file when it is created:
//
//   localized  `Localized_file`: every block of every file of a user on the user's home
//              partition (`Users.home_partition`): small files, one partition per operation.
//   parallel   `Parallel_file`: block b on the (b mod n)-th of the n partitions in `Map`: big
//              files whose block ranges fan out over every partition.
//
// The block size is the knob `dbos.fs_block_size` (or FsOptions::block_size) read when a file is
// created and stored with the file, so changing it affects new files only.
//
// Every call is one transaction: a write spanning many blocks, a truncate, a rename that moves a
// directory subtree (every descendant's path is rewritten) commits whole or not at all, and a
// crash mid-call leaves the old state. On PostgreSQL each call is one PL/pgSQL function, so one
// round trip to the server. Blocks not written (holes) read as zeros.
//
// Errors are Status values whose message starts with the POSIX errno name ("ENOENT: no such file
// /a/b …"); error_number() recovers the number (FUSE returns it to the kernel):
//   ENOENT missing path or parent      EEXIST exists            ENOTEMPTY rmdir of a non-empty dir
//   EISDIR file op on a directory      ENOTDIR path through a file or dir op on a file
//   ENAMETOOLONG name > 255 or path > 4095 bytes                 EINVAL bad path, bad argument
//   EFBIG past dbos.fs_max_file_bytes  EDQUOT past the user's quota (set_quota)
//   EBUSY removing or renaming "/"
//
//   SLUICE_ASSIGN_OR_RETURN(auto db, dbos::Database::open("sqlite:/var/tmp/os.db"));
//   SLUICE_ASSIGN_OR_RETURN(auto fs, dbos::FileSystem::open(db, {.layout =
//   FileLayout::kParallel})); SLUICE_RETURN_IF_ERROR(fs->mkdir("/data"));
//   SLUICE_RETURN_IF_ERROR(fs->create("/data/a.bin"));
//   SLUICE_RETURN_IF_ERROR(fs->write("/data/a.bin", 10'000, "bytes").status());
//   SLUICE_ASSIGN_OR_RETURN(std::string got, fs->read("/data/a.bin", 0, 10'005));  // zeros,
//   "bytes"
//
// Thread safety: a FileSystem owns one Session and is used by one thread at a time; open one per
// thread (or process) on the same Database. Concurrent writers to one file are serialized by the
// database (SQLite's write lock, a PostgreSQL row lock on the file's Directory row).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/common/status.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {

enum class FileLayout { kLocalized, kParallel };
std::string_view file_layout_name(FileLayout l);  // "localized", "parallel"
Result<FileLayout> parse_file_layout(std::string_view name);

enum class FileType { kFile, kDirectory };

struct FileStat {
  std::string path;
  FileType type = FileType::kFile;
  int64_t size = 0;   // bytes (0 for directories)
  uint32_t mode = 0;  // permission bits (07777)
  std::string owner;  // Users.user_name
  FileLayout layout = FileLayout::kLocalized;
  int64_t block_size = 0;  // of this file (0 for directories)
  int64_t atime_us = 0;    // µs since the epoch
  int64_t mtime_us = 0;
  int64_t ctime_us = 0;
};

struct DirEntry {
  std::string name;  // the last component
  FileType type = FileType::kFile;
  int64_t size = 0;
};

struct FsOptions {
  std::string user;                            // owner of new entries; empty: the OS user
  FileLayout layout = FileLayout::kLocalized;  // layout of new files
  int64_t block_size = 0;                      // of new files; 0: the knob dbos.fs_block_size
};

class FileSystem {
 public:
  // Installs the filesystem tables if needed (fs_schema.sql of the dialect), fills `Map` with
  // `dbos.fs_partitions` partitions when it is empty, and registers the user.
  static Result<std::unique_ptr<FileSystem>> open(std::shared_ptr<Database> db,
                                                  FsOptions options = {});
  ~FileSystem();
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  const FsOptions& options() const { return options_; }
  Session& session() { return *session_; }

  // Creates an empty file. exclusive=false: an existing file is kept as it is (O_CREAT without
  // O_EXCL). The parent directory must exist.
  Status create(std::string_view path, uint32_t mode = 0644, bool exclusive = true);
  // Checks that `path` is a file (open and close are otherwise no-ops: names are fully
  // qualified and nothing is held open).
  Status open_file(std::string_view path);
  // Up to `length` bytes from `offset`; shorter at the end of the file, empty past it.
  Result<std::string> read(std::string_view path, int64_t offset, int64_t length);
  // Writes `data` at `offset` (past the end: the gap becomes a hole); returns bytes written.
  Result<int64_t> write(std::string_view path, int64_t offset, std::string_view data);
  // Replaces the whole contents, creating the file if missing: one transaction.
  Status put(std::string_view path, std::string_view data, uint32_t mode = 0644);
  Status truncate(std::string_view path, int64_t size);
  Status unlink(std::string_view path);
  Status mkdir(std::string_view path, uint32_t mode = 0755);
  Status rmdir(std::string_view path);
  // POSIX rename: replaces a file `to`, or an empty directory `to` with a directory; moving a
  // directory rewrites every descendant's path in the same transaction.
  Status rename(std::string_view from, std::string_view to);
  Result<std::vector<DirEntry>> readdir(std::string_view path);
  Result<FileStat> stat(std::string_view path);
  Status chmod(std::string_view path, uint32_t mode);
  // Negative leaves that time as it is.
  Status set_times(std::string_view path, int64_t atime_us, int64_t mtime_us);

  // Runs `fn`, which calls operations of this FileSystem, as one transaction: all of them or
  // none take effect (say, twenty block reads of different files in one transaction). A conflict
  // retries `fn` whole, so it must not have effects outside the database.
  Status batch(const std::function<Status()>& fn);
  // batch(fn) that first locks the entries at `paths` in path order: for writing, or (write =
  // false) only against writers. On PostgreSQL, batches that name what they touch this way never
  // deadlock with each other, whatever order `fn` then touches the entries in; unnamed batches
  // over the same files in other orders do, and one of them is then retried alone. Paths that do
  // not exist are not locked (`fn` finds them missing). SQLite has one writer at a time and never
  // deadlocks: it only checks the paths.
  Status batch(std::span<const std::string> paths, bool write, const std::function<Status()>& fn);

  // Bytes a user's files may hold in total (sum of sizes); 0 = unlimited. Writes past it: EDQUOT.
  Status set_quota(std::string_view user, int64_t bytes);

  // Analytics (fs_analytics.sql), each one SQL query:
  // per user, files of at least `min_size` bytes and their total size (the paper's query);
  Result<QueryResult> usage_by_user(int64_t min_size);
  // the `limit` largest files of at least `min_size` bytes;
  Result<QueryResult> largest_files(int64_t min_size, int64_t limit);
  // files modified at or after `since_us`;
  Result<QueryResult> changed_since(int64_t since_us);
  // every directory under `root` (itself included) with its files and bytes, recursively.
  Result<QueryResult> directory_sizes(std::string_view root);

  // Normalises an absolute path ("//a/./b/" → "/a/b", ".." resolved lexically) or says why not.
  static Result<std::string> normalize_path(std::string_view path);

 private:
  struct Impl;
  FileSystem(std::shared_ptr<Database> db, std::unique_ptr<Session> session, FsOptions options);

  std::shared_ptr<Database> db_;
  std::unique_ptr<Session> session_;
  FsOptions options_;
  std::unique_ptr<Impl> impl_;
};

// The POSIX errno a filesystem Status carries (ENOENT, EEXIST, …); 0 for OK; otherwise derived
// from the status code (EIO when nothing fits).
int error_number(const Status& s);

}  // namespace sluice::dbos
