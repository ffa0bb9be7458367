// Internal: the filesystem operations on PostgreSQL, each one call of a PL/pgSQL function of
// sql/postgres/fs_functions.sql (one round trip). FileSystem hands every operation here on
// PostgreSQL, after it has normalised and checked the paths and arguments; the SQLite path runs
// the statements of fs_ops.sql in fs.cc instead.
//
// A call outside a transaction is a transaction of its own, retried on conflicts; inside
// FileSystem::batch it is one statement of the batch, and a failed operation leaves the batch's
// transaction usable (the function undoes its own changes and returns the error). The error
// comes back as the Status the SQLite path gives for the same mistake.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "dbos/fs/fs_internal.h"
#include "sluice/common/result.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/fs.h"

namespace sluice::dbos {

class PgFs {
 public:
  // `options` (owner, layout and block size of new entries) must outlive this.
  PgFs(Session& session, const FsOptions& options, int64_t home_partition)
      : session_(session), options_(options), home_partition_(home_partition) {}

  Status create(const std::string& path, uint32_t mode, bool exclusive);
  Status mkdir(const std::string& path, uint32_t mode);
  Status unlink(const std::string& path);
  Status rmdir(const std::string& path);
  Status rename(const std::string& from, const std::string& to);
  Result<fs_internal::Meta> stat(const std::string& path);
  Result<std::vector<DirEntry>> readdir(const std::string& path);
  Result<std::string> read(const std::string& path, int64_t offset, int64_t length);
  Status write(const std::string& path, int64_t offset, std::string_view data);
  Status put(const std::string& path, std::string_view data, uint32_t mode);
  Status truncate(const std::string& path, int64_t size);
  Status chmod(const std::string& path, uint32_t mode);
  Status set_times(const std::string& path, int64_t atime_us, int64_t mtime_us);

 private:
  // dbos_<function>(args); `idempotent`: safe to repeat after a lost connection.
  Result<QueryResult> call(std::string_view function, std::initializer_list<Arg> args,
                           bool idempotent);

  Session& session_;
  const FsOptions& options_;
  int64_t home_partition_;
};

}  // namespace sluice::dbos
