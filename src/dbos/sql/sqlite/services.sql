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
-- Capacity that appears (a new worker, a larger one) goes to the deferred tasks of its partition
-- first, oldest first, as a completion's freed unit does; not when the resize was refused.
SELECT count(*) AS assigned FROM (
  SELECT 1 FROM Task WHERE state = 'deferred' AND p_key = :p_key
  AND (:busy IS NULL OR :capacity >= :busy) ORDER BY task_id
  LIMIT (SELECT unused_capacity FROM Worker WHERE worker_id = :worker_id));
UPDATE Task SET state = 'running', worker_id = :worker_id, assigned_us = :now_us
WHERE task_id IN (SELECT task_id FROM Task WHERE state = 'deferred' AND p_key = :p_key
                  ORDER BY task_id LIMIT :assigned);
UPDATE Worker SET unused_capacity = unused_capacity - :assigned
WHERE worker_id = :worker_id AND :assigned > 0;
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
-- One message; a message id not above the pair's highest is a duplicate and is dropped. seq
-- numbers the receiver's queue after its last message.
SELECT (SELECT 1 FROM Endpoint WHERE endpoint_id = :receiver_id) AS receiver_known,
       (SELECT 1 FROM Endpoint WHERE endpoint_id = :sender_id) AS sender_known,
       coalesce((SELECT seq FROM Message WHERE receiver_id = :receiver_id
                 ORDER BY seq DESC LIMIT 1), 0) AS last_seq;
INSERT INTO Channel (sender_id, receiver_id, last_sent_id)
SELECT :sender_id, :receiver_id, :message_id WHERE :receiver_known AND :sender_known
ON CONFLICT (sender_id, receiver_id) DO UPDATE SET last_sent_id = excluded.last_sent_id
WHERE excluded.last_sent_id > Channel.last_sent_id
RETURNING 1 AS fresh;
-- A large payload goes to the payload log (dbos_spill answers NULL for a small one).
INSERT INTO Message (receiver_id, seq, sender_id, message_id, data, spill, sent_us)
SELECT :receiver_id, :last_seq + 1, :sender_id, :message_id,
       iif(length(:data) >= dbos_spill_min(), X'', :data),
       CASE WHEN length(:data) >= dbos_spill_min() THEN dbos_spill(:data) END, :now_us
WHERE :fresh;
SELECT CASE WHEN :receiver_known IS NULL THEN 'unknown receiver'
            WHEN :sender_known IS NULL THEN 'unknown sender'
            WHEN :fresh IS NULL THEN 'duplicate'
            ELSE 'sent' END AS outcome;

-- name: send_batch
-- Messages first_id, first_id + 1, … to one receiver in one call. The payloads are cut from one
-- blob by :pieces, a JSON array of integers, (offset from 1) << 32 | length. All or nothing: a
-- first id not above the pair's highest makes the whole batch a duplicate, and nothing is
-- written.
SELECT (SELECT 1 FROM Endpoint WHERE endpoint_id = :receiver_id) AS receiver_known,
       (SELECT 1 FROM Endpoint WHERE endpoint_id = :sender_id) AS sender_known,
       coalesce((SELECT last_sent_id >= :first_id FROM Channel
                 WHERE sender_id = :sender_id AND receiver_id = :receiver_id), 0) AS stale,
       json_array_length(:pieces) AS n,
       coalesce((SELECT seq FROM Message WHERE receiver_id = :receiver_id
                 ORDER BY seq DESC LIMIT 1), 0) AS last_seq;
INSERT INTO Channel (sender_id, receiver_id, last_sent_id)
SELECT :sender_id, :receiver_id, :first_id + :n - 1
WHERE :receiver_known AND :sender_known AND NOT :stale
ON CONFLICT (sender_id, receiver_id) DO UPDATE SET last_sent_id = excluded.last_sent_id;
INSERT INTO Message (receiver_id, seq, sender_id, message_id, data, spill, sent_us)
SELECT :receiver_id, :last_seq + 1 + p.key, :sender_id, :first_id + p.key,
       CASE WHEN (p.value & 4294967295) >= dbos_spill_min() THEN X''
            ELSE substr(:data, p.value >> 32, p.value & 4294967295) END,
       CASE WHEN (p.value & 4294967295) >= dbos_spill_min()
            THEN dbos_spill(substr(:data, p.value >> 32, p.value & 4294967295)) END,
       :now_us
