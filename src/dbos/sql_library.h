// Internal: the SQL of every service, per dialect, as compiled into the library (embed_sql.cmake)
// plus scheduler files from the knob `dbos.scheduler_dir`.
//
// File roles, by name, under sql/<dialect>/:
//   NNN_<what>.sql      schema migration to version NNN (applied in order, once)
//   services.sql        the services. SQLite: sections `-- name: <procedure>` each holding the
//                       statements of one procedure. PostgreSQL: CREATE FUNCTION dbos_<procedure>.
//   sched_<name>.sql    one scheduler. SQLite: a procedure `sched_<name>` in the same form, the
//                       whole task. PostgreSQL: its pick alone, CREATE FUNCTION dbos_pick_<name>,
//                       which dbos_sched and dbos_sched_batch (services.sql) call.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/dbos/database.h"

namespace sluice::dbos {
namespace detail {
struct EmbeddedSqlFile {
  const char* path;  // "<dialect>/<file>.sql"
  const char* text;
};
const std::vector<EmbeddedSqlFile>& embedded_sql_files();
}  // namespace detail

struct Migration {
  int version = 0;
  std::string name;
  std::string sql;
};

class SqlLibrary {
 public:
  // The embedded files of `dialect`, plus `<extra_dir>/<dialect>/sched_*.sql` when extra_dir is
  // not empty.
  static Result<SqlLibrary> load(Dialect dialect, const std::string& extra_dir);

  const std::vector<Migration>& migrations() const { return migrations_; }
  // SQLite: procedure name → statements text. PostgreSQL: empty (the functions live in scripts).
  const std::map<std::string, std::string, std::less<>>& procedures() const { return procedures_; }
  // PostgreSQL: the scripts that (re)create the service and scheduler functions.
  const std::vector<std::string>& install_scripts() const { return install_scripts_; }
  const std::vector<std::string>& schedulers() const { return schedulers_; }
  // A stable digest of the install scripts (PostgreSQL reinstalls only when it changes).
  std::string install_digest() const;

 private:
  Status add_file(Dialect dialect, std::string_view file, std::string_view text);

  std::vector<Migration> migrations_;
  std::map<std::string, std::string, std::less<>> procedures_;
  std::vector<std::string> install_scripts_;
  std::vector<std::string> schedulers_;
};

// A stable digest of SQL scripts (FNV-1a, hex): a script installed again only when it changed.
std::string script_digest(const std::vector<std::string>& scripts);

// Splits a SQLite procedure section file into `-- name:` sections.
std::map<std::string, std::string, std::less<>> split_sections(std::string_view text);

}  // namespace sluice::dbos
