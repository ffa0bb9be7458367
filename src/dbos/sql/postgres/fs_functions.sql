-- The filesystem operations on PostgreSQL as PL/pgSQL functions: an operation is one call and one
-- round trip (src/dbos/fs/fs.cc on SQLite runs the statements of fs_ops.sql instead, in-process,
-- where a statement costs no round trip). Installed by FileSystem::open when this file changed
-- (its digest is kept in dbos_meta). Each operation does what the SQLite path of fs.cc does, with
-- the same locks (the entry FOR UPDATE to change it, FOR SHARE to read its blocks, the parent FOR
-- UPDATE to add or remove a child) and the same errors. Times, the user, the home partition and
-- the knobs come in as arguments so both engines store the same values.
--
-- Errors: every operation (dbos_fs_stat … dbos_fs_set_times) finds its errors before it changes a
-- row and returns them in its last column, out_error, as a message that starts with the errno
-- name ('ENOENT: …'), which pg_fs.cc turns back into the POSIX error. Returned, not raised: a
-- failed operation inside FileSystem::batch leaves the batch's transaction usable, as on SQLite. Nor
-- caught in an EXCEPTION block: that is a subtransaction per call, and past 64 of them in one
-- transaction every snapshot gets slower (1,000 block writes in one transaction took 5.6-8.5
-- times as long). What fails after a row changed (only a quota race: two writers of one user
-- passing the check together, see dbos_fs_settle) is raised, and aborts the transaction.
--
-- CREATE OR REPLACE cannot change a function's result columns: such a change needs a DROP
-- FUNCTION IF EXISTS of the old signature ahead of the new definition.

