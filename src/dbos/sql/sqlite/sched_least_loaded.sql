-- Least-loaded scheduler (Figure 4): FIFO plus one clause, the worker of partition :p_key with
-- the most unused capacity.
SELECT worker_id FROM Worker WHERE p_key = :p_key AND unused_capacity > 0
ORDER BY unused_capacity DESC LIMIT 1;
UPDATE Worker SET unused_capacity = unused_capacity - 1 WHERE worker_id = :worker_id;
INSERT INTO Task (task_id, p_key, worker_id, state, priority, scheduler, payload, created_us,
                  assigned_us)
SELECT :task_id, :p_key, :worker_id, 'running', :priority, :scheduler, :payload, :now_us, :now_us
WHERE :worker_id IS NOT NULL
RETURNING task_id, p_key, worker_id;
