-- The DBOS filesystems (paper §4.4, Figure 9) on SQLite, installed by FileSystem::open. Every
-- statement is idempotent: opening again changes nothing.
--
-- Partitions are the rows of Map; the partition key (p_key) leads each block table's key, so on a
-- sharded PostgreSQL it becomes the distribution column (see docs/dbos.md, "Filesystems").

CREATE TABLE IF NOT EXISTS fs_meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO fs_meta (key, value) VALUES ('schema_version', 1) ON CONFLICT (key) DO NOTHING;
INSERT INTO fs_meta (key, value) VALUES ('next_f_id', 0) ON CONFLICT (key) DO NOTHING;

-- The paper's User ("user" is reserved on PostgreSQL, so the table is Users on both engines).
CREATE TABLE IF NOT EXISTS Users (
  user_name      TEXT PRIMARY KEY,
  home_partition INTEGER NOT NULL,
  current_path   TEXT NOT NULL DEFAULT '/',
  quota_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),  -- 0: unlimited
  used_bytes     INTEGER NOT NULL DEFAULT 0
);

-- One row per file or directory (`content`, fully qualified), beside its parent (`d_name`).
-- A file's metadata lives here once (f_size, block_size, layout) instead of in every block row.
CREATE TABLE IF NOT EXISTS Directory (
  content         TEXT PRIMARY KEY,
  d_name          TEXT NOT NULL,
  content_type    TEXT NOT NULL CHECK (content_type IN ('dir', 'file')),
  user_name       TEXT NOT NULL,
  protection_info INTEGER NOT NULL,  -- permission bits
  p_key           INTEGER NOT NULL,  -- the owner's home partition
  f_id            INTEGER UNIQUE,    -- files: the key of their blocks (rename touches no block)
  layout          TEXT CHECK (layout IN ('localized', 'parallel')),
  f_size          INTEGER NOT NULL DEFAULT 0 CHECK (f_size >= 0),
  block_size      INTEGER NOT NULL DEFAULT 0,
  atime_us        INTEGER NOT NULL,
  mtime_us        INTEGER NOT NULL,
  ctime_us        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_by_parent ON Directory (d_name, content);

-- Blocks of localized files: all of a user's files on the user's home partition.
CREATE TABLE IF NOT EXISTS Localized_file (
  p_key    INTEGER NOT NULL,
  f_id     INTEGER NOT NULL,
  block_no INTEGER NOT NULL,
  bytes    BLOB NOT NULL,
  PRIMARY KEY (p_key, f_id, block_no)
) WITHOUT ROWID;

-- Blocks of parallel files: block b on the (b mod n)-th of the n partitions of Map.
CREATE TABLE IF NOT EXISTS Parallel_file (
  f_id     INTEGER NOT NULL,
  block_no INTEGER NOT NULL,
  p_key    INTEGER NOT NULL,
  bytes    BLOB NOT NULL,
  PRIMARY KEY (f_id, block_no)
) WITHOUT ROWID;

-- Files with their metadata, for `sluice sql`.
CREATE VIEW IF NOT EXISTS Files AS
  SELECT content AS path, d_name AS directory, user_name AS owner, f_size AS size, layout,
         block_size, mtime_us
  FROM Directory WHERE content_type = 'file';

-- Every directory with the files and bytes below it (recursively).
CREATE VIEW IF NOT EXISTS DirectorySizes AS
  SELECT d.content AS directory, count(f.content) AS files, coalesce(sum(f.f_size), 0) AS bytes
  FROM Directory d
  LEFT JOIN Directory f
    ON f.content_type = 'file'
   AND f.content > (CASE WHEN d.content = '/' THEN '' ELSE d.content END) || '/'
   AND f.content < (CASE WHEN d.content = '/' THEN '' ELSE d.content END) || '0'
  WHERE d.content_type = 'dir'
  GROUP BY d.content;