CREATE OR REPLACE FUNCTION dbos_fs_parent(in_path text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p = '' THEN '/' ELSE p END FROM regexp_replace(in_path, '/[^/]*$', '') AS p
$$;

-- Why `in_path` has no entry: a file on the way (ENOTDIR), a missing directory on the way, or the
-- entry itself missing (ENOENT).
CREATE OR REPLACE FUNCTION dbos_fs_missing(in_path text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  p text := in_path;
  deepest text := in_path;
  t text;
BEGIN
  WHILE p <> '/' LOOP
    p := dbos_fs_parent(p);
    SELECT d.content_type INTO t FROM directory d WHERE d.content = p;
    IF FOUND THEN
      IF t <> 'dir' THEN
        RETURN format('ENOTDIR: %s: %s is a file, not a directory', in_path, p);
      END IF;
      EXIT;
    END IF;
    deepest := p;
  END LOOP;
  IF deepest <> in_path THEN
    RETURN format('ENOENT: %s: directory %s does not exist; create it first (mkdir)', in_path,
                  deepest);
  END IF;
  RETURN format('ENOENT: no such file or directory: %s', in_path);
END $$;

-- Locks the parent of an entry about to be added or removed FOR UPDATE (a concurrent rmdir
-- waits, and its mtime changes next); the error when it is missing or a file.
CREATE OR REPLACE FUNCTION dbos_fs_lock_parent(in_path text, in_parent text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  t text;
BEGIN
  SELECT d.content_type INTO t FROM directory d WHERE d.content = in_parent FOR UPDATE;
  IF NOT FOUND THEN
    RETURN dbos_fs_missing(in_parent);
  END IF;
  IF t <> 'dir' THEN
    RETURN format('ENOTDIR: %s: %s is a file, not a directory', in_path, in_parent);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_touch(in_path text, in_now_us bigint) RETURNS void
LANGUAGE sql AS $$
  UPDATE directory SET mtime_us = in_now_us, ctime_us = in_now_us WHERE content = in_path
$$;

-- The error when a file of `in_owner` may not grow from `in_old` to `in_new` bytes (size limit,
-- quota), read without a lock: the owner's row is locked only by dbos_fs_settle, at the end of
-- the operation, so writers of one user do not queue behind each other's block writes.
CREATE OR REPLACE FUNCTION dbos_fs_check_growth(in_owner text, in_path text, in_old bigint,
    in_new bigint, in_max_bytes bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  quota bigint;
  used bigint;
BEGIN
  IF in_new > in_max_bytes THEN
    RETURN format('EFBIG: %s would grow to %s bytes, past dbos.fs_max_file_bytes = %s', in_path,
                  in_new, in_max_bytes);
  END IF;
  IF in_new > in_old THEN
    SELECT u.quota_bytes, u.used_bytes INTO quota, used FROM users u WHERE u.user_name = in_owner;
    IF FOUND AND quota > 0 AND used + in_new - in_old > quota THEN
      RETURN format('EDQUOT: %s: user %s would use %s bytes, over the quota of %s bytes '
                    '(set_quota)', in_path, in_owner, used + in_new - in_old, quota);
    END IF;
  END IF;
  RETURN NULL;
END $$;

-- Adds a file's growth (or shrinkage) to its owner's total, the last step of an operation. A
-- concurrent writer of the same user may have used the room dbos_fs_check_growth saw: then the
-- quota is still kept, by raising EDQUOT, which aborts the transaction (rows already changed).
CREATE OR REPLACE FUNCTION dbos_fs_settle(in_owner text, in_path text, in_old bigint,
    in_new bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  delta bigint := in_new - in_old;
BEGIN
  IF delta = 0 THEN
    RETURN;
  END IF;
  UPDATE users u SET used_bytes = u.used_bytes + delta
  WHERE u.user_name = in_owner
    AND (delta < 0 OR u.quota_bytes = 0 OR u.used_bytes + delta <= u.quota_bytes);
  IF NOT FOUND AND EXISTS (SELECT 1 FROM users u WHERE u.user_name = in_owner) THEN
    RAISE EXCEPTION 'EDQUOT: %: user % went over the quota while this write ran (set_quota)',
      in_path, in_owner;
  END IF;
END $$;

-- Stores one block: a parallel file's block b on the (b mod n)-th partition of Map.
CREATE OR REPLACE FUNCTION dbos_fs_put_block(m directory, in_block_no bigint, in_bytes bytea,
    in_keys bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF m.layout = 'parallel' THEN
    INSERT INTO parallel_file (f_id, block_no, p_key, bytes)
    VALUES (m.f_id, in_block_no, in_keys[(in_block_no % cardinality(in_keys))::int + 1], in_bytes)
    ON CONFLICT (f_id, block_no) DO UPDATE SET bytes = excluded.bytes;
  ELSE
    INSERT INTO localized_file (p_key, f_id, block_no, bytes)
    VALUES (m.p_key, m.f_id, in_block_no, in_bytes)
    ON CONFLICT (p_key, f_id, block_no) DO UPDATE SET bytes = excluded.bytes;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_get_block(m directory, in_block_no bigint) RETURNS bytea
LANGUAGE sql AS $$
  SELECT CASE WHEN m.layout = 'parallel'
    THEN (SELECT b.bytes FROM parallel_file b WHERE b.f_id = m.f_id AND b.block_no = in_block_no)
    ELSE (SELECT b.bytes FROM localized_file b
          WHERE b.p_key = m.p_key AND b.f_id = m.f_id AND b.block_no = in_block_no)
  END
$$;

CREATE OR REPLACE FUNCTION dbos_fs_delete_blocks_from(m directory, in_block_no bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF m.layout = 'parallel' THEN
    DELETE FROM parallel_file b WHERE b.f_id = m.f_id AND b.block_no >= in_block_no;
  ELSE
    DELETE FROM localized_file b
    WHERE b.p_key = m.p_key AND b.f_id = m.f_id AND b.block_no >= in_block_no;
  END IF;
END $$;

-- Removes a file locked by the caller: its blocks, its bytes from the owner's total, its entry.
CREATE OR REPLACE FUNCTION dbos_fs_remove_file(m directory) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM dbos_fs_delete_blocks_from(m, 0);
  IF m.f_size <> 0 THEN
    UPDATE users SET used_bytes = used_bytes - m.f_size WHERE user_name = m.user_name;
  END IF;
  DELETE FROM directory WHERE content = m.content;
END $$;

-- Locks the file at `in_path` FOR UPDATE; the error when there is none or it is a directory.
CREATE OR REPLACE FUNCTION dbos_fs_lock_file(in_path text, OUT m directory, OUT error text)
LANGUAGE plpgsql AS $$
BEGIN
  SELECT * INTO m FROM directory d WHERE d.content = in_path FOR UPDATE;
  IF NOT FOUND THEN
    error := dbos_fs_missing(in_path);
  ELSIF m.content_type = 'dir' THEN
    error := format('EISDIR: %s is a directory', in_path);
  END IF;
END $$;

-- Adds an entry below a parent locked by the caller and touches the parent; the error (EEXIST)
-- when the path is taken.
CREATE OR REPLACE FUNCTION dbos_fs_insert(in_path text, in_parent text, in_type text,
    in_user text, in_mode bigint, in_p_key bigint, in_f_id bigint, in_layout text,
    in_block_size bigint, in_now_us bigint) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO directory (content, d_name, content_type, user_name, protection_info, p_key, f_id,
                         layout, block_size, atime_us, mtime_us, ctime_us)
  VALUES (in_path, in_parent, in_type, in_user, in_mode, in_p_key, in_f_id, in_layout,
          in_block_size, in_now_us, in_now_us, in_now_us)
  ON CONFLICT (content) DO NOTHING;
  IF NOT FOUND THEN
    RETURN format('EEXIST: %s already exists', in_path);
  END IF;
  PERFORM dbos_fs_touch(in_parent, in_now_us);
  RETURN NULL;
END $$;

-- An operation's error, raised inside another operation (dbos_fs_put) after it changed rows, so
-- that the transaction takes none of them.
CREATE OR REPLACE FUNCTION dbos_fs_raise_if(in_error text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF in_error IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = in_error;
  END IF;
END $$;

-- The columns of the `meta` statement of fs_ops.sql, in its order, then out_error.
CREATE OR REPLACE FUNCTION dbos_fs_stat(in_path text)
RETURNS TABLE (out_type text, out_f_id bigint, out_layout text, out_size bigint,
               out_block_size bigint, out_p_key bigint, out_owner text, out_mode bigint,
               out_atime_us bigint, out_mtime_us bigint, out_ctime_us bigint, out_error text)
LANGUAGE plpgsql AS $$
BEGIN
  SELECT d.content_type, d.f_id, d.layout, d.f_size, d.block_size, d.p_key, d.user_name,
         d.protection_info, d.atime_us, d.mtime_us, d.ctime_us
  INTO out_type, out_f_id, out_layout, out_size, out_block_size, out_p_key, out_owner, out_mode,
       out_atime_us, out_mtime_us, out_ctime_us
  FROM directory d WHERE d.content = in_path;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_path);
  END IF;
  RETURN NEXT;
END $$;

-- The entries of a directory (path, type, size), or one row with only out_error.
CREATE OR REPLACE FUNCTION dbos_fs_readdir(in_path text)
RETURNS TABLE (out_path text, out_type text, out_size bigint, out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  t text;
BEGIN
  SELECT d.content_type INTO t FROM directory d WHERE d.content = in_path FOR SHARE;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_path);
  ELSIF t <> 'dir' THEN
    out_error := format('ENOTDIR: %s is a file, not a directory', in_path);
  END IF;
  IF out_error IS NOT NULL THEN
    RETURN NEXT;
    RETURN;
  END IF;
  RETURN QUERY SELECT d.content, d.content_type, d.f_size, NULL::text FROM directory d
  WHERE d.d_name = in_path ORDER BY d.content;
END $$;

-- A first row with the file's size and block size (no block), then the stored blocks that hold
-- bytes of [in_offset, in_offset + in_length), in order; holes are left out and read as zeros.
CREATE OR REPLACE FUNCTION dbos_fs_read(in_path text, in_offset bigint, in_length bigint)
RETURNS TABLE (out_size bigint, out_block_size bigint, out_block_no bigint, out_bytes bytea,
               out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  m directory;
  n bigint;
BEGIN
  SELECT * INTO m FROM directory d WHERE d.content = in_path FOR SHARE;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_path);
  ELSIF m.content_type = 'dir' THEN
    out_error := format('EISDIR: %s is a directory', in_path);
  ELSE
    out_size := m.f_size;
    out_block_size := m.block_size;
  END IF;
  RETURN NEXT;
  IF out_error IS NOT NULL OR in_offset >= m.f_size OR in_length = 0 THEN
    RETURN;
  END IF;
  n := least(in_length, m.f_size - in_offset);
  IF m.layout = 'parallel' THEN
    RETURN QUERY SELECT m.f_size, m.block_size, b.block_no, b.bytes, NULL::text
    FROM parallel_file b
    WHERE b.f_id = m.f_id
      AND b.block_no BETWEEN in_offset / m.block_size AND (in_offset + n - 1) / m.block_size
    ORDER BY b.block_no;
  ELSE
    RETURN QUERY SELECT m.f_size, m.block_size, b.block_no, b.bytes, NULL::text
    FROM localized_file b
    WHERE b.p_key = m.p_key AND b.f_id = m.f_id
      AND b.block_no BETWEEN in_offset / m.block_size AND (in_offset + n - 1) / m.block_size
    ORDER BY b.block_no;
  END IF;
END $$;

-- Writes `in_data` at `in_offset`; out_size is the new size. Blocks written in part keep the
-- rest of their bytes; a stored block ends at its last byte written (the tail is a hole).
CREATE OR REPLACE FUNCTION dbos_fs_write(in_path text, in_offset bigint, in_data bytea,
    in_now_us bigint, in_max_bytes bigint, OUT out_size bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  f record;
  m directory;
  len bigint := length(in_data);
  bs bigint;
  keys bigint[];
  b bigint;
  block_start bigint;
  lo bigint;
  hi bigint;
  cur bytea;
BEGIN
  f := dbos_fs_lock_file(in_path);
  out_error := f.error;
  IF out_error IS NOT NULL THEN
    RETURN;
  END IF;
  m := f.m;
  out_size := m.f_size;
  IF len = 0 THEN
    RETURN;
  END IF;
  IF in_offset > in_max_bytes - len THEN
    out_size := NULL;
    out_error := format('EFBIG: %s: a write of %s bytes at offset %s ends past '
                        'dbos.fs_max_file_bytes = %s', in_path, len, in_offset, in_max_bytes);
    RETURN;
  END IF;
  out_size := greatest(m.f_size, in_offset + len);
  out_error := dbos_fs_check_growth(m.user_name, in_path, m.f_size, out_size, in_max_bytes);
  IF out_error IS NOT NULL THEN
    out_size := NULL;
    RETURN;
  END IF;
  IF m.layout = 'parallel' THEN
    SELECT array_agg(p.p_key ORDER BY p.p_key) INTO keys FROM map p;
  END IF;
  bs := m.block_size;
  b := in_offset / bs;
  -- A WHILE loop: FOR over a range counts in int4, and block numbers may pass 2^31.
  WHILE b <= (in_offset + len - 1) / bs LOOP
    block_start := b * bs;
    lo := greatest(in_offset, block_start);
    hi := least(in_offset + len, block_start + bs);
    IF lo = block_start AND hi = block_start + bs THEN
      cur := substring(in_data FROM (lo - in_offset + 1)::int FOR bs::int);
    ELSE
      cur := coalesce(dbos_fs_get_block(m, b), '\x'::bytea);
      IF length(cur) < hi - block_start THEN
        cur := cur || decode(repeat('00', (hi - block_start - length(cur))::int), 'hex');
      END IF;
      cur := overlay(cur PLACING substring(in_data FROM (lo - in_offset + 1)::int
                                                FOR (hi - lo)::int)
                     FROM (lo - block_start + 1)::int FOR (hi - lo)::int);
    END IF;
    PERFORM dbos_fs_put_block(m, b, cur, keys);
    b := b + 1;
  END LOOP;
  UPDATE directory SET f_size = out_size, mtime_us = in_now_us, ctime_us = in_now_us
  WHERE content = in_path;
  PERFORM dbos_fs_settle(m.user_name, in_path, m.f_size, out_size);
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_truncate(in_path text, in_size bigint, in_now_us bigint,
    in_max_bytes bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  f record;
  m directory;
  cur bytea;
BEGIN
  f := dbos_fs_lock_file(in_path);
  out_error := f.error;
  IF out_error IS NOT NULL THEN
    RETURN;
  END IF;
  m := f.m;
  out_error := dbos_fs_check_growth(m.user_name, in_path, m.f_size, in_size, in_max_bytes);
  IF out_error IS NOT NULL THEN
    RETURN;
  END IF;
  IF in_size < m.f_size THEN
    -- Blocks wholly past the end go; the last one is cut so a later growth reads zeros.
    PERFORM dbos_fs_delete_blocks_from(m, (in_size + m.block_size - 1) / m.block_size);
    IF in_size % m.block_size <> 0 THEN
      cur := dbos_fs_get_block(m, in_size / m.block_size);
      IF length(cur) > in_size % m.block_size THEN
        PERFORM dbos_fs_put_block(m, in_size / m.block_size,
                                  substring(cur FROM 1 FOR (in_size % m.block_size)::int),
                                  ARRAY(SELECT p.p_key FROM map p ORDER BY p.p_key));
      END IF;
    END IF;
  END IF;
  UPDATE directory SET f_size = in_size, mtime_us = in_now_us, ctime_us = in_now_us
  WHERE content = in_path;
  PERFORM dbos_fs_settle(m.user_name, in_path, m.f_size, in_size);
END $$;

-- O_CREAT: with in_exclusive = 0 an existing file is kept as it is.
CREATE OR REPLACE FUNCTION dbos_fs_create(in_path text, in_parent text, in_mode bigint,
    in_exclusive bigint, in_user text, in_p_key bigint, in_layout text, in_block_size bigint,
    in_now_us bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  t text;
BEGIN
  SELECT d.content_type INTO t FROM directory d WHERE d.content = in_path FOR UPDATE;
  IF FOUND THEN
    IF t = 'dir' THEN
      out_error := format('EISDIR: %s is a directory', in_path);
    ELSIF in_exclusive <> 0 THEN
      out_error := format('EEXIST: %s already exists', in_path);
    END IF;
    RETURN;
  END IF;
  out_error := dbos_fs_lock_parent(in_path, in_parent);
  IF out_error IS NULL THEN
    out_error := dbos_fs_insert(in_path, in_parent, 'file', in_user, in_mode, in_p_key,
                                nextval('fs_file_id'), in_layout, in_block_size, in_now_us);
  END IF;
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_mkdir(in_path text, in_parent text, in_mode bigint,
    in_user text, in_p_key bigint, in_now_us bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
BEGIN
  out_error := dbos_fs_lock_parent(in_path, in_parent);
  IF out_error IS NULL THEN
    out_error := dbos_fs_insert(in_path, in_parent, 'dir', in_user, in_mode, in_p_key, NULL,
                                NULL, 0, in_now_us);
  END IF;
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_unlink(in_path text, in_parent text, in_now_us bigint,
    OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  f record := dbos_fs_lock_file(in_path);
BEGIN
  out_error := f.error;
  IF out_error IS NULL THEN
    PERFORM dbos_fs_remove_file(f.m);
    PERFORM dbos_fs_touch(in_parent, in_now_us);
  END IF;
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_rmdir(in_path text, in_parent text, in_now_us bigint,
    OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  t text;
BEGIN
  SELECT d.content_type INTO t FROM directory d WHERE d.content = in_path FOR UPDATE;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_path);
  ELSIF t <> 'dir' THEN
    out_error := format('ENOTDIR: %s is a file, not a directory (use unlink)', in_path);
  ELSIF EXISTS (SELECT 1 FROM directory d WHERE d.d_name = in_path) THEN
    out_error := format('ENOTEMPTY: directory %s is not empty', in_path);
  ELSE
    DELETE FROM directory WHERE content = in_path;
    PERFORM dbos_fs_touch(in_parent, in_now_us);
  END IF;
END $$;

-- Replaces the whole contents, creating the file if it is missing. Every limit the write could
-- meet is checked first, so nothing fails once rows changed (but for the quota race that
-- dbos_fs_settle raises).
CREATE OR REPLACE FUNCTION dbos_fs_put(in_path text, in_parent text, in_data bytea,
    in_mode bigint, in_user text, in_p_key bigint, in_layout text, in_block_size bigint,
    in_now_us bigint, in_max_bytes bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  m directory;
  len bigint := length(in_data);
  quota bigint;
  used bigint;
BEGIN
  SELECT * INTO m FROM directory d WHERE d.content = in_path FOR UPDATE;
  IF FOUND AND m.content_type = 'dir' THEN
    out_error := format('EISDIR: %s is a directory', in_path);
    RETURN;
  END IF;
  IF NOT FOUND THEN
    out_error := dbos_fs_lock_parent(in_path, in_parent);
    IF out_error IS NOT NULL THEN
      RETURN;
    END IF;
    m.user_name := in_user;
    m.f_size := 0;
  END IF;
  IF len > in_max_bytes THEN
    out_error := format('EFBIG: %s: a write of %s bytes at offset 0 ends past '
                        'dbos.fs_max_file_bytes = %s', in_path, len, in_max_bytes);
    RETURN;
  END IF;
  SELECT u.quota_bytes, u.used_bytes INTO quota, used FROM users u
  WHERE u.user_name = m.user_name;
  IF FOUND AND quota > 0 AND len > 0 AND used - m.f_size + len > quota THEN
    out_error := format('EDQUOT: %s: user %s would use %s bytes, over the quota of %s bytes '
                        '(set_quota)', in_path, m.user_name, used - m.f_size + len, quota);
    RETURN;
  END IF;
  PERFORM dbos_fs_raise_if(dbos_fs_create(in_path, in_parent, in_mode, 0, in_user, in_p_key,
                                          in_layout, in_block_size, in_now_us));
  PERFORM dbos_fs_raise_if(dbos_fs_truncate(in_path, 0, in_now_us, in_max_bytes));
  PERFORM dbos_fs_raise_if((dbos_fs_write(in_path, 0, in_data, in_now_us, in_max_bytes)).out_error);
END $$;

-- POSIX rename: replaces a file, or an empty directory with a directory; a directory's
-- descendants move with it (their paths are the byte range (from || '/', from || '0'): '0'
-- follows '/' in the "C" collation of the paths; a LIKE pattern would misread '%' and '_').
CREATE OR REPLACE FUNCTION dbos_fs_rename(in_from text, in_to text, in_from_parent text,
    in_to_parent text, in_now_us bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
DECLARE
  m directory;
  target directory;
BEGIN
  SELECT * INTO m FROM directory d WHERE d.content = in_from FOR UPDATE;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_from);
    RETURN;
  END IF;
  out_error := dbos_fs_lock_parent(in_to, in_to_parent);
  IF out_error IS NOT NULL OR in_from = in_to THEN
    RETURN;
  END IF;
  SELECT * INTO target FROM directory d WHERE d.content = in_to FOR UPDATE;
  IF FOUND THEN
    IF m.content_type = 'dir' AND target.content_type <> 'dir' THEN
      out_error := format('ENOTDIR: cannot replace file %s with directory %s', in_to, in_from);
    ELSIF m.content_type <> 'dir' AND target.content_type = 'dir' THEN
      out_error := format('EISDIR: cannot replace directory %s with file %s', in_to, in_from);
    ELSIF target.content_type = 'dir'
          AND EXISTS (SELECT 1 FROM directory d WHERE d.d_name = in_to) THEN
      out_error := format('ENOTEMPTY: directory %s is not empty', in_to);
    END IF;
    IF out_error IS NOT NULL THEN
      RETURN;
    END IF;
    IF target.content_type = 'dir' THEN
      DELETE FROM directory WHERE content = in_to;
    ELSE
      PERFORM dbos_fs_remove_file(target);
    END IF;
  END IF;
  UPDATE directory SET content = in_to, d_name = in_to_parent, ctime_us = in_now_us
  WHERE content = in_from;
  IF m.content_type = 'dir' THEN
    UPDATE directory
    SET content = in_to || substr(content, length(in_from) + 1),
        d_name = in_to || substr(d_name, length(in_from) + 1)
    WHERE content > in_from || '/' AND content < in_from || '0';
  END IF;
  PERFORM dbos_fs_touch(in_from_parent, in_now_us);
  PERFORM dbos_fs_touch(in_to_parent, in_now_us);
END $$;

CREATE OR REPLACE FUNCTION dbos_fs_chmod(in_path text, in_mode bigint, in_now_us bigint,
    OUT out_error text)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE directory SET protection_info = in_mode, ctime_us = in_now_us WHERE content = in_path;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_path);
  END IF;
END $$;

-- A negative time leaves that time as it is.
CREATE OR REPLACE FUNCTION dbos_fs_set_times(in_path text, in_atime_us bigint,
    in_mtime_us bigint, in_now_us bigint, OUT out_error text)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE directory
  SET atime_us = CASE WHEN in_atime_us < 0 THEN atime_us ELSE in_atime_us END,
      mtime_us = CASE WHEN in_mtime_us < 0 THEN mtime_us ELSE in_mtime_us END,
      ctime_us = in_now_us
  WHERE content = in_path;
  IF NOT FOUND THEN
    out_error := dbos_fs_missing(in_path);
  END IF;
END $$;