FROM json_each(:pieces) AS p
WHERE :receiver_known AND :sender_known AND NOT :stale
ORDER BY p.key;
SELECT CASE WHEN :receiver_known IS NULL THEN 'unknown receiver'
            WHEN :sender_known IS NULL THEN 'unknown sender'
            WHEN :stale THEN 'duplicate'
            ELSE 'sent' END AS outcome;

-- name: multicast
-- One message to several receivers in one call: :targets is a JSON array of [receiver_id,
-- message_id, k], in sending order, where k counts the earlier targets naming the same receiver
-- (a receiver named twice gets two messages, numbered one after the other). All or nothing: an
-- unknown receiver, or an id not above its pair's highest (a duplicate), writes nothing and is
-- named in the answer.
SELECT (SELECT 1 FROM Endpoint WHERE endpoint_id = :sender_id) AS sender_known,
       (SELECT json_extract(t.value, '$[0]') FROM json_each(:targets) AS t
        WHERE NOT EXISTS (SELECT 1 FROM Endpoint AS e
                          WHERE e.endpoint_id = json_extract(t.value, '$[0]'))
        ORDER BY t.key LIMIT 1) AS unknown_receiver,
       (SELECT json_extract(t.value, '$[0]') FROM json_each(:targets) AS t
        JOIN Channel AS c ON c.sender_id = :sender_id
                         AND c.receiver_id = json_extract(t.value, '$[0]')
        WHERE c.last_sent_id >= json_extract(t.value, '$[1]')
        ORDER BY t.key LIMIT 1) AS stale_receiver;
INSERT INTO Channel (sender_id, receiver_id, last_sent_id)
SELECT :sender_id, json_extract(t.value, '$[0]'), json_extract(t.value, '$[1]')
FROM json_each(:targets) AS t
WHERE :sender_known AND :unknown_receiver IS NULL AND :stale_receiver IS NULL
ON CONFLICT (sender_id, receiver_id) DO UPDATE
SET last_sent_id = max(last_sent_id, excluded.last_sent_id);
-- A large payload is written to the payload log once, and every receiver's row refers to it.
WITH s AS MATERIALIZED (
  SELECT dbos_spill(:data) AS ref
  WHERE :sender_known AND :unknown_receiver IS NULL AND :stale_receiver IS NULL)
INSERT INTO Message (receiver_id, seq, sender_id, message_id, data, spill, sent_us)
SELECT json_extract(t.value, '$[0]'),
       coalesce((SELECT m.seq FROM Message AS m WHERE m.receiver_id = json_extract(t.value, '$[0]')
                 ORDER BY m.seq DESC LIMIT 1), 0) + 1 + coalesce(json_extract(t.value, '$[2]'), 0),
       :sender_id, json_extract(t.value, '$[1]'), iif(s.ref IS NULL, :data, X''), s.ref, :now_us
FROM json_each(:targets) AS t, s
WHERE :sender_known AND :unknown_receiver IS NULL AND :stale_receiver IS NULL
ORDER BY t.key;
SELECT CASE WHEN :sender_known IS NULL THEN 'unknown sender'
            WHEN :unknown_receiver IS NOT NULL THEN 'unknown receiver'
            WHEN :stale_receiver IS NOT NULL THEN 'duplicate'
            ELSE 'sent' END AS outcome,
       coalesce(:unknown_receiver, :stale_receiver) AS receiver_id;

-- name: has_mail
SELECT EXISTS (SELECT 1 FROM Message WHERE receiver_id = :receiver_id) AS any;

-- name: recv
-- The receiver's oldest messages, deleted as they are taken (exactly once). Read, then delete up
-- to the last one read: inside the write transaction no older row can appear.
SELECT seq, sender_id, message_id, iif(spill IS NULL, data, dbos_payload(spill)) AS data,
       max(seq) OVER () AS upto
FROM (SELECT seq, sender_id, message_id, data, spill FROM Message WHERE receiver_id = :receiver_id
      ORDER BY seq LIMIT :max_count);
DELETE FROM Message WHERE receiver_id = :receiver_id AND seq <= :upto;
