#!/usr/bin/env bash
# compare_settings.py on hand-made study exports: 3 seeds, budget 4, two settings and a reference
# (random search). Checks the table's figures: final bests, trials to the reference's final best,
# crash rates against half the reference's, paired wins; and that a plot per suite is written.
set -euo pipefail
py=${1:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# study DIR SEARCHER SEED "outcome:objective ..." (trial 0 is the default)
study() {
  local dir=$1 searcher=$2 seed=$3 rows=$4 i=0
  mkdir -p "$dir"
  local f="$dir/bowl-$searcher-s$seed-n4.csv"
  echo "iteration,role,outcome,objective,eval_s,build_s,started_ns,search_s" >"$f"
  for r in $rows; do
    local role=search
    [ "$i" = 0 ] && role=default
    echo "$i,$role,${r%%:*},${r#*:},0.1,0,$((1000000000 * (i + 1))),0.01" >>"$f"
    i=$((i + 1))
  done
}
# Reference: final bests 5, 6, 7; 2 of the last 2 trials crash on every seed (100 %).
study "$work/ref" random 1 "ok:1 ok:5 crash: crash:"
study "$work/ref" random 2 "ok:1 ok:6 crash: crash:"
study "$work/ref" random 3 "ok:1 ok:7 crash: crash:"
# Setting A: reaches 5 at trial 2 (seed 1); 4 on seed 2 (never 6); 8 at trial 4 on seed 3.
study "$work/a" deeptune 1 "ok:1 ok:5 ok:2 ok:2"
study "$work/a" deeptune 2 "ok:1 ok:4 ok:2 ok:2"
study "$work/a" deeptune 3 "ok:1 ok:2 ok:3 ok:8"
# Setting B: better than A on seeds 1 and 2, worse on 3; one crash in the last half of seed 1.
study "$work/b" deeptune 1 "ok:1 ok:2 ok:6 crash:"
study "$work/b" deeptune 2 "ok:1 ok:7 ok:2 ok:2"
study "$work/b" deeptune 3 "ok:1 ok:2 ok:3 ok:4"

"$py" "$here/compare_settings.py" --setting "A=$work/a:deeptune" --setting "B=$work/b:deeptune" \
  --reference "$work/ref:random" --baseline A --suites bowl --seeds 3 --budget 4 \
  --out "$work/out" >/dev/null
md="$work/out.md"
fail() {
  echo "FAIL: $1"
  cat "$md"
  exit 1
}
grep -qF "| bowl | reference | 3 | 6.0 (5.0–7.0) | – | – | 100 % (100 %–100 %) |" "$md" ||
  fail "reference row"
# A: reach 2, never, 4 → 1 within half the budget (2); no crash; B vs A wins 2, loses 1.
grep -qF "| bowl | A | 3 | 5.0 (4.0–8.0) | 2, >4, 4 | 1/3 | 0 % (0 %–0 %) | 3/3 | – |" "$md" ||
  fail "setting A"
grep -qF "| bowl | B | 3 | 6.0 (4.0–7.0) | 3, 2, >4 | 1/3 | 0 % (0 %–50 %) | 3/3 | 2–1 |" "$md" ||
  fail "setting B"
[ -s "$work/out_bowl.png" ] || fail "no plot"
echo "compare_settings.py: ok"
