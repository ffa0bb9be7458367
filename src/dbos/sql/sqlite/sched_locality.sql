-- Locality-aware scheduler with deferred assignment (Figure 3): the task runs on a worker of its
-- home partition :p_key; when none has capacity it is recorded there unassigned ('deferred') and
-- task_complete hands it the next unit of capacity that frees in that partition.
SELECT worker_id FROM Worker WHERE p_key = :p_key AND unused_capacity > 0 LIMIT 1;
UPDATE Worker SET unused_capacity = unused_capacity - 1 WHERE worker_id = :worker_id;
INSERT INTO Task (task_id, p_key, worker_id, state, priority, scheduler, payload, created_us,
                  assigned_us)
VALUES (:task_id, :p_key, :worker_id,
        CASE WHEN :worker_id IS NULL THEN 'deferred' ELSE 'running' END,
        :priority, :scheduler, :payload, :now_us,
        CASE WHEN :worker_id IS NULL THEN NULL ELSE :now_us END)
RETURNING task_id, p_key, worker_id;
