-- The services as PL/pgSQL functions dbos_<procedure>, called with named arguments. Each returns
-- the same columns, in the same order, as the SQLite procedure of that name. A function that
-- returns one row sets its OUT parameters and calls RETURN NEXT: RETURN QUERY SELECT would run a
-- whole query for that row.

-- Capacity that appears (a new worker, a larger one) goes to the deferred tasks of its partition
-- first, oldest first, as a completion's freed unit does; not when the resize was refused. The
-- partition's advisory lock orders this against deferrals and completions.
CREATE OR REPLACE FUNCTION dbos_worker_upsert(worker_id bigint, p_key bigint, capacity bigint,
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_busy bigint) LANGUAGE plpgsql AS $$
DECLARE
  b bigint;
  moved bigint := 0;
BEGIN
  -- The partition's lock before the worker's row, in the order dbos_task_complete takes them.
  PERFORM pg_advisory_xact_lock(7301, hashint8(dbos_worker_upsert.p_key));
  SELECT w.capacity - w.unused_capacity INTO b FROM worker w
  WHERE w.worker_id = dbos_worker_upsert.worker_id FOR UPDATE;
  IF b IS NULL THEN
    INSERT INTO worker (worker_id, p_key, capacity, unused_capacity, created_us)
    VALUES (dbos_worker_upsert.worker_id, dbos_worker_upsert.p_key, dbos_worker_upsert.capacity,
            dbos_worker_upsert.capacity, now_us);
  ELSIF dbos_worker_upsert.capacity >= b THEN
    UPDATE worker w SET capacity = dbos_worker_upsert.capacity,
                        unused_capacity = dbos_worker_upsert.capacity - b,
                        p_key = dbos_worker_upsert.p_key
    WHERE w.worker_id = dbos_worker_upsert.worker_id;
  END IF;
  IF b IS NULL OR dbos_worker_upsert.capacity >= b THEN
    WITH next AS (
      SELECT t.task_id FROM task t
      WHERE t.state = 'deferred' AND t.p_key = dbos_worker_upsert.p_key ORDER BY t.task_id
      LIMIT (SELECT w.unused_capacity FROM worker w
             WHERE w.worker_id = dbos_worker_upsert.worker_id)
      FOR UPDATE SKIP LOCKED)
    UPDATE task t SET state = 'running', worker_id = dbos_worker_upsert.worker_id,
                      assigned_us = now_us
    FROM next WHERE t.task_id = next.task_id;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 THEN
      UPDATE worker w SET unused_capacity = w.unused_capacity - moved
      WHERE w.worker_id = dbos_worker_upsert.worker_id;
    END IF;
  END IF;
  out_busy := b;
  RETURN NEXT;
END $$;

CREATE OR REPLACE FUNCTION dbos_worker_remove(worker_id bigint, now_us bigint DEFAULT 0)
RETURNS TABLE (out_busy bigint) LANGUAGE plpgsql AS $$
DECLARE
  b bigint;
BEGIN
  SELECT w.capacity - w.unused_capacity INTO b FROM worker w
  WHERE w.worker_id = dbos_worker_remove.worker_id FOR UPDATE;
  IF b = 0 THEN
    DELETE FROM worker w WHERE w.worker_id = dbos_worker_remove.worker_id;
  END IF;
  out_busy := b;
  RETURN NEXT;
END $$;

-- Finish a running task; the oldest deferred task of its partition takes the freed unit, else the
-- worker gets it back.
CREATE OR REPLACE FUNCTION dbos_task_complete(task_id bigint, now_us bigint DEFAULT 0)
RETURNS TABLE (out_state text, out_next_task bigint, out_worker_id bigint, out_p_key bigint)
LANGUAGE plpgsql AS $$
DECLARE
  st text;
  wid bigint;
  pk bigint;
  nxt bigint;
