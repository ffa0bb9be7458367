-- The statements src/dbos/fs/fs.cc runs on PostgreSQL to install the filesystem, register users
-- and frame batches; the operations themselves are the functions of fs_functions.sql. One
-- statement per `-- name:` section, positional parameters.

-- Whether fs_schema.sql was installed (version 1 is the only one so far).
-- name: installed
SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'fs_meta'

-- name: partitions
SELECT count(*) FROM Map

-- name: partition_keys
SELECT p_key FROM Map ORDER BY p_key

-- name: add_partition
INSERT INTO Map (p_key, partition_id) VALUES ($1::bigint, $1::bigint) ON CONFLICT (p_key) DO NOTHING

-- name: add_root
INSERT INTO Directory (content, d_name, content_type, user_name, protection_info, p_key,
                       atime_us, mtime_us, ctime_us)
VALUES ('/', '', 'dir', 'root', 493, 0, $1::bigint, $1::bigint, $1::bigint) ON CONFLICT (content) DO NOTHING

-- name: user_get
SELECT home_partition, quota_bytes, used_bytes FROM Users WHERE user_name = $1

-- name: user_count
SELECT count(*) FROM Users

-- name: user_add
INSERT INTO Users (user_name, home_partition) VALUES ($1, $2)
ON CONFLICT (user_name) DO NOTHING

-- name: user_set_quota
UPDATE Users SET quota_bytes = $2 WHERE user_name = $1

-- Batches lock rows in the order they touch them, so two can deadlock. Every batch holds this
-- lock shared; one rolled back (a deadlock) takes it exclusively for its retry, which then runs
-- with no other batch beside it and cannot deadlock with one again.
-- name: batch_shared
SELECT pg_advisory_xact_lock_shared(hashtext('sluice.dbos.fs.batch'))

-- name: batch_exclusive
SELECT pg_advisory_xact_lock(hashtext('sluice.dbos.fs.batch'))

-- A batch that names its entries locks them first, in the byte order of their paths: batches that
-- do so wait for each other instead of deadlocking. $1 is a JSON array of paths. The rows are
-- locked as the sort hands them up, so in that order.
-- name: lock_for_update
SELECT d.content FROM Directory d
WHERE d.content IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY d.content FOR UPDATE

-- name: lock_for_share
SELECT d.content FROM Directory d
WHERE d.content IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY d.content FOR SHARE

-- The digest of the fs_functions.sql installed (FileSystem::open installs it again when it changed).
-- name: functions_digest
SELECT value FROM dbos_meta WHERE key = 'fs_functions_digest'

-- name: set_functions_digest
INSERT INTO dbos_meta (key, value) VALUES ('fs_functions_digest', $1)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
