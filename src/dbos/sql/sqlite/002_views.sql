-- Version 2: views for provenance and debugging over the task history and the queues.
CREATE VIEW TaskHistory AS
  SELECT task_id, p_key, worker_id, state, scheduler, priority, created_us, assigned_us,
         finished_us, assigned_us - created_us AS wait_us, finished_us - assigned_us AS run_us
  FROM Task;

CREATE VIEW WorkerLoad AS
  SELECT w.p_key, w.worker_id, w.capacity, w.unused_capacity,
         w.capacity - w.unused_capacity AS running,
         (SELECT count(*) FROM Task t WHERE t.state = 'deferred' AND t.p_key = w.p_key) AS deferred_in_partition
  FROM Worker w;

CREATE VIEW Mailbox AS
  SELECT receiver_id, count(*) AS messages, sum(length(data)) AS bytes, min(sent_us) AS oldest_us
  FROM Message GROUP BY receiver_id;
