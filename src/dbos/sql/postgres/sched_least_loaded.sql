-- Least-loaded scheduler (Figure 4): FIFO plus `ORDER BY unused_capacity DESC`.
CREATE OR REPLACE FUNCTION dbos_sched_least_loaded(p_key bigint, task_id bigint DEFAULT NULL,
    priority bigint DEFAULT 0, payload text DEFAULT NULL, scheduler text DEFAULT 'least_loaded',
    now_us bigint DEFAULT 0)
RETURNS TABLE (out_task_id bigint, out_p_key bigint, out_worker_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  wid bigint;
  tid bigint;
BEGIN
  UPDATE worker w SET unused_capacity = w.unused_capacity - 1
  WHERE w.worker_id = (SELECT w2.worker_id FROM worker w2
                       WHERE w2.p_key = dbos_sched_least_loaded.p_key AND w2.unused_capacity > 0
                       ORDER BY w2.unused_capacity DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING w.worker_id INTO wid;
  IF wid IS NULL THEN
    RETURN;
  END IF;
  -- Two INSERTs rather than coalesce(task_id, nextval(pg_get_serial_sequence(…))), which
  -- looked the sequence up in the catalogs on every call.
  IF dbos_sched_least_loaded.task_id IS NULL THEN
    INSERT INTO task AS t (p_key, worker_id, state, priority, scheduler, payload, created_us,
                           assigned_us)
    VALUES (dbos_sched_least_loaded.p_key, wid, 'running',
            dbos_sched_least_loaded.priority, dbos_sched_least_loaded.scheduler,
            dbos_sched_least_loaded.payload, now_us, now_us)
    RETURNING t.task_id INTO tid;
  ELSE
    INSERT INTO task AS t (task_id, p_key, worker_id, state, priority, scheduler, payload,
                           created_us, assigned_us)
    VALUES (dbos_sched_least_loaded.task_id, dbos_sched_least_loaded.p_key, wid, 'running',
            dbos_sched_least_loaded.priority, dbos_sched_least_loaded.scheduler,
            dbos_sched_least_loaded.payload, now_us, now_us)
    RETURNING t.task_id INTO tid;
  END IF;
  -- The OUT parameters and RETURN NEXT: RETURN QUERY ran a whole query for one row.
  out_task_id := tid;
  out_p_key := dbos_sched_least_loaded.p_key;
  out_worker_id := wid;
  RETURN NEXT;
END $$;
