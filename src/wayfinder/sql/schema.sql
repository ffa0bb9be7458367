-- wayfinder's study store. Portable SQL: the same statements run on SQLite and PostgreSQL 15.
-- Created (if absent) each time a store is opened; query it freely, e.g.
--   SELECT iteration, outcome, value FROM wf_trial JOIN wf_metric USING (study_id, iteration)
CREATE TABLE IF NOT EXISTS wf_study (
  id BIGINT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  job_path TEXT NOT NULL,
  job_text TEXT NOT NULL,
  search TEXT NOT NULL,
  seed BIGINT NOT NULL,
  created_ns BIGINT NOT NULL,
  model_in TEXT NOT NULL DEFAULT ''  -- the saved model the study started warm from ('' = cold)
);
CREATE TABLE IF NOT EXISTS wf_trial (
  study_id BIGINT NOT NULL REFERENCES wf_study (id),
  iteration BIGINT NOT NULL,
  role TEXT NOT NULL,              -- default, search, confirm
  config TEXT NOT NULL,            -- the configuration as JSON
  outcome TEXT NOT NULL,           -- pending, ok, build_failure, start_failure, crash, timeout,
                                   -- metric_missing
  message TEXT NOT NULL DEFAULT '',
  started_ns BIGINT NOT NULL,      -- Unix epoch
  build_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  build_cached BIGINT NOT NULL DEFAULT 0,
  eval_s DOUBLE PRECISION NOT NULL DEFAULT 0,
  search_s DOUBLE PRECISION NOT NULL DEFAULT 0,  -- time the searcher took to propose it
  PRIMARY KEY (study_id, iteration)
);
CREATE TABLE IF NOT EXISTS wf_param (
  study_id BIGINT NOT NULL,
  iteration BIGINT NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (study_id, iteration, name)
);
CREATE TABLE IF NOT EXISTS wf_metric (
  study_id BIGINT NOT NULL,
  iteration BIGINT NOT NULL,
  name TEXT NOT NULL,
  rep BIGINT NOT NULL,             -- -1: the median over repetitions
  value DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (study_id, iteration, name, rep)
);
CREATE TABLE IF NOT EXISTS wf_journal (
  id BIGINT PRIMARY KEY,
  kind TEXT NOT NULL,              -- file, netns
  target TEXT NOT NULL,
  old_value TEXT NOT NULL,
  new_value TEXT NOT NULL,
  owner_pid BIGINT NOT NULL,
  created_ns BIGINT NOT NULL,
  restored_ns BIGINT               -- NULL while the change is in force
);
