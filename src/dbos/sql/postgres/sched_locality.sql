-- Locality-aware scheduler with deferred assignment (Figure 3): the task runs in its home
-- partition p_key; when no worker there has capacity it waits there unassigned ('deferred') until
-- dbos_task_complete hands it a freed unit. The partition's advisory lock, held to the end of the
-- transaction that records the task, orders this against completions, so a unit never frees
-- while a task is being deferred in the same partition. The lock is keyed by the partition key's
-- 32-bit hash (keys are 64-bit; two partitions that share a hash only wait for each other).
CREATE OR REPLACE FUNCTION dbos_pick_locality(want_p_key bigint, OUT worker_id bigint,
    OUT p_key bigint, OUT defer boolean)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7301, hashint8(want_p_key));
  UPDATE worker w SET unused_capacity = w.unused_capacity - 1
  WHERE w.worker_id = (SELECT w2.worker_id FROM worker w2
                       WHERE w2.p_key = want_p_key AND w2.unused_capacity > 0
                       LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING w.worker_id, w.p_key INTO worker_id, p_key;
  defer := true;
END $$;
