// The study store on dbos: wayfinder's tables, created on open.
#include "sluice/wayfinder/store.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"

namespace sluice::wf {
namespace detail {
extern const char* const kSchemaSql;
}  // namespace detail

namespace {

const StringKnob kStore({.name = "wayfinder.store",
                         .default_value = "",
                         .stage = KnobStage::kStart,
                         .help = "dbos URL of the study store (empty: an SQLite file "
                                 "studies.db under wayfinder.work_dir)"});
const StringKnob kWorkDir({.name = "wayfinder.work_dir",
                           .default_value = "/var/tmp/sluice-wayfinder",
                           .stage = KnobStage::kStart,
                           .help = "where studies keep builds, run directories and the store"});

using dbos::Value;

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string text_of(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v))
    return *s;
  if (std::holds_alternative<std::monostate>(v))
    return "";
  return dbos::value_to_text(v);
}
int64_t int_of(const Value& v) {
  return dbos::value_to_int(v).value_or(0);
}
double double_of(const Value& v) {
  if (const auto* d = std::get_if<double>(&v))
    return *d;
  if (const auto* i = std::get_if<int64_t>(&v))
    return static_cast<double>(*i);
  if (const auto* s = std::get_if<std::string>(&v))
    return std::strtod(s->c_str(), nullptr);
  return 0;
}

std::string config_json(const Configuration& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : c)
    j[k] = v;
  return j.dump();
}
Configuration config_from_json(const std::string& s) {
  Configuration c;
  const auto j = nlohmann::json::parse(s, nullptr, false);
  if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      c[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return c;
}

}  // namespace

std::string_view trial_role_name(TrialRole r) {
  switch (r) {
    case TrialRole::kDefault: return "default";
    case TrialRole::kSearch: return "search";
    case TrialRole::kConfirm: return "confirm";
  }
  return "?";
}

std::string StudyStore::sql(std::string_view text) const {
  std::string s(text);
  if (db_->dialect() == dbos::Dialect::kPostgres) {
    for (auto& ch : s) {
      if (ch == '?')
        ch = '$';
    }
  }
  return s;
}

StudyStore::~StudyStore() = default;

Result<std::unique_ptr<StudyStore>> StudyStore::open(std::string url) {
  if (url.empty())
    url = kStore.get();
  if (url.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(kWorkDir.get(), ec);
    if (ec) {
      return io_error(fmt::format("cannot create {}: {}; set wayfinder.work_dir", kWorkDir.get(),
                                  ec.message()));
    }
    url = "sqlite:" + kWorkDir.get() + "/studies.db";
  }
  std::unique_ptr<StudyStore> store(new StudyStore());
  store->url_ = url;
  auto db = dbos::Database::open(url);
  if (!db)
    return db.status().with_context(fmt::format("study store {}", url));
  store->db_ = *db;
  auto session = store->db_->connect();
  if (!session)
    return session.status().with_context(fmt::format("study store {}", url));
  store->session_ = std::move(*session);
  SLUICE_RETURN_IF_ERROR(store->session_->execute_script(detail::kSchemaSql)
                             .with_context("creating wayfinder's tables"));
  // Stores made before wf_trial.search_s existed gain the column (the schema's CREATE TABLE IF
  // NOT EXISTS leaves an existing table as it is).
  if (!store->session_->query("SELECT search_s FROM wf_trial WHERE 1 = 0").is_ok()) {
    SLUICE_RETURN_IF_ERROR(
        store->session_
            ->execute_script(
                "ALTER TABLE wf_trial ADD COLUMN search_s DOUBLE PRECISION NOT NULL DEFAULT 0")
            .with_context("adding wf_trial.search_s to an older study store"));
  }
  if (!store->session_->query("SELECT model_in FROM wf_study WHERE 1 = 0").is_ok()) {
    SLUICE_RETURN_IF_ERROR(
        store->session_
            ->execute_script("ALTER TABLE wf_study ADD COLUMN model_in TEXT NOT NULL DEFAULT ''")
            .with_context("adding wf_study.model_in to an older study store"));
  }
  return store;
}

