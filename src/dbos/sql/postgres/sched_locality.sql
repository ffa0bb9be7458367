-- Locality-aware scheduler with deferred assignment (Figure 3): the task runs in its home
-- partition p_key; when no worker there has capacity it waits there unassigned ('deferred') until
-- dbos_task_complete hands it a freed unit. The partition's advisory lock orders this against
-- completions, so a unit never frees while a task is being deferred in the same partition.
CREATE OR REPLACE FUNCTION dbos_sched_locality(p_key bigint, task_id bigint DEFAULT NULL,
    priority bigint DEFAULT 0, payload text DEFAULT NULL, scheduler text DEFAULT 'locality',
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_task_id bigint, out_p_key bigint, out_worker_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  wid bigint;
  tid bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(7301, dbos_sched_locality.p_key::int);
  UPDATE worker w SET unused_capacity = w.unused_capacity - 1
  WHERE w.worker_id = (SELECT w2.worker_id FROM worker w2
                       WHERE w2.p_key = dbos_sched_locality.p_key AND w2.unused_capacity > 0
                       LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING w.worker_id INTO wid;
  -- Two INSERTs rather than coalesce(task_id, nextval(pg_get_serial_sequence(…))), which
  -- looked the sequence up in the catalogs on every call.
  IF dbos_sched_locality.task_id IS NULL THEN
    INSERT INTO task AS t (p_key, worker_id, state, priority, scheduler, payload, created_us,
                           assigned_us)
    VALUES (dbos_sched_locality.p_key, wid,
            CASE WHEN wid IS NULL THEN 'deferred' ELSE 'running' END,
            dbos_sched_locality.priority, dbos_sched_locality.scheduler,
            dbos_sched_locality.payload, now_us,
            CASE WHEN wid IS NULL THEN NULL ELSE now_us END)
    RETURNING t.task_id INTO tid;
  ELSE
    INSERT INTO task AS t (task_id, p_key, worker_id, state, priority, scheduler, payload,
                           created_us, assigned_us)
    VALUES (dbos_sched_locality.task_id, dbos_sched_locality.p_key, wid,
            CASE WHEN wid IS NULL THEN 'deferred' ELSE 'running' END,
            dbos_sched_locality.priority, dbos_sched_locality.scheduler,
            dbos_sched_locality.payload, now_us,
            CASE WHEN wid IS NULL THEN NULL ELSE now_us END)
    RETURNING t.task_id INTO tid;
  END IF;
  -- The OUT parameters and RETURN NEXT: RETURN QUERY ran a whole query for one row.
  out_task_id := tid;
  out_p_key := dbos_sched_locality.p_key;
  out_worker_id := wid;
  RETURN NEXT;
END $$;
