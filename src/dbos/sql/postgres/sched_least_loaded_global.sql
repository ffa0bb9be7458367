-- Least-loaded over all partitions (Figure 4 without `p_key = P`): the task moves to the
-- partition of the worker with the most unused capacity anywhere.
CREATE OR REPLACE FUNCTION dbos_sched_least_loaded_global(p_key bigint,
    task_id bigint DEFAULT NULL, priority bigint DEFAULT 0, payload text DEFAULT NULL,
    scheduler text DEFAULT 'least_loaded_global', now_us bigint DEFAULT 0)
RETURNS TABLE (out_task_id bigint, out_p_key bigint, out_worker_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  wid bigint;
  wp bigint;
  tid bigint;
BEGIN
  UPDATE worker w SET unused_capacity = w.unused_capacity - 1
  WHERE w.worker_id = (SELECT w2.worker_id FROM worker w2 WHERE w2.unused_capacity > 0
                       ORDER BY w2.unused_capacity DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING w.worker_id, w.p_key INTO wid, wp;
  IF wid IS NULL THEN
    RETURN;
  END IF;
  -- Two INSERTs rather than coalesce(task_id, nextval(pg_get_serial_sequence(…))), which
  -- looked the sequence up in the catalogs on every call.
  IF dbos_sched_least_loaded_global.task_id IS NULL THEN
    INSERT INTO task AS t (p_key, worker_id, state, priority, scheduler, payload, created_us,
                           assigned_us)
    VALUES (wp, wid, 'running',
            dbos_sched_least_loaded_global.priority, dbos_sched_least_loaded_global.scheduler,
            dbos_sched_least_loaded_global.payload, now_us, now_us)
    RETURNING t.task_id INTO tid;
  ELSE
    INSERT INTO task AS t (task_id, p_key, worker_id, state, priority, scheduler, payload,
                           created_us, assigned_us)
    VALUES (dbos_sched_least_loaded_global.task_id, wp, wid, 'running',
            dbos_sched_least_loaded_global.priority, dbos_sched_least_loaded_global.scheduler,
            dbos_sched_least_loaded_global.payload, now_us, now_us)
    RETURNING t.task_id INTO tid;
  END IF;
  -- The OUT parameters and RETURN NEXT: RETURN QUERY ran a whole query for one row.
  out_task_id := tid;
  out_p_key := wp;
  out_worker_id := wid;
  RETURN NEXT;
END $$;