BEGIN
  SELECT t.state, t.worker_id, t.p_key INTO st, wid, pk FROM task t
  WHERE t.task_id = dbos_task_complete.task_id FOR UPDATE;
  IF st IS NULL OR st <> 'running' THEN
    out_state := st;
    out_next_task := NULL::bigint;
    out_worker_id := wid;
    out_p_key := pk;
    RETURN NEXT;
    RETURN;
  END IF;
  PERFORM pg_advisory_xact_lock(7301, hashint8(pk));
  UPDATE task t SET state = 'done', finished_us = now_us
  WHERE t.task_id = dbos_task_complete.task_id;
  SELECT t.task_id INTO nxt FROM task t WHERE t.state = 'deferred' AND t.p_key = pk
  ORDER BY t.task_id LIMIT 1 FOR UPDATE SKIP LOCKED;
  IF nxt IS NOT NULL THEN
    UPDATE task t SET state = 'running', worker_id = wid, assigned_us = now_us
    WHERE t.task_id = nxt;
  ELSE
    UPDATE worker w SET unused_capacity = w.unused_capacity + 1 WHERE w.worker_id = wid;
  END IF;
  out_state := st;
  out_next_task := nxt;
  out_worker_id := wid;
  out_p_key := pk;
  RETURN NEXT;
END $$;

CREATE OR REPLACE FUNCTION dbos_endpoint_create(endpoint_id bigint, name text DEFAULT NULL,
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_ok bigint) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO endpoint AS e (endpoint_id, name, created_us)
  VALUES (dbos_endpoint_create.endpoint_id, dbos_endpoint_create.name, now_us)
  ON CONFLICT ON CONSTRAINT endpoint_pkey DO UPDATE SET name = coalesce(excluded.name, e.name);
  out_ok := 1::bigint;
  RETURN NEXT;
END $$;

CREATE OR REPLACE FUNCTION dbos_endpoint_known(endpoint_id bigint, now_us bigint DEFAULT 0)
RETURNS TABLE (out_known bigint) LANGUAGE sql AS $$
  SELECT CASE WHEN EXISTS (SELECT 1 FROM endpoint e WHERE e.endpoint_id = $1) THEN 1 ELSE 0 END::bigint;
$$;

CREATE OR REPLACE FUNCTION dbos_channel_last(sender_id bigint, receiver_id bigint,
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_last_sent bigint) LANGUAGE sql AS $$
  SELECT coalesce((SELECT c.last_sent_id FROM channel c
                   WHERE c.sender_id = $1 AND c.receiver_id = $2), 0);
$$;

-- Why a message from sender_id to receiver_id cannot be sent ('unknown receiver', 'unknown
-- sender'), or NULL when both endpoints exist. PL/pgSQL, not SQL: called from the send functions'
-- PL/pgSQL, an SQL function's body was parsed and planned again in every transaction (it
-- was 40 % of a one-message send's server time); PL/pgSQL keeps its plans for the session.
CREATE OR REPLACE FUNCTION dbos_endpoint_problem(sender_id bigint, receiver_id bigint)
RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM endpoint e
                 WHERE e.endpoint_id = dbos_endpoint_problem.receiver_id) THEN
    RETURN 'unknown receiver';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM endpoint e
                 WHERE e.endpoint_id = dbos_endpoint_problem.sender_id) THEN
    RETURN 'unknown sender';
  END IF;
  RETURN NULL;
END $$;

-- Whether a send must NOTIFY: some listener other than the sending Database handle (its
-- dbos.origin) is registered. The shared lock is held to commit, and a listener joins under the
-- same lock taken exclusively, in the transaction that LISTENs: so a listener either joined
-- before this look (and is seen) or waits for this transaction's commit before its receivers
-- first look at their tables (and find the message). Under REPEATABLE READ or SERIALIZABLE the
-- look could read a snapshot older than the lock; such a transaction always notifies.
CREATE OR REPLACE FUNCTION dbos_others_listen() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RETURN true;
  END IF;
  PERFORM pg_advisory_xact_lock_shared(7302, 0);
  RETURN EXISTS (SELECT 1 FROM dbos_listener l
                 WHERE l.origin IS DISTINCT FROM current_setting('dbos.origin', true));
END $$;