Result<std::optional<StudyInfo>> StudyStore::find_study(const std::string& name) {
  const Value p[] = {name};
  SLUICE_ASSIGN_OR_RETURN(
      auto r, session_->query(sql("SELECT id, name, job_path, job_text, search, seed, created_ns, "
                                  "model_in FROM wf_study WHERE name = ?1"),
                              p));
  if (r.rows.empty())
    return std::optional<StudyInfo>();
  const auto& row = r.rows[0];
  StudyInfo s{.id = int_of(row[0]),
              .name = text_of(row[1]),
              .job_path = text_of(row[2]),
              .job_text = text_of(row[3]),
              .search = text_of(row[4]),
              .seed = static_cast<uint64_t>(int_of(row[5])),
              .created_ns = int_of(row[6]),
              .model_in = text_of(row[7])};
  return std::optional<StudyInfo>(std::move(s));
}

Result<std::vector<StudyInfo>> StudyStore::list_studies() {
  SLUICE_ASSIGN_OR_RETURN(auto r, session_->query("SELECT name FROM wf_study ORDER BY id"));
  std::vector<StudyInfo> out;
  for (const auto& row : r.rows) {
    SLUICE_ASSIGN_OR_RETURN(auto s, find_study(text_of(row[0])));
    if (s)
      out.push_back(*s);
  }
  return out;
}

Result<StudyInfo> StudyStore::open_study(const StudyInfo& info) {
  SLUICE_ASSIGN_OR_RETURN(auto existing, find_study(info.name));
  if (existing)
    return *existing;
  StudyInfo created = info;
  Status st = session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto r,
                            session_->query("SELECT COALESCE(MAX(id), 0) + 1 FROM wf_study"));
    created.id = int_of(r.rows[0][0]);
    created.created_ns = wall_ns();
    const Value p[] = {created.id,         created.name,    created.job_path,
                       created.job_text,   created.search,  static_cast<int64_t>(created.seed),
                       created.created_ns, created.model_in};
    return session_
        ->query(sql("INSERT INTO wf_study (id, name, job_path, job_text, search, seed, "
                    "created_ns, model_in) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                p)
        .status();
  });
  SLUICE_RETURN_IF_ERROR(st.with_context("creating the study"));
  return created;
}

Result<std::vector<Trial>> StudyStore::trials(int64_t study_id) {
  const Value p[] = {study_id};
  SLUICE_ASSIGN_OR_RETURN(
      auto r, session_->query(sql("SELECT iteration, role, config, outcome, message, started_ns, "
                                  "build_s, build_cached, eval_s, search_s FROM wf_trial WHERE "
                                  "study_id = ?1 ORDER BY iteration"),
                              p));
  std::vector<Trial> out;
  std::map<int64_t, size_t> index;
  for (const auto& row : r.rows) {
    Trial t;
    t.iteration = int_of(row[0]);
    const std::string role = text_of(row[1]);
    t.role = role == "default"   ? TrialRole::kDefault
             : role == "confirm" ? TrialRole::kConfirm
                                 : TrialRole::kSearch;
    t.config = config_from_json(text_of(row[2]));
    const std::string outcome = text_of(row[3]);
    if (outcome == "pending") {
      t.pending = true;
    } else {
      SLUICE_ASSIGN_OR_RETURN(t.outcome, parse_outcome(outcome));
    }
    t.message = text_of(row[4]);
    t.started_ns = int_of(row[5]);
    t.build_s = double_of(row[6]);
    t.build_cached = int_of(row[7]) != 0;
    t.eval_s = double_of(row[8]);
    t.search_s = double_of(row[9]);
    index[t.iteration] = out.size();
    out.push_back(std::move(t));
  }
  SLUICE_ASSIGN_OR_RETURN(
      auto m, session_->query(sql("SELECT iteration, name, rep, value FROM wf_metric WHERE "
                                  "study_id = ?1 ORDER BY iteration, name, rep"),
                              p));
  for (const auto& row : m.rows) {
    auto it = index.find(int_of(row[0]));
    if (it == index.end())
      continue;
    Trial& t = out[it->second];
    const std::string name = text_of(row[1]);
    if (int_of(row[2]) < 0) {
      t.metrics[name] = double_of(row[3]);
    } else {
      t.samples[name].push_back(double_of(row[3]));
    }
  }
  return out;
}

