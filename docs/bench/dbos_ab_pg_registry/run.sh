#!/bin/bash
# Three arms in rotating order: the committed hub (every send notifies), the listener registry
# (a send notifies only where another process listens), and one LISTEN per receiver.
cd /tmp/abreg
arms=(hub registry connection)
for r in 1 2 3 4; do
  for k in 0 1 2; do
    a=${arms[$(( (r + k) % 3 ))]}
    case $a in
      hub) SLUICE_DBOS_PG_WAKEUPS=hub /tmp/dbos_bench_hub3 ipc --no-sqlite --reps 2 --out ${a}_$r.json > ${a}_$r.txt 2>&1 ;;
      registry) SLUICE_DBOS_PG_WAKEUPS=hub /tmp/dbos_bench_reg ipc --no-sqlite --reps 2 --out ${a}_$r.json > ${a}_$r.txt 2>&1 ;;
      connection) SLUICE_DBOS_PG_WAKEUPS=connection /tmp/dbos_bench_reg ipc --no-sqlite --reps 2 --out ${a}_$r.json > ${a}_$r.txt 2>&1 ;;
    esac
  done
done
echo done > DONE
