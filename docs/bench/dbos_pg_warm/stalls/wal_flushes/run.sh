#!/bin/bash
# The WAL writer's flushes (fdatasync and the I/O it causes) as the stall's source: default
# against flushes at most every 10 s (a diagnostic only: a crash could lose 30 s of commits).
cd docs/bench/dbos_pg_warm/stalls/wal_flushes
for r in 1 2 3 4; do
  if [ $((r % 2)) -eq 1 ]; then order="default rare"; else order="rare default"; fi
  for v in $order; do
    if [ $v = rare ]; then export SLUICE_BENCH_PG_CONF=$'wal_writer_delay = 10s\nwal_writer_flush_after = 1GB\n'; else unset SLUICE_BENCH_PG_CONF; fi
    build/release/bench/dbos_bench sched --quick --no-sqlite --out docs/bench/dbos_pg_warm/stalls/wal_flushes/${v}_$r.json > docs/bench/dbos_pg_warm/stalls/wal_flushes/${v}_$r.txt 2>&1
  done
done
echo done > DONE
