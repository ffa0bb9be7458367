-- Version 1: the OS-state tables of DBOS §4.2–4.3 on one SQLite file.
-- VoltDB partitions each table on a key; on one node the key leads the index instead, so each
-- service's lookups stay single-"partition" range scans.

-- Partition map (the paper's Map): which partition lives where.
CREATE TABLE Map (
  p_key        INTEGER PRIMARY KEY,
  partition_id INTEGER NOT NULL,
  host_name    TEXT NOT NULL DEFAULT 'localhost',
  host_id      INTEGER NOT NULL DEFAULT 0
);

-- Workers, partitioned on p_key; capacity in runnable tasks.
CREATE TABLE Worker (
  worker_id       INTEGER PRIMARY KEY,
  p_key           INTEGER NOT NULL,
  capacity        INTEGER NOT NULL CHECK (capacity >= 0),
  unused_capacity INTEGER NOT NULL CHECK (unused_capacity >= 0 AND unused_capacity <= capacity),
  created_us      INTEGER NOT NULL
);
-- Indexed on p_key only: unused_capacity changes with every assignment, and an index on it would
-- be rewritten each time (a partition holds few workers; scanning them is cheaper).
CREATE INDEX worker_by_partition ON Worker (p_key);

-- Tasks, partitioned on p_key (the partition of the worker they run on, or of their home while
-- deferred). Finished tasks stay, with their times, for provenance and debugging.
CREATE TABLE Task (
  task_id     INTEGER PRIMARY KEY,
  p_key       INTEGER NOT NULL,
  worker_id   INTEGER,  -- NULL while deferred
  state       TEXT NOT NULL CHECK (state IN ('deferred', 'running', 'done')),
  priority    INTEGER NOT NULL DEFAULT 0,
  scheduler   TEXT NOT NULL,
  payload     TEXT,
  created_us  INTEGER NOT NULL,
  assigned_us INTEGER,
  finished_us INTEGER
);
CREATE INDEX task_deferred ON Task (p_key, task_id) WHERE state = 'deferred';

-- IPC endpoints (senders and receivers).
CREATE TABLE Endpoint (
  endpoint_id INTEGER PRIMARY KEY,
  name        TEXT,
  created_us  INTEGER NOT NULL
);

-- Per sender→receiver pair: the highest message id sent (exactly-once sends).
CREATE TABLE Channel (
  sender_id    INTEGER NOT NULL,
  receiver_id  INTEGER NOT NULL,
  last_sent_id INTEGER NOT NULL,
  PRIMARY KEY (sender_id, receiver_id)
) WITHOUT ROWID;

-- Messages in flight, partitioned on receiver_id; seq is the arrival order.
CREATE TABLE Message (
  seq         INTEGER PRIMARY KEY,
  receiver_id INTEGER NOT NULL,
  sender_id   INTEGER NOT NULL,
  message_id  INTEGER NOT NULL,
  data        BLOB NOT NULL,
  sent_us     INTEGER NOT NULL
);
CREATE INDEX message_by_receiver ON Message (receiver_id, seq);
