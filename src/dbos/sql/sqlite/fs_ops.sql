-- The statements of the filesystem operations (src/dbos/fs/fs.cc runs several of them in one
-- transaction per operation). One statement per `-- name:` section, positional parameters.

-- Whether fs_schema.sql was installed (version 1 is the only one so far).
-- name: installed
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'fs_meta'

-- name: meta
SELECT content_type, f_id, layout, f_size, block_size, p_key, user_name, protection_info,
       atime_us, mtime_us, ctime_us
FROM Directory WHERE content = ?1

-- name: meta_for_update
SELECT content_type, f_id, layout, f_size, block_size, p_key, user_name, protection_info,
       atime_us, mtime_us, ctime_us
FROM Directory WHERE content = ?1

-- name: meta_for_share
SELECT content_type, f_id, layout, f_size, block_size, p_key, user_name, protection_info,
       atime_us, mtime_us, ctime_us
FROM Directory WHERE content = ?1

-- name: next_f_id
UPDATE fs_meta SET value = value + 1 WHERE key = 'next_f_id' RETURNING value

-- name: partitions
SELECT count(*) FROM Map

-- name: partition_keys
SELECT p_key FROM Map ORDER BY p_key

-- name: add_partition
INSERT INTO Map (p_key, partition_id) VALUES (?1, ?1) ON CONFLICT (p_key) DO NOTHING

-- name: add_root
INSERT INTO Directory (content, d_name, content_type, user_name, protection_info, p_key,
                       atime_us, mtime_us, ctime_us)
VALUES ('/', '', 'dir', 'root', 493, 0, ?1, ?1, ?1) ON CONFLICT (content) DO NOTHING

-- name: user_get
SELECT home_partition, quota_bytes, used_bytes FROM Users WHERE user_name = ?1

-- name: user_count
SELECT count(*) FROM Users

-- name: user_add
INSERT INTO Users (user_name, home_partition) VALUES (?1, ?2)
ON CONFLICT (user_name) DO NOTHING

-- name: user_add_bytes
UPDATE Users SET used_bytes = used_bytes + ?2 WHERE user_name = ?1

-- name: user_set_quota
UPDATE Users SET quota_bytes = ?2 WHERE user_name = ?1

-- name: insert_entry
INSERT INTO Directory (content, d_name, content_type, user_name, protection_info, p_key, f_id,
                       layout, block_size, atime_us, mtime_us, ctime_us)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10)
ON CONFLICT (content) DO NOTHING

-- name: delete_entry
DELETE FROM Directory WHERE content = ?1

-- name: has_children
SELECT 1 FROM Directory WHERE d_name = ?1 LIMIT 1

-- name: list
SELECT content, content_type, f_size FROM Directory WHERE d_name = ?1 ORDER BY content

-- name: set_size
UPDATE Directory SET f_size = ?2, mtime_us = ?3, ctime_us = ?3 WHERE content = ?1

-- name: touch
UPDATE Directory SET mtime_us = ?2, ctime_us = ?2 WHERE content = ?1

-- name: set_mode
UPDATE Directory SET protection_info = ?2, ctime_us = ?3 WHERE content = ?1

-- name: set_times
UPDATE Directory SET atime_us = ?2, mtime_us = ?3, ctime_us = ?4 WHERE content = ?1

-- name: rename_one
UPDATE Directory SET content = ?2, d_name = ?3, ctime_us = ?4 WHERE content = ?1

-- Descendants of ?1 are the byte range (?1 || '/', ?1 || '0'): '0' follows '/' in ASCII. A LIKE
-- pattern would misread '%' and '_' in names.
-- name: rename_subtree
UPDATE Directory
SET content = CAST(?2 AS TEXT) || substr(content, length(CAST(?1 AS TEXT)) + 1),
    d_name = CAST(?2 AS TEXT) || substr(d_name, length(CAST(?1 AS TEXT)) + 1)
WHERE content > CAST(?1 AS TEXT) || '/' AND content < CAST(?1 AS TEXT) || '0'

-- name: localized_read
SELECT block_no, bytes FROM Localized_file
WHERE p_key = ?1 AND f_id = ?2 AND block_no BETWEEN ?3 AND ?4 ORDER BY block_no

-- name: localized_write
INSERT INTO Localized_file (p_key, f_id, block_no, bytes) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (p_key, f_id, block_no) DO UPDATE SET bytes = excluded.bytes

-- name: localized_delete_from
DELETE FROM Localized_file WHERE p_key = ?1 AND f_id = ?2 AND block_no >= ?3

-- name: parallel_read
SELECT block_no, bytes FROM Parallel_file
WHERE f_id = ?1 AND block_no BETWEEN ?2 AND ?3 ORDER BY block_no

-- name: parallel_write
INSERT INTO Parallel_file (f_id, block_no, p_key, bytes) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (f_id, block_no) DO UPDATE SET bytes = excluded.bytes

-- name: parallel_delete_from
DELETE FROM Parallel_file WHERE f_id = ?1 AND block_no >= ?2

-- An operation that can fail after it changed rows (put: a create, then EDQUOT) runs in a
-- savepoint inside a batch, so that the batch goes on without half of it.
-- name: savepoint
SAVEPOINT sluice_fs_op

-- name: rollback_to_savepoint
ROLLBACK TO sluice_fs_op

-- name: release_savepoint
RELEASE sluice_fs_op
