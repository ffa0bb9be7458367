-- The DBOS filesystems (paper §4.4, Figure 9) on PostgreSQL, installed by FileSystem::open under
-- an advisory lock. Every statement is idempotent. Paths are COLLATE "C": byte order, so the
-- subtree of /a is the range ('/a/', '/a0') on both engines (no LIKE patterns).
--
-- Partitions are the rows of Map; p_key leads Localized_file's key, so a sharded deployment
-- (Citus-style) distributes Localized_file by p_key and Parallel_file by p_key (the (block_no mod n)-th partition).

CREATE TABLE IF NOT EXISTS fs_meta (
  key   text PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO fs_meta (key, value) VALUES ('schema_version', 1) ON CONFLICT (key) DO NOTHING;
CREATE SEQUENCE IF NOT EXISTS fs_file_id;

CREATE TABLE IF NOT EXISTS users (
  user_name      text COLLATE "C" PRIMARY KEY,
  home_partition bigint NOT NULL,
  current_path   text NOT NULL DEFAULT '/',
  quota_bytes    bigint NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
  used_bytes     bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS directory (
  content         text COLLATE "C" PRIMARY KEY,
  d_name          text COLLATE "C" NOT NULL,
  content_type    text NOT NULL CHECK (content_type IN ('dir', 'file')),
  user_name       text COLLATE "C" NOT NULL,
  protection_info bigint NOT NULL,
  p_key           bigint NOT NULL,
  f_id            bigint UNIQUE,
  layout          text CHECK (layout IN ('localized', 'parallel')),
  f_size          bigint NOT NULL DEFAULT 0 CHECK (f_size >= 0),
  block_size      bigint NOT NULL DEFAULT 0,
  atime_us        bigint NOT NULL,
  mtime_us        bigint NOT NULL,
  ctime_us        bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_by_parent ON directory (d_name, content);

CREATE TABLE IF NOT EXISTS localized_file (
  p_key    bigint NOT NULL,
  f_id     bigint NOT NULL,
  block_no bigint NOT NULL,
  bytes    bytea NOT NULL,
  PRIMARY KEY (p_key, f_id, block_no)
);
ALTER TABLE localized_file ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE TABLE IF NOT EXISTS parallel_file (
  f_id     bigint NOT NULL,
  block_no bigint NOT NULL,
  p_key    bigint NOT NULL,
  bytes    bytea NOT NULL,
  PRIMARY KEY (f_id, block_no)
);
ALTER TABLE parallel_file ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE OR REPLACE VIEW files AS
  SELECT content AS path, d_name AS directory, user_name AS owner, f_size AS size, layout,
         block_size, mtime_us
  FROM directory WHERE content_type = 'file';

CREATE OR REPLACE VIEW directorysizes AS
  SELECT d.content AS directory, count(f.content) AS files, coalesce(sum(f.f_size), 0)::bigint AS bytes
  FROM directory d
  LEFT JOIN directory f
    ON f.content_type = 'file'
   AND f.content > (CASE WHEN d.content = '/' THEN '' ELSE d.content END) || '/'
   AND f.content < (CASE WHEN d.content = '/' THEN '' ELSE d.content END) || '0'
  WHERE d.content_type = 'dir'
  GROUP BY d.content;
