// sluice::wf::StudyStore — studies, trials, parameter values, metrics, outcomes, timings and the
// host-settings journal, kept in SQL tables through the dbos backend (an SQLite file by default,
// or PostgreSQL). The tables (wf_study, wf_trial, wf_param, wf_metric, wf_journal) are created on
// open from wayfinder's own schema file and may be queried directly with SQL.
//
// Every write is one transaction, so a study stopped at any moment (Ctrl-C, kill -9) keeps every
// finished trial; a trial that was running is left `pending` and re-evaluated on resume.
//
// Thread safety: a StudyStore owns one dbos Session and is used by one thread at a time.
// Failures are Status values from the backend, with the table named.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/wayfinder/search.h"

namespace sluice::dbos {
class Database;
class Session;
}  // namespace sluice::dbos

namespace sluice::wf {

struct StudyInfo {
  int64_t id = 0;
  std::string name;
  std::string job_path;
  std::string job_text;
  std::string search;
  uint64_t seed = 0;
  int64_t created_ns = 0;  // wall clock (Unix epoch)
  std::string model_in;    // the saved model it started warm from ("" = cold)
};

enum class TrialRole { kDefault, kSearch, kConfirm };
std::string_view trial_role_name(TrialRole r);

struct Trial {
  int64_t iteration = 0;
  TrialRole role = TrialRole::kSearch;
  Configuration config;
  bool pending = false;  // started, never finished (the study was stopped mid-trial)
  Outcome outcome = Outcome::kOk;
  std::map<std::string, double> metrics;               // medians
  std::map<std::string, std::vector<double>> samples;  // every repetition
  std::string message;                                 // why it failed, briefly
  int64_t started_ns = 0;                              // wall clock
  double build_s = 0;                                  // 0 when the build came from the cache
  double eval_s = 0;                                   // start to stop
  double search_s = 0;  // the searcher's propose() for this trial (0: default, confirm)
  bool build_cached = false;
};

// One host-wide change, written before it is applied.
struct JournalEntry {
  int64_t id = 0;
  std::string kind;  // "file" (path ← value) or "netns" (a namespace to delete)
  std::string target;
  std::string old_value;
  std::string new_value;
  int64_t owner_pid = 0;
};

class StudyStore {
 public:
  // Opens the store at a dbos URL ("sqlite:/path/studies.db", "postgresql://…"); an empty URL
  // takes the knob wayfinder.store, else sqlite:<wayfinder.work_dir>/studies.db.
  static Result<std::unique_ptr<StudyStore>> open(std::string url = {});
  ~StudyStore();

  const std::string& url() const { return url_; }

  // The study named `name`, created from `info` when it does not exist yet.
  Result<StudyInfo> open_study(const StudyInfo& info);
  Result<std::optional<StudyInfo>> find_study(const std::string& name);
  Result<std::vector<StudyInfo>> list_studies();

  // Every trial of a study, by iteration; pending ones included.
  Result<std::vector<Trial>> trials(int64_t study_id);
  // Records that a trial started (pending), then finishes it.
  Status begin_trial(int64_t study_id, const Trial& t);
  Status finish_trial(int64_t study_id, const Trial& t);

  // Host-settings journal.
  Result<int64_t> journal_add(const JournalEntry& e);
  Status journal_done(int64_t id);
  Result<std::vector<JournalEntry>> journal_open_entries();

  dbos::Session& session() { return *session_; }

 private:
  StudyStore() = default;
  std::string sql(std::string_view text) const;  // ?N → $N for PostgreSQL
  std::string url_;
  std::shared_ptr<dbos::Database> db_;
  std::unique_ptr<dbos::Session> session_;
};

}  // namespace sluice::wf
