-- The services as procedures: `-- name: X` starts procedure X. Statements run in order in one
-- transaction; named inputs are :variables, and the columns of the first row of each statement
-- that yields rows become variables for the statements after it (no row leaves them as they
-- were: NULL unless set before). The rows of the last statement that yields columns (a SELECT or
-- a write with RETURNING) are the procedure's result.

-- name: worker_upsert
SELECT capacity - unused_capacity AS busy FROM Worker WHERE worker_id = :worker_id;
INSERT INTO Worker (worker_id, p_key, capacity, unused_capacity, created_us)
SELECT :worker_id, :p_key, :capacity, :capacity, :now_us WHERE :busy IS NULL;
UPDATE Worker SET capacity = :capacity, unused_capacity = :capacity - :busy, p_key = :p_key
WHERE worker_id = :worker_id AND :busy IS NOT NULL AND :capacity >= :busy;
SELECT :busy AS busy;

-- name: worker_remove
SELECT capacity - unused_capacity AS busy FROM Worker WHERE worker_id = :worker_id;
DELETE FROM Worker WHERE worker_id = :worker_id AND :busy = 0;
SELECT :busy AS busy;

-- name: task_complete
-- Finish a running task; the oldest deferred task of its partition takes the freed unit, else the
-- worker gets it back.
SELECT state, worker_id, p_key FROM Task WHERE task_id = :task_id;
UPDATE Task SET state = 'done', finished_us = :now_us
WHERE task_id = :task_id AND :state = 'running';
SELECT task_id AS next_task FROM Task
WHERE state = 'deferred' AND p_key = :p_key AND :state = 'running' ORDER BY task_id LIMIT 1;
UPDATE Task SET state = 'running', worker_id = :worker_id, assigned_us = :now_us
WHERE task_id = :next_task;
UPDATE Worker SET unused_capacity = unused_capacity + 1
WHERE worker_id = :worker_id AND :state = 'running' AND :next_task IS NULL;
SELECT :state AS state, :next_task AS next_task, :worker_id AS worker_id, :p_key AS p_key;

-- name: endpoint_create
INSERT INTO Endpoint (endpoint_id, name, created_us) VALUES (:endpoint_id, :name, :now_us)
ON CONFLICT (endpoint_id) DO UPDATE SET name = coalesce(excluded.name, Endpoint.name);
SELECT 1 AS ok;

-- name: endpoint_known
SELECT EXISTS (SELECT 1 FROM Endpoint WHERE endpoint_id = :endpoint_id) AS known;

-- name: channel_last
SELECT coalesce((SELECT last_sent_id FROM Channel
                 WHERE sender_id = :sender_id AND receiver_id = :receiver_id), 0) AS last_sent;

-- name: send
-- One message; a message id not above the pair's highest is a duplicate and is dropped.
SELECT (SELECT 1 FROM Endpoint WHERE endpoint_id = :receiver_id) AS receiver_known,
       (SELECT 1 FROM Endpoint WHERE endpoint_id = :sender_id) AS sender_known;
INSERT INTO Channel (sender_id, receiver_id, last_sent_id)
SELECT :sender_id, :receiver_id, :message_id WHERE :receiver_known AND :sender_known
ON CONFLICT (sender_id, receiver_id) DO UPDATE SET last_sent_id = excluded.last_sent_id
WHERE excluded.last_sent_id > Channel.last_sent_id
RETURNING 1 AS fresh;
INSERT INTO Message (receiver_id, sender_id, message_id, data, sent_us)
SELECT :receiver_id, :sender_id, :message_id, :data, :now_us WHERE :fresh;
SELECT CASE WHEN :receiver_known IS NULL THEN 'unknown receiver'
            WHEN :sender_known IS NULL THEN 'unknown sender'
            WHEN :fresh IS NULL THEN 'duplicate'
            ELSE 'sent' END AS outcome;

-- name: has_mail
SELECT EXISTS (SELECT 1 FROM Message WHERE receiver_id = :receiver_id) AS any;

-- name: recv
-- The receiver's oldest messages, deleted as they are taken (exactly once). Read, then delete up
-- to the last one read: inside the write transaction no older row can appear.
SELECT seq, sender_id, message_id, data, max(seq) OVER () AS upto
FROM (SELECT seq, sender_id, message_id, data FROM Message WHERE receiver_id = :receiver_id
      ORDER BY seq LIMIT :max_count);
DELETE FROM Message WHERE receiver_id = :receiver_id AND seq <= :upto;
