-- The server's side of a scheduling benchmark, for pg_sched_server_ab.sh: batches of 64 tasks
-- through dbos_sched_batch, committed one by one, timed on the server, so neither the client nor
-- the network is in the figure. The workers are dbos_bench's: 8 partitions of 4, capacity 2^40.

CREATE OR REPLACE PROCEDURE bench_sched_reset() LANGUAGE plpgsql AS $$
BEGIN
  -- TRUNCATE rather than DELETE: a worker table full of dead rows slows every pick after it.
  TRUNCATE task, worker;
  INSERT INTO worker (worker_id, p_key, capacity, unused_capacity, created_us)
  SELECT w + 1, w % 8, 1::bigint << 40, 1::bigint << 40, 0 FROM generate_series(0, 31) w;
END $$;

-- Microseconds of the server per task scheduled.
CREATE OR REPLACE PROCEDURE bench_sched_batches(scheduler text, batches int,
    INOUT us_per_task double precision DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
  batch jsonb := (SELECT jsonb_agg(jsonb_build_object('p_key', i % 8, 'priority', 0))
                  FROM generate_series(0, 63) i);
  t0 timestamptz := clock_timestamp();
  tasks bigint := 0;
  got bigint;
BEGIN
  FOR i IN 1..batches LOOP
    SELECT count(*) INTO got FROM dbos_sched_batch(scheduler, batch, 0);
    tasks := tasks + got;
    COMMIT;
  END LOOP;
  us_per_task := extract(epoch FROM clock_timestamp() - t0) * 1e6 / greatest(tasks, 1);
END $$;

-- Microseconds of the server per task scheduled alone, one transaction each, through dbos_sched
-- or, in revisions before it, the scheduler's own dbos_sched_<name>. Both are called through
-- EXECUTE, which plans the call every time on either side: compare the difference, not the ratio.
CREATE OR REPLACE PROCEDURE bench_sched_singles(scheduler text, tasks int,
    INOUT us_per_task double precision DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
  call text := CASE
    WHEN to_regproc('dbos_sched') IS NOT NULL THEN
      format('SELECT count(*) FROM dbos_sched(%L, p_key => $1)', scheduler)
    ELSE format('SELECT count(*) FROM %I(p_key => $1)', 'dbos_sched_' || scheduler) END;
  t0 timestamptz := clock_timestamp();
  got bigint;
BEGIN
  FOR i IN 1..tasks LOOP
    EXECUTE call INTO got USING (i % 8)::bigint;
    COMMIT;
  END LOOP;
  us_per_task := extract(epoch FROM clock_timestamp() - t0) * 1e6 / tasks;
END $$;
