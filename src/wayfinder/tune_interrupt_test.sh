#!/usr/bin/env bash
# `sluice tune run` interrupted by Ctrl-C (SIGINT) in the middle of a trial, then resumed by the
# same command: the host setting the study changes is back to its value after the interrupt and
# after the end, the interrupted trial is measured again, nothing is lost, and the report gives
# the best configuration against the default. Usage: tune_interrupt_test.sh path/to/sluice
set -u
sluice=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

check() {  # check <description> <condition...>
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAIL: $what"
    failed=$((failed + 1))
  fi
}

# A host-wide setting the study changes (a file standing in for a sysctl outside the namespace).
echo 5 > "$tmp/setting"
# Trial 2 announces itself, then hangs until it is interrupted (only the first time it runs).
netns=false
if [[ $(id -u) == 0 ]] && command -v ip > /dev/null; then
  netns=true
fi
cat > "$tmp/job.yaml" << EOF
name: interrupt
parameters:
  - {name: x, type: int, range: [0, 9], default: 5, apply: {file: $tmp/setting}}
  - {name: y, type: enum, values: [a, b, c], default: a}
commands:
  bench: >-
    if [ {{iteration}} = 2 ] && [ ! -e $tmp/interrupted ]; then
    touch $tmp/interrupted; echo started > $tmp/at2; sleep 60; fi;
    echo "value=\$(cat $tmp/setting)"
metric: {name: v, regex: "value=([0-9]+)", direction: maximize}
repetitions: 1
timeouts: {bench: 90}
isolation: {netns: $netns, host_changes: allow}
EOF
run=("$sluice" tune run "$tmp/job.yaml" --budget 5 --store "sqlite:$tmp/s.db"
     --work-dir "$tmp/w")

"${run[@]}" > "$tmp/first.out" 2>&1 &
pid=$!
for _ in $(seq 600); do  # until trial 2 is inside its benchmark (or sluice ended early)
  [[ -e $tmp/at2 ]] && break
  kill -0 "$pid" 2> /dev/null || break
  sleep 0.1
done
check "trial 2 started" test -e "$tmp/at2"
kill -INT "$pid"
wait "$pid"
rc=$?
check "the interrupted run exits non-zero (rc $rc)" test "$rc" -ne 0
check "the interrupted run says the same command resumes" grep -q "resumes the study" \
  "$tmp/first.out"
check "the host setting is restored after the interrupt" test "$(cat "$tmp/setting")" = 5
if [[ $netns == true ]]; then
  check "no network namespace of the run is left" \
    bash -c "! ip netns list | grep -q 'sluice-wf-$pid-'"
fi
"$sluice" tune status interrupt --store "sqlite:$tmp/s.db" > "$tmp/status1.out" 2>&1
check "2 trials stored, the interrupted one pending" grep -q "3 trials, 2 ok, 1 pending" \
  "$tmp/status1.out"

"${run[@]}" > "$tmp/second.out" 2>&1
rc=$?
check "the same command resumes and finishes (rc $rc)" test "$rc" -eq 0
check "the host setting is restored at the end" test "$(cat "$tmp/setting")" = 5
check "5 trials, all ok" grep -q "5 trials, 5 ok$" "$tmp/second.out"
check "the report gives the default" grep -q "default (iteration 0): v = 5" "$tmp/second.out"
check "the report gives the best against the default" grep -q "v in the search: " \
  "$tmp/second.out"
"$sluice" tune export interrupt --csv --store "sqlite:$tmp/s.db" > "$tmp/trials.csv"
check "the export lists 5 trials" test "$(($(wc -l < "$tmp/trials.csv") - 1))" -eq 5
check "the export has no pending trial" bash -c "! grep -q pending '$tmp/trials.csv'"

if [[ $failed -ne 0 ]]; then
  for f in first.out status1.out second.out; do
    echo "--- $f"
    cat "$tmp/$f"
  done
  exit 1
fi
echo "all checks passed"