Status StudyStore::begin_trial(int64_t study_id, const Trial& t) {
  return session_->transact([&]() -> Status {
    const Value del[] = {study_id, t.iteration};
    for (const char* table : {"wf_metric", "wf_param", "wf_trial"}) {
      SLUICE_RETURN_IF_ERROR(
          session_
              ->query(
                  sql(fmt::format("DELETE FROM {} WHERE study_id = ?1 AND iteration = ?2", table)),
                  del)
              .status());
    }
    const Value p[] = {study_id,
                       t.iteration,
                       std::string(trial_role_name(t.role)),
                       config_json(t.config),
                       std::string("pending"),
                       t.started_ns,
                       t.search_s};
    SLUICE_RETURN_IF_ERROR(
        session_
            ->query(sql("INSERT INTO wf_trial (study_id, iteration, role, config, outcome, "
                        "started_ns, search_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    p)
            .status());
    for (const auto& [k, v] : t.config) {
      const Value q[] = {study_id, t.iteration, k, v};
      SLUICE_RETURN_IF_ERROR(
          session_
              ->query(sql("INSERT INTO wf_param (study_id, iteration, name, value) VALUES (?1, "
                          "?2, ?3, ?4)"),
                      q)
              .status());
    }
    return {};
  });
}

Status StudyStore::finish_trial(int64_t study_id, const Trial& t) {
  return session_->transact([&]() -> Status {
    const Value p[] = {std::string(outcome_name(t.outcome)),
                       t.message,
                       t.build_s,
                       int64_t{t.build_cached ? 1 : 0},
                       t.eval_s,
                       study_id,
                       t.iteration};
    SLUICE_RETURN_IF_ERROR(
        session_
            ->query(sql("UPDATE wf_trial SET outcome = ?1, message = ?2, build_s = ?3, "
                        "build_cached = ?4, eval_s = ?5 WHERE study_id = ?6 AND iteration = ?7"),
                    p)
            .status());
    const auto insert = [&](const std::string& name, int64_t rep, double v) {
      const Value q[] = {study_id, t.iteration, name, rep, v};
      return session_
          ->query(sql("INSERT INTO wf_metric (study_id, iteration, name, rep, value) VALUES "
                      "(?1, ?2, ?3, ?4, ?5)"),
                  q)
          .status();
    };
    for (const auto& [name, v] : t.metrics)
      SLUICE_RETURN_IF_ERROR(insert(name, -1, v));
    for (const auto& [name, vs] : t.samples) {
      for (size_t i = 0; i < vs.size(); ++i) {
        SLUICE_RETURN_IF_ERROR(insert(name, static_cast<int64_t>(i), vs[i]));
      }
    }
    return {};
  });
}

Result<int64_t> StudyStore::journal_add(const JournalEntry& e) {
  int64_t id = 0;
  Status st = session_->transact([&]() -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto r,
                            session_->query("SELECT COALESCE(MAX(id), 0) + 1 FROM wf_journal"));
    id = int_of(r.rows[0][0]);
    const Value p[] = {id,          e.kind,      e.target,
                       e.old_value, e.new_value, e.owner_pid ? e.owner_pid : int64_t{getpid()},
                       wall_ns()};
    return session_
        ->query(sql("INSERT INTO wf_journal (id, kind, target, old_value, new_value, owner_pid, "
                    "created_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                p)
        .status();
  });
  SLUICE_RETURN_IF_ERROR(st.with_context("journalling a host change"));
  return id;
}

Status StudyStore::journal_done(int64_t id) {
  const Value p[] = {wall_ns(), id};
  return session_->query(sql("UPDATE wf_journal SET restored_ns = ?1 WHERE id = ?2"), p)
      .status()
      .with_context("closing a journal entry");
}

Result<std::vector<JournalEntry>> StudyStore::journal_open_entries() {
  SLUICE_ASSIGN_OR_RETURN(
      auto r, session_->query("SELECT id, kind, target, old_value, new_value, owner_pid FROM "
                              "wf_journal WHERE restored_ns IS NULL ORDER BY id DESC"));
  std::vector<JournalEntry> out;
  for (const auto& row : r.rows) {
    out.push_back({.id = int_of(row[0]),
                   .kind = text_of(row[1]),
                   .target = text_of(row[2]),
                   .old_value = text_of(row[3]),
                   .new_value = text_of(row[4]),
                   .owner_pid = int_of(row[5])});
  }
  return out;
}

}  // namespace sluice::wf
