-- Analytics over the filesystem metadata: `sluice fs du/find` and FileSystem::usage_by_user & co.
-- Each is one query; the same text (with the value in place of ?N) runs in `sluice sql`.

-- The paper's query (§4.4, Table 2): total size of each user's files of at least ?1 bytes.
-- name: usage_by_user
SELECT user_name, count(*) AS files, sum(f_size) AS bytes
FROM Directory WHERE content_type = 'file' AND f_size >= ?1
GROUP BY user_name ORDER BY user_name

-- name: largest_files
SELECT content AS path, f_size AS bytes, user_name, mtime_us
FROM Directory WHERE content_type = 'file' AND f_size >= ?1
ORDER BY f_size DESC, content LIMIT ?2

-- name: changed_since
SELECT content AS path, f_size AS bytes, user_name, mtime_us
FROM Directory WHERE content_type = 'file' AND mtime_us >= ?1
ORDER BY mtime_us DESC, content

-- name: directory_sizes
SELECT directory, files, bytes FROM DirectorySizes
WHERE directory = ?1
   OR (directory > (CASE WHEN ?1 = '/' THEN '' ELSE ?1 END) || '/'
       AND directory < (CASE WHEN ?1 = '/' THEN '' ELSE ?1 END) || '0')
ORDER BY directory
