#!/bin/bash
cd docs/bench/dbos_pg_warm/stalls/other_work
for r in 1 2 3 4; do
  build/release/bench/dbos_bench sched --quick --no-sqlite --out docs/bench/dbos_pg_warm/stalls/other_work/spin_$r.json > docs/bench/dbos_pg_warm/stalls/other_work/spin_$r.txt 2>&1
done
echo done > DONE
