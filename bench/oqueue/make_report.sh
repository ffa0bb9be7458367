#!/usr/bin/env bash
# Runs the oqueue benchmarks and regenerates docs/bench/oqueue_* (Markdown tables and PNG plots).
#
#   bench/oqueue/make_report.sh <dir with oqueue_pingpong and oqueue_micro_bench> [--quick]
#
# Raw JSON goes to docs/bench/oqueue_*.json next to the tables. PYTHON picks the interpreter for
# tools/bench_report.py (it needs matplotlib for the plots; Debian: /usr/bin/python3).
set -euo pipefail
bin=${1:?usage: make_report.sh <bench binary dir> [--quick]}
quick=${2:-}
cd "$(dirname "$0")/../.."
out=docs/bench
py=${PYTHON:-/usr/bin/python3}
mkdir -p "$out"

"$bin/oqueue_micro_bench" --benchmark_repetitions=7 --benchmark_enable_random_interleaving=true \
  --benchmark_min_time=0.2 --benchmark_out="$out/oqueue_micro.json" --benchmark_out_format=json
"$bin/oqueue_pingpong" $quick --settle-s 300 --scenarios pingpong --json "$out/oqueue_pingpong.json" \
  | tee "$out/oqueue_pingpong.txt"
"$bin/oqueue_pingpong" $quick --settle-s 300 --scenarios strong,weak --json "$out/oqueue_observers.json" \
  | tee "$out/oqueue_observers.txt"

# CPU time: on a shared machine real time also counts the time other work held the CPU.
"$py" tools/bench_report.py "$out/oqueue_micro.json" --metric cpu_time --baseline BM_PlainCall \
  --title "OQueue micro-benchmarks (one thread)" --md "$out/oqueue_micro.md" \
  --png "$out/oqueue_micro.png" --log
"$py" tools/bench_report.py "$out/oqueue_pingpong.json" --baseline pingpong/oq-spin --ratio-direction baseline-over-row \
  --title "RPC ping-pong round trip, ring length 2" --value-label "ns per round trip" --md "$out/oqueue_pingpong.md" \
  --png "$out/oqueue_pingpong.png"
"$py" tools/bench_report.py "$out/oqueue_observers.json" --filter '^strong/' \
  --metric items_per_second --x-param observers --title "RPC throughput vs strong observers" \
  --value-label "round trips/s" \
  --md "$out/oqueue_strong.md" --png "$out/oqueue_strong.png" --log
"$py" tools/bench_report.py "$out/oqueue_observers.json" --filter '^weak/' \
  --metric items_per_second --x-param observers \
  --title "RPC throughput vs weak observers (reads every 10 ms)" --value-label "round trips/s" \
  --md "$out/oqueue_weak.md" --png "$out/oqueue_weak.png"
echo "wrote $out/oqueue_*"
