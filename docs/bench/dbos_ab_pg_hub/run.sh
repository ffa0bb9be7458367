#!/bin/bash
cd docs/bench/dbos_ab_pg_hub
for r in 1 2 3 4 5; do
  if [ $((r % 2)) -eq 1 ]; then order="connection hub"; else order="hub connection"; fi
  for m in $order; do
    SLUICE_DBOS_PG_WAKEUPS=$m build/release/bench/dbos_bench ipc --no-sqlite --reps 2 --out docs/bench/dbos_ab_pg_hub/${m}_$r.json > docs/bench/dbos_ab_pg_hub/${m}_$r.txt 2>&1
  done
done
echo done > docs/bench/dbos_ab_pg_hub/DONE
