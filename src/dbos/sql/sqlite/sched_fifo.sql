-- The paper's simple FIFO scheduler (Figure 2): the first worker of partition :p_key with unused
-- capacity takes the task. No such worker: nothing is recorded and no row comes back, so the
-- caller tries another partition.
-- Inputs: :p_key :task_id (NULL: assign one) :priority :payload :scheduler :now_us.
-- Each statement's first row becomes variables for the next; the last statement's rows are the
-- result (task_id, p_key, worker_id).
SELECT worker_id FROM Worker WHERE p_key = :p_key AND unused_capacity > 0 LIMIT 1;
UPDATE Worker SET unused_capacity = unused_capacity - 1 WHERE worker_id = :worker_id;
INSERT INTO Task (task_id, p_key, worker_id, state, priority, scheduler, payload, created_us,
                  assigned_us)
SELECT :task_id, :p_key, :worker_id, 'running', :priority, :scheduler, :payload, :now_us, :now_us
WHERE :worker_id IS NOT NULL
RETURNING task_id, p_key, worker_id;
