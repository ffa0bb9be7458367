#!/usr/bin/env bash
# The PostgreSQL server's time per task, in batches of 64 (dbos_sched_batch) and alone (one
# transaction per task), for two revisions of the SQL: one throw-away server, one database per
# revision, the two taking turns. The client, the network and most of the host's noise drop out
# of the ratio; what is left is the SQL.
#
# usage: bench/dbos/pg_sched_server_ab.sh [--reps N] [--batches N] REV_A [REV_B]
#   REV_B defaults to the working tree. Needs PostgreSQL 15 (tools/setup.sh installs it).
set -euo pipefail
reps=5
batches=300
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    *) break ;;
  esac
done
rev_a=${1:?usage: pg_sched_server_ab.sh [--reps N] [--batches N] REV_A [REV_B]}
rev_b=${2:-}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
bin=/usr/lib/postgresql/15/bin
dir=$(mktemp -d /tmp/sluice-pg-ab.XXXXXX)
chmod 755 "$dir"

as_pg() {  # initdb and pg_ctl refuse to run as root
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] && chown postgres "$dir"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
# synchronous_commit off: the flush wait is the disk's, the same for both sides.
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c synchronous_commit=off" start >/dev/null
psql() { command psql -qAt -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }

sql_files() {  # the schema and service files of a revision ("" = working tree), in install order
  if [[ -z $1 ]]; then
    ls "$root/src/dbos/sql/postgres"
  else
    git -C "$root" ls-tree --name-only "$1" src/dbos/sql/postgres/ | xargs -n1 basename
  fi | grep -E '^([0-9]+_.*|services|sched_.*)\.sql$' | sort
}
sql_text() {  # sql_text REV FILE
  if [[ -z $1 ]]; then
    cat "$root/src/dbos/sql/postgres/$2"
  else
    git -C "$root" show "$1:src/dbos/sql/postgres/$2"
  fi
}
for side in a b; do
  rev_var=rev_$side
  rev=${!rev_var}
  psql -d postgres -c "CREATE DATABASE ab_$side"
  for f in $(sql_files "$rev"); do
    sql_text "$rev" "$f" | psql -d "ab_$side" >/dev/null
  done
  psql -d "ab_$side" -f "$root/bench/dbos/pg_sched_server.sql"
done

out="$dir/runs.txt"
for ((r = 1; r <= reps; ++r)); do
  for s in fifo least_loaded least_loaded_global locality; do
    for side in a b; do
      psql -d "ab_$side" -c "CALL bench_sched_reset()"
      us=$(psql -d "ab_$side" -c "CALL bench_sched_batches('$s', $batches)")
      echo "$r batch-$s $side $us" | tee -a "$out" >&2
      psql -d "ab_$side" -c "CALL bench_sched_reset()"
      us=$(psql -d "ab_$side" -c "CALL bench_sched_singles('$s', $((batches * 16)))")
      echo "$r single-$s $side $us" | tee -a "$out" >&2
    done
  done
done

python3 - "$out" "${rev_a}" "${rev_b:-working tree}" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    r, s, side, us = line.split()
    runs[s][(r, side)] = float(us)
print(f"A = {sys.argv[2]}, B = {sys.argv[3]}: µs of server time per task, median (min–max)\n")
print("| call, scheduler | A | B | B − A | B ÷ A, per repetition |")
print("| --- | ---: | ---: | ---: | ---: |")
cell = lambda xs: f"{statistics.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})"
for s, d in runs.items():
    reps = sorted({r for r, _ in d})
    a = [d[(r, "a")] for r in reps]
    b = [d[(r, "b")] for r in reps]
    q = [y / x for x, y in zip(a, b)]
    diff = statistics.median([y - x for x, y in zip(a, b)])
    print(f"| {s.replace('-', ', ', 1)} | {cell(a)} | {cell(b)} | {diff:+.1f} | "
          f"{statistics.median(q):.2f} ({min(q):.2f}–{max(q):.2f}) |")
PY
