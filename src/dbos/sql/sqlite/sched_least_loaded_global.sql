-- Least-loaded over all partitions (Figure 4 without `p_key = P`): the task moves to the
-- partition of the worker with the most unused capacity anywhere.
SELECT worker_id, p_key AS worker_p_key FROM Worker WHERE unused_capacity > 0
ORDER BY unused_capacity DESC LIMIT 1;
UPDATE Worker SET unused_capacity = unused_capacity - 1 WHERE worker_id = :worker_id;
INSERT INTO Task (task_id, p_key, worker_id, state, priority, scheduler, payload, created_us,
                  assigned_us)
SELECT :task_id, :worker_p_key, :worker_id, 'running', :priority, :scheduler, :payload, :now_us,
       :now_us
WHERE :worker_id IS NOT NULL
RETURNING task_id, p_key, worker_id;
