-- The paper's simple FIFO scheduler (Figure 2): the first worker of partition p_key with unused
-- capacity takes the task; none: the task is refused (the caller tries another partition).
--
-- A scheduler is the policy alone, dbos_pick_<name>: it takes one unit of capacity from the
-- worker it chooses and says which, or that it chose none and whether the task then waits in its
-- partition ('deferred') or is refused. dbos_sched and dbos_sched_batch (services.sql) record the
-- tasks, a batch with one INSERT. SKIP LOCKED lets concurrent schedulers pass each other; the
-- CHECK on unused_capacity makes double assignment impossible.
CREATE OR REPLACE FUNCTION dbos_pick_fifo(want_p_key bigint, OUT worker_id bigint,
    OUT p_key bigint, OUT defer boolean)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE worker w SET unused_capacity = w.unused_capacity - 1
  WHERE w.worker_id = (SELECT w2.worker_id FROM worker w2
                       WHERE w2.p_key = want_p_key AND w2.unused_capacity > 0
                       LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING w.worker_id, w.p_key INTO worker_id, p_key;
  defer := false;
END $$;
