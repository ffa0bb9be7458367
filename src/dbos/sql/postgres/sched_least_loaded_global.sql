-- Least-loaded over all partitions (Figure 4 without `p_key = P`): the task moves to the
-- partition of the worker with the most unused capacity anywhere.
CREATE OR REPLACE FUNCTION dbos_pick_least_loaded_global(want_p_key bigint,
    OUT worker_id bigint, OUT p_key bigint, OUT defer boolean)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE worker w SET unused_capacity = w.unused_capacity - 1
  WHERE w.worker_id = (SELECT w2.worker_id FROM worker w2 WHERE w2.unused_capacity > 0
                       ORDER BY w2.unused_capacity DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING w.worker_id, w.p_key INTO worker_id, p_key;
  defer := false;
END $$;