-- A listening connection joins (`origin`: its Database handle's, or a token of its own), in the
-- transaction of its first LISTEN. Rows of connections that are gone go at the same time. The
-- join first polls for the lock: a request that waits makes PostgreSQL queue every later send
-- behind it, so a transaction that waited, inside itself, for another session's send would
-- hold the join and that send up until lock_timeout. After 50 ms of sends in flight it waits.
CREATE OR REPLACE FUNCTION dbos_listener_join(origin text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..50 LOOP
    EXIT WHEN pg_try_advisory_xact_lock(7302, 0);
    PERFORM pg_sleep(0.001);
    IF i = 50 THEN
      PERFORM pg_advisory_xact_lock(7302, 0);
    END IF;
  END LOOP;
  DELETE FROM dbos_listener l
  WHERE l.origin = dbos_listener_join.origin
     OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid);
  INSERT INTO dbos_listener (origin, backend_pid, joined_us)
  VALUES (dbos_listener_join.origin, pg_backend_pid(),
          (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
END $$;

-- A listening connection that stops (before it closes); only its own row.
CREATE OR REPLACE FUNCTION dbos_listener_leave(origin text) RETURNS void LANGUAGE sql AS $$
  DELETE FROM dbos_listener l
  WHERE l.origin = dbos_listener_leave.origin AND l.backend_pid = pg_backend_pid();
$$;

-- One message; a message id not above the pair's highest is a duplicate and is dropped. The
-- receiver's channel is notified at commit when another handle listens (dbos_others_listen),
-- with the sending Database's origin (a session setting) as payload: that Database's
-- notification thread skips its own, whose receivers its senders woke already.
CREATE OR REPLACE FUNCTION dbos_send(sender_id bigint, receiver_id bigint, message_id bigint,
    data bytea, now_us bigint DEFAULT 0)
RETURNS TABLE (out_outcome text) LANGUAGE plpgsql AS $$
DECLARE
  problem text := dbos_endpoint_problem(dbos_send.sender_id, dbos_send.receiver_id);
BEGIN
  IF problem IS NOT NULL THEN
    out_outcome := problem;
    RETURN NEXT;
    RETURN;
  END IF;
  INSERT INTO channel AS c (sender_id, receiver_id, last_sent_id)
  VALUES (dbos_send.sender_id, dbos_send.receiver_id, dbos_send.message_id)
  ON CONFLICT ON CONSTRAINT channel_pkey DO UPDATE SET last_sent_id = excluded.last_sent_id
  WHERE excluded.last_sent_id > c.last_sent_id;
  IF NOT FOUND THEN
    out_outcome := 'duplicate';
    RETURN NEXT;
    RETURN;
  END IF;
  INSERT INTO message (receiver_id, sender_id, message_id, data, sent_us)
  VALUES (dbos_send.receiver_id, dbos_send.sender_id, dbos_send.message_id, dbos_send.data,
          now_us);
  IF dbos_others_listen() THEN
    PERFORM pg_notify('dbos_rx_' || dbos_send.receiver_id::text,
                     coalesce(current_setting('dbos.origin', true), ''));
  END IF;
  out_outcome := 'sent';
  RETURN NEXT;
END $$;

-- Messages first_id, first_id + 1, … to one receiver in one call (one round trip for the
-- batch). The payloads are cut from one bytea by `pieces`, a JSON array of integers,
-- (offset from 1) << 32 | length. All or nothing: a first id not above the pair's highest makes
-- the whole batch a duplicate, and nothing is written.
CREATE OR REPLACE FUNCTION dbos_send_batch(sender_id bigint, receiver_id bigint, first_id bigint,
    data bytea, pieces jsonb, now_us bigint DEFAULT 0)
RETURNS TABLE (out_outcome text) LANGUAGE plpgsql AS $$
DECLARE
  n bigint := jsonb_array_length(pieces);
  problem text := dbos_endpoint_problem(dbos_send_batch.sender_id, dbos_send_batch.receiver_id);
BEGIN
  IF problem IS NOT NULL THEN
    out_outcome := problem;
    RETURN NEXT;
    RETURN;
  END IF;
  INSERT INTO channel AS c (sender_id, receiver_id, last_sent_id)
  VALUES (dbos_send_batch.sender_id, dbos_send_batch.receiver_id, first_id + n - 1)
  ON CONFLICT ON CONSTRAINT channel_pkey DO UPDATE SET last_sent_id = excluded.last_sent_id
  WHERE c.last_sent_id < dbos_send_batch.first_id;
  IF NOT FOUND THEN
    out_outcome := 'duplicate';
    RETURN NEXT;
    RETURN;
  END IF;
  -- One INSERT for the batch (a statement per message was 5 µs of server time a message more):
  -- the rows go in, and take their seq, in the batch's order.
  INSERT INTO message (receiver_id, sender_id, message_id, data, sent_us)
  SELECT dbos_send_batch.receiver_id, dbos_send_batch.sender_id, first_id + e.pos - 1,
         substring(dbos_send_batch.data FROM (e.elem::bigint >> 32)::int
                   FOR (e.elem::bigint & 4294967295)::int), now_us
  FROM jsonb_array_elements(pieces) WITH ORDINALITY AS e(elem, pos) ORDER BY e.pos;
  IF dbos_others_listen() THEN
    PERFORM pg_notify('dbos_rx_' || dbos_send_batch.receiver_id::text,
                     coalesce(current_setting('dbos.origin', true), ''));
  END IF;
  out_outcome := 'sent';
  RETURN NEXT;
END $$;

-- One message to several receivers in one call: `targets` is a JSON array of [receiver_id,
-- message_id, k], in sending order (k numbers SQLite's per-receiver seq; here seq is one
-- sequence and k is not read). All or nothing: an unknown receiver, or an id not above its
-- pair's highest (a duplicate), is named in the answer before anything is written; a pair that
-- another transaction advanced meanwhile fails the whole transaction as a serialization
-- failure, which the caller retries.
CREATE OR REPLACE FUNCTION dbos_multicast(sender_id bigint, targets jsonb, data bytea,
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_outcome text, out_receiver_id bigint) LANGUAGE plpgsql AS $$
DECLARE
  t record;
  bad bigint;
  notify boolean;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM endpoint e WHERE e.endpoint_id = dbos_multicast.sender_id) THEN
    out_outcome := 'unknown sender';
    out_receiver_id := NULL::bigint;
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT (x.elem->>0)::bigint INTO bad
  FROM jsonb_array_elements(targets) WITH ORDINALITY AS x(elem, pos)
  WHERE NOT EXISTS (SELECT 1 FROM endpoint e WHERE e.endpoint_id = (x.elem->>0)::bigint)
  ORDER BY x.pos LIMIT 1;
  IF bad IS NOT NULL THEN
    out_outcome := 'unknown receiver';
    out_receiver_id := bad;
    RETURN NEXT;
    RETURN;
  END IF;
  SELECT c.receiver_id INTO bad
  FROM jsonb_array_elements(targets) WITH ORDINALITY AS x(elem, pos)
  JOIN channel c ON c.sender_id = dbos_multicast.sender_id
                AND c.receiver_id = (x.elem->>0)::bigint
  WHERE c.last_sent_id >= (x.elem->>1)::bigint
  ORDER BY x.pos LIMIT 1;
  IF bad IS NOT NULL THEN
    out_outcome := 'duplicate';
    out_receiver_id := bad;
    RETURN NEXT;
    RETURN;
  END IF;
  notify := dbos_others_listen();
  FOR t IN SELECT (x.elem->>0)::bigint AS rid, (x.elem->>1)::bigint AS mid
           FROM jsonb_array_elements(targets) WITH ORDINALITY AS x(elem, pos) ORDER BY x.pos
  LOOP
    INSERT INTO channel AS c (sender_id, receiver_id, last_sent_id)
    VALUES (dbos_multicast.sender_id, t.rid, t.mid)
    ON CONFLICT ON CONSTRAINT channel_pkey DO UPDATE SET last_sent_id = excluded.last_sent_id
    WHERE c.last_sent_id < excluded.last_sent_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'dbos: the channel % -> % was advanced by another transaction',
        dbos_multicast.sender_id, t.rid USING ERRCODE = 'serialization_failure';
    END IF;
    INSERT INTO message (receiver_id, sender_id, message_id, data, sent_us)
    VALUES (t.rid, dbos_multicast.sender_id, t.mid, data, now_us);
    IF notify THEN
      PERFORM pg_notify('dbos_rx_' || t.rid::text,
                       coalesce(current_setting('dbos.origin', true), ''));
    END IF;
  END LOOP;
  out_outcome := 'sent';
  out_receiver_id := NULL::bigint;
  RETURN NEXT;
END $$;

-- The receiver's oldest messages, deleted as they are taken (exactly once).
CREATE OR REPLACE FUNCTION dbos_recv(receiver_id bigint, max_count bigint DEFAULT 1,
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_seq bigint, out_sender_id bigint, out_message_id bigint, out_data bytea)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
  DELETE FROM message m
  WHERE m.seq IN (SELECT m2.seq FROM message m2 WHERE m2.receiver_id = dbos_recv.receiver_id
                  ORDER BY m2.seq LIMIT max_count FOR UPDATE SKIP LOCKED)
  RETURNING m.seq, m.sender_id, m.message_id, m.data;
END $$;

CREATE OR REPLACE FUNCTION dbos_has_mail(receiver_id bigint, now_us bigint DEFAULT 0)
RETURNS TABLE (out_any bigint) LANGUAGE sql AS $$
  SELECT CASE WHEN EXISTS (SELECT 1 FROM message m WHERE m.receiver_id = $1) THEN 1 ELSE 0 END::bigint;
$$;

-- The pick of any scheduler, found by name: dbos_pick_<name>, so a new scheduler file needs no
-- change here. dbos_sched and dbos_sched_batch call the shipped schedulers' picks directly, as an
-- expression PL/pgSQL evaluates without a query around it: a query around each pick cost a task
-- about 10 us of the server's time, a sixth of it.
CREATE OR REPLACE FUNCTION dbos_pick(scheduler text, want_p_key bigint, OUT worker_id bigint,
    OUT p_key bigint, OUT defer boolean)
LANGUAGE plpgsql AS $$
BEGIN
  IF to_regprocedure(format('%I(bigint)', 'dbos_pick_' || scheduler)) IS NULL THEN
    RAISE EXCEPTION 'scheduler % defines no function dbos_pick_%(bigint)', scheduler, scheduler
      USING ERRCODE = 'undefined_function';
  END IF;
  EXECUTE format('SELECT * FROM %I($1)', 'dbos_pick_' || scheduler)
    INTO worker_id, p_key, defer USING want_p_key;
END $$;

-- One task through the named scheduler: its pick, then the task's row. One row (task_id, p_key,
-- worker_id), worker_id NULL for a deferred task; none when the scheduler refused the task.
CREATE OR REPLACE FUNCTION dbos_sched(scheduler text, p_key bigint, task_id bigint DEFAULT NULL,
    priority bigint DEFAULT 0, payload text DEFAULT NULL, now_us bigint DEFAULT 0)
RETURNS TABLE (out_task_id bigint, out_p_key bigint, out_worker_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  pick record;
  pk bigint;
  tid bigint;
BEGIN
  CASE scheduler
    WHEN 'fifo' THEN pick := dbos_pick_fifo(dbos_sched.p_key);
    WHEN 'least_loaded' THEN pick := dbos_pick_least_loaded(dbos_sched.p_key);
    WHEN 'least_loaded_global' THEN pick := dbos_pick_least_loaded_global(dbos_sched.p_key);
    WHEN 'locality' THEN pick := dbos_pick_locality(dbos_sched.p_key);
    ELSE pick := dbos_pick(scheduler, dbos_sched.p_key);
  END CASE;
  IF pick.worker_id IS NULL AND NOT coalesce(pick.defer, false) THEN
    RETURN;
  END IF;
  -- A task that waits stays in its own partition; one that runs moves to its worker's.
  pk := CASE WHEN pick.worker_id IS NULL THEN dbos_sched.p_key ELSE pick.p_key END;
  -- Two INSERTs rather than coalesce(task_id, nextval(pg_get_serial_sequence(…))), which
  -- looked the sequence up in the catalogs on every call.
  IF dbos_sched.task_id IS NULL THEN
    INSERT INTO task AS t (p_key, worker_id, state, priority, scheduler, payload, created_us,
                           assigned_us)
    VALUES (pk, pick.worker_id,
            CASE WHEN pick.worker_id IS NULL THEN 'deferred' ELSE 'running' END,
            dbos_sched.priority, dbos_sched.scheduler, dbos_sched.payload, now_us,
            CASE WHEN pick.worker_id IS NULL THEN NULL ELSE now_us END)
    RETURNING t.task_id INTO tid;
  ELSE
    INSERT INTO task AS t (task_id, p_key, worker_id, state, priority, scheduler, payload,
                           created_us, assigned_us)
    VALUES (dbos_sched.task_id, pk, pick.worker_id,
            CASE WHEN pick.worker_id IS NULL THEN 'deferred' ELSE 'running' END,
            dbos_sched.priority, dbos_sched.scheduler, dbos_sched.payload, now_us,
            CASE WHEN pick.worker_id IS NULL THEN NULL ELSE now_us END)
    RETURNING t.task_id INTO tid;
  END IF;
  out_task_id := tid;
  out_p_key := pk;
  out_worker_id := pick.worker_id;
  RETURN NEXT;
END $$;

-- A batch of tasks in one call, so a batch is one round trip instead of one per task: each
-- element of `tasks` (a JSON array of {p_key, task_id, priority, payload}) goes through the
-- scheduler's pick, in order, in the caller's transaction, and the tasks' rows are written by one
-- INSERT at the end (a statement per task was a third of the server's time per task). One row
-- per element that was not refused: its position (from 1), task_id, p_key and worker_id.
CREATE OR REPLACE FUNCTION dbos_sched_batch(scheduler text, tasks jsonb, now_us bigint DEFAULT 0)
RETURNS TABLE (out_pos bigint, out_task_id bigint, out_p_key bigint, out_worker_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  t record;
  pick record;
  ids regclass := pg_get_serial_sequence('task', 'task_id')::regclass;
  n int := 0;
  pos bigint[];
  tid bigint[];
  pk bigint[];
  wid bigint[];
  pri bigint[];
  pay text[];
BEGIN
  FOR t IN SELECT e.pos, x.p_key, x.task_id, coalesce(x.priority, 0) AS priority, x.payload
           FROM jsonb_array_elements(tasks) WITH ORDINALITY AS e(elem, pos),
                jsonb_to_record(e.elem) AS x(p_key bigint, task_id bigint, priority bigint,
                                              payload text)
           ORDER BY e.pos
  LOOP
    CASE scheduler
      WHEN 'fifo' THEN pick := dbos_pick_fifo(t.p_key);
      WHEN 'least_loaded' THEN pick := dbos_pick_least_loaded(t.p_key);
      WHEN 'least_loaded_global' THEN pick := dbos_pick_least_loaded_global(t.p_key);
      WHEN 'locality' THEN pick := dbos_pick_locality(t.p_key);
      ELSE pick := dbos_pick(scheduler, t.p_key);
    END CASE;
    CONTINUE WHEN pick.worker_id IS NULL AND NOT coalesce(pick.defer, false);
    n := n + 1;
    pos[n] := t.pos;
    tid[n] := coalesce(t.task_id, nextval(ids));
    pk[n] := CASE WHEN pick.worker_id IS NULL THEN t.p_key ELSE pick.p_key END;
    wid[n] := pick.worker_id;
    pri[n] := t.priority;
    pay[n] := t.payload;
  END LOOP;
  IF n = 0 THEN
    RETURN;
  END IF;
  INSERT INTO task (task_id, p_key, worker_id, state, priority, scheduler, payload, created_us,
                    assigned_us)
  SELECT u.tid, u.pk, u.wid, CASE WHEN u.wid IS NULL THEN 'deferred' ELSE 'running' END, u.pri,
         dbos_sched_batch.scheduler, u.pay, now_us,
         CASE WHEN u.wid IS NULL THEN NULL ELSE now_us END
  FROM unnest(tid, pk, wid, pri, pay) AS u(tid, pk, wid, pri, pay);
  RETURN QUERY SELECT * FROM unnest(pos, tid, pk, wid);
END $$;

-- Scheduler functions of schema 2's first releases, which recorded the task themselves; the
-- picks above replace them. Without the NOTICE that a fresh database never had them.
SET client_min_messages = warning;
DROP FUNCTION IF EXISTS dbos_sched_fifo(bigint, bigint, bigint, text, text, bigint);
DROP FUNCTION IF EXISTS dbos_sched_least_loaded(bigint, bigint, bigint, text, text, bigint);
DROP FUNCTION IF EXISTS dbos_sched_least_loaded_global(bigint, bigint, bigint, text, text, bigint);
DROP FUNCTION IF EXISTS dbos_sched_locality(bigint, bigint, bigint, text, text, bigint);
RESET client_min_messages;
