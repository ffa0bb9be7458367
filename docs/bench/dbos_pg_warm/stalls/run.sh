#!/bin/bash
cd docs/bench/dbos_pg_warm/stalls
for r in 1 2 3 4; do
  if [ $((r % 2)) -eq 1 ]; then order="spin sleep"; else order="sleep spin"; fi
  for w in $order; do
    build/release/bench/dbos_bench sched --quick --no-sqlite --open-loop-wait $w --out docs/bench/dbos_pg_warm/stalls/${w}_$r.json > docs/bench/dbos_pg_warm/stalls/${w}_$r.txt 2>&1
  done
done
echo done > DONE
