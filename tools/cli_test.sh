#!/usr/bin/env bash
# The `sluice` program as a user meets it: help everywhere, knobs as table and JSON, the demo,
# and clear errors with a non-zero exit code on bad input. Usage: cli_test.sh path/to/sluice
set -u
sluice=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
passed=0

# expect <0 | nonzero | N> <text the output must contain> -- command...
#   0: success; nonzero: any failure; N: exactly that exit code.
expect() {
  local want=$1 needle=$2
  shift 3
  local out rc ok
  out=$("$@" 2>&1)
  rc=$?
  case $want in
    nonzero) ((rc != 0)) && ok=1 || ok=0 ;;
    *) ((rc == want)) && ok=1 || ok=0 ;;
  esac
  if ((!ok)) || [[ -n $needle && $out != *"$needle"* ]]; then
    echo "FAIL: $* -> exit $rc (wanted $want), output lacks '$needle':"
    echo "$out" | head -20 | sed 's/^/    /'
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
}

expect 0 "knobs" -- "$sluice" --help
expect 0 "--json" -- "$sluice" knobs --help
expect 0 "--quick" -- "$sluice" demo --help
expect 0 "log.level" -- "$sluice" knobs
expect 0 '"name": "log.level"' -- "$sluice" knobs --json
expect 0 "machine" -- "$sluice" demo --list
expect 0 "steps passed" -- "$sluice" demo --quick
expect 0 "" -- "$sluice" --version

# Knob precedence through the program: file < environment < flag.
printf 'log:\n  level: error\n' > "$tmp/k.yaml"
expect 0 "error  file" -- "$sluice" --config "$tmp/k.yaml" knobs log.
expect 0 "info   env" -- env SLUICE_LOG_LEVEL=info "$sluice" --config "$tmp/k.yaml" knobs log.
expect 0 "debug  flag" -- env SLUICE_LOG_LEVEL=info "$sluice" --config "$tmp/k.yaml" \
  --set log.level=debug knobs log.

# Bad input: a message a user can act on, and a non-zero exit.
expect nonzero "one of trace, debug, info, warn, error, off" -- "$sluice" --set log.level=loud knobs
expect nonzero "did you mean 'log.level'" -- "$sluice" --set log.levle=info knobs
expect nonzero "expected <knob>=<value>" -- "$sluice" --set log.level knobs
expect nonzero "SLUICE_LOG_LEVEL" -- env SLUICE_LOG_LEVEL=loud "$sluice" knobs
expect 2 "--no-such-flag" -- "$sluice" --no-such-flag
expect 2 "--bogus" -- "$sluice" knobs --bogus
expect 2 "valid: an integer in [2, 512]" -- "$sluice" --set zicio.ring_buffers=100000 knobs
expect nonzero "nosuchcommand" -- "$sluice" nosuchcommand
expect nonzero "choose a command" -- "$sluice"
expect nonzero "no demo step 'nope'" -- "$sluice" demo --only nope
expect nonzero "no knob starts with" -- "$sluice" knobs zzz.
# A config file of several knobs, flat or in several sections, sets each to its own value.
printf 'zicio.ring_buffers: 22\nlog.level: warn\nzicio.max_inflight: 6\n' > "$tmp/many.yaml"
expect 0 '"value": 22' -- "$sluice" --config "$tmp/many.yaml" knobs --json zicio.ring_buffers
expect 0 '"value": 6' -- "$sluice" --config "$tmp/many.yaml" knobs --json zicio.max_inflight
printf 'zicio:\n  ring_buffers: 24\nlog:\n  level: warn\n' > "$tmp/nested.yaml"
expect 0 '"value": 24' -- "$sluice" --config "$tmp/nested.yaml" knobs --json zicio.ring_buffers
expect 0 '"value": "warn"' -- "$sluice" --config "$tmp/nested.yaml" knobs --json log.level
expect nonzero "Is a directory" -- env SLUICE_CONFIG="$tmp" "$sluice" knobs
expect nonzero "no knob starts with" -- "$sluice" knobs --json zzz.
# Numbers are what they say: no wrap-around, no NaN, bounds named plainly.
expect 2 "out of range for a 64-bit integer" -- "$sluice" ipc endpoint 99999999999999999999
expect 2 "is negative" -- "$sluice" tune run --seed -1 "$tmp/none.yaml"
if "$sluice" oq --help 2>&1 | grep -q "^  bench "; then  # a build with the benchmarks
  expect 2 "not a finite number" -- "$sluice" oq bench --target-ms NaN
  expect nonzero "CPU 999 is not one this process may run on" -- \
    "$sluice" oq bench --client-cpu 999
  expect nonzero "no scenario chosen" -- "$sluice" oq bench --scenarios ""
fi
expect 2 "not a finite number" -- "$sluice" para serve --seconds inf
expect 2 "must be at least 1 (got 0)" -- "$sluice" para bench --reps 0
expect 2 "must be from 1 to 4096 (got -1)" -- "$sluice" para bench --depth -1
expect 2 "must be from 0 to 1073741824" -- "$sluice" oq stats --capacity 1073741825
expect 2 "must be at least 0 (got -1)" -- "$sluice" sched worker add 3 --capacity -1
expect 2 "must be at least 1 (got 0)" -- "$sluice" sched submit -n 0
# Output that cannot be written is a failure.
expect 1 "cannot write the output" -- bash -c '"$0" knobs > /dev/full' "$sluice"
printf 'log: [1, 2\n' > "$tmp/bad.yaml"
expect nonzero "bad.yaml" -- "$sluice" --config "$tmp/bad.yaml" knobs
expect nonzero "" -- "$sluice" --config "$tmp/missing.yaml" knobs

# Modules' commands on the embedded default, kept inside the temp dir.
export SLUICE_DBOS_DATA_DIR=$tmp
expect 0 "fifo" -- "$sluice" sched list
expect 0 "1" -- "$sluice" sql "SELECT 1"
expect nonzero "unknown backend" -- "$sluice" sql --backend mysql://x "SELECT 1"
expect nonzero "no IPC endpoint" -- "$sluice" ipc send --from 1 --to 999 x
# A multicast is one transaction: a receiver named twice gets two messages in order, and an
# unknown receiver sends nothing at all.
for e in 1 2 3; do expect 0 "" -- "$sluice" ipc endpoint $e; done
expect 0 "" -- "$sluice" ipc send --from 1 --to 2,3,2 hello
expect 0 '"message_id": 2' -- "$sluice" ipc recv 2 --max 10 --json
expect nonzero "no IPC endpoint 999" -- "$sluice" ipc send --from 1 --to 3,999 again
expect 0 "(1 rows)" -- "$sluice" sql "SELECT receiver_id, message_id FROM Message"
# A large message lives in the payload log beside the file; the views count it and it comes
# back whole.
big=$(head -c 3000 /dev/zero | tr '\0' q)
expect 0 "" -- "$sluice" ipc send --from 1 --to 2 -- "$big"
expect 0 '"spilled": 1' -- "$sluice" sql --json \
  "SELECT count(*) AS spilled FROM Message WHERE spill IS NOT NULL AND length(data) = 0"
expect 0 '"bytes": 3000' -- "$sluice" sql --json "SELECT bytes FROM Mailbox WHERE receiver_id = 2"
expect 0 "$big" -- "$sluice" ipc recv 2
expect 0 '"left": 0' -- "$sluice" sql --json \
  "SELECT count(*) AS left FROM Message WHERE receiver_id = 2"
expect 0 "" -- "$sluice" sched worker add 7 --partition 0 --capacity 1
expect 0 "" -- "$sluice" sched submit --scheduler fifo --partition 0
expect nonzero "no worker in partition 0 has unused capacity" -- \
  "$sluice" sched submit --scheduler fifo --partition 0
expect 0 '"running": 1' -- "$sluice" sql --json \
  "SELECT count(*) AS running FROM Task WHERE state = 'running' AND worker_id = 7"
# A batch is submitted whole or not at all.
expect 0 "" -- "$sluice" sched worker add 8 --partition 1 --capacity 1
expect nonzero "none of the 2 tasks was submitted" -- \
  "$sluice" sched submit --scheduler fifo --partition 1 -n 2
expect 0 '"tasks": 0' -- "$sluice" sql --json "SELECT count(*) AS tasks FROM Task WHERE p_key = 1"
expect 0 '"ok": true' -- "$sluice" sql --json "SELECT 1; SELECT 2"
expect 0 'x00abc' -- "$sluice" sql "SELECT char(0) || 'abc' AS z, 1 AS c"
# The dbos filesystem: what cannot be read or written is an error, and / is not removed whole.
mkdir -p "$tmp/adir" "$tmp/mnt"
echo hello > "$tmp/h.txt"
expect 0 "" -- "$sluice" fs put "$tmp/h.txt" /h.txt
expect nonzero "Is a directory" -- "$sluice" fs put "$tmp/adir" /d.txt
expect nonzero "No space left" -- "$sluice" fs get /h.txt /dev/full
expect nonzero "too large" -- "$sluice" fs find --larger 9999999999G
expect nonzero "too far away" -- "$sluice" fs find --newer 9999999999999
expect nonzero "refusing to remove /" -- "$sluice" fs rm -r /
expect 0 "hello" -- "$sluice" fs get /h.txt
expect nonzero "not a directory" -- "$sluice" fs mount "$tmp/h.txt"
expect nonzero "not an empty directory" -- "$sluice" fs mount "$tmp"
expect 0 "stats" -- "$sluice" oq --help
expect 0 "serve" -- "$sluice" para --help
expect 0 "run" -- "$sluice" tune --help

# Model-based search through the program: DeepTune comes from its plugin beside the program, saves
# its model, explains the study, and a second study starts warm from the model.
cat > "$tmp/tiny.yaml" <<'JOB'
name: tiny
parameters:
  - {name: x, type: int, range: [0, 100], default: 50}
  - {name: mode, type: enum, values: [a, b, c], default: a}
commands:
  bench: 'echo "value: $(( ({{x}} - 30) * ({{x}} - 30) ))"'
metrics:
  - {name: value, regex: "value: ([0-9.]+)", direction: minimize}
repetitions: 1
isolation: {netns: false}
JOB
export SLUICE_WAYFINDER_WORK_DIR="$tmp/wf"
expect 0 "deeptune.model" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 10 --search deeptune
expect 0 "parameters that lower it" -- "$sluice" tune explain tiny
expect 0 '"crash_prediction"' -- "$sluice" tune explain tiny --json
expect 0 "12 trials" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 12 --search deeptune \
  --study warm --warm-start "$tmp/wf/tiny/deeptune.model"
expect 0 "10 trials, 10 ok" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 10 --search bayes \
  --study gp
expect nonzero "no model to explain" -- "$sluice" tune explain gp --model random
# A shipped real target end to end: every flag value a random draw makes compiles and runs.
expect 0 "3 trials, 3 ok" -- "$sluice" tune run "$(dirname "$0")/../targets/gcc-dot.yaml" \
  --budget 3 --search random --study gcc-smoke
# The starting model is kept with the study: a resume needs no --warm-start, another is refused.
expect 0 "14 trials" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 14 --search deeptune \
  --study warm
expect nonzero "started warm from" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 16 \
  --search deeptune --study warm --warm-start "$tmp/wf/warm/deeptune.model"
# Model options on a search without a model are refused before any trial.
expect nonzero "keeps no model to save" -- "$sluice" tune run "$tmp/tiny.yaml" --search random \
  --study rs --save-model "$tmp/rs.model"
expect nonzero "--warm-start needs --search deeptune" -- "$sluice" tune run "$tmp/tiny.yaml" \
  --search random --study rw --warm-start "$tmp/wf/tiny/deeptune.model"
echo junk > "$tmp/bad.model"
expect nonzero "bad.model" -- "$sluice" tune run "$tmp/tiny.yaml" --search deeptune --study bad \
  --warm-start "$tmp/bad.model"
expect nonzero "sluice-deeptune.so" -- env SLUICE_PLUGIN_DIR=/nonexistent \
  "$sluice" tune run "$tmp/tiny.yaml" --search deeptune --study noplugin
# A study's name names its directory: no escape from the work directory.
expect nonzero "study name '../esc'" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 2 \
  --study ../esc
expect nonzero "must be 1 to 100" -- "$sluice" tune run "$tmp/tiny.yaml" --budget 2 \
  --study "$(printf 'z%.0s' {1..300})"
unset SLUICE_WAYFINDER_WORK_DIR
expect 0 "mount" -- "$sluice" fs --help

# zicio: a scan, and its bad inputs.
head -c 3000000 /dev/urandom > "$tmp/z.dat"
expect 0 "--rate" -- "$sluice" zicio scan --help
expect 0 "scanned 1034 bytes" -- "$sluice" zicio scan "$tmp/z.dat" --ranges 0:10,100:1K --quiet
expect 0 "paced request rate" -- "$sluice" zicio scan "$tmp/z.dat" --rate 64M
expect 0 "control loop: para reactor on core" -- "$sluice" zicio scan "$tmp/z.dat"
expect 0 "s per GiB" -- "$sluice" zicio scan "$tmp/z.dat" --quiet
expect 0 "control loop: thread" -- "$sluice" zicio scan "$tmp/z.dat" --host thread
expect 0 "scanned 1034 bytes" -- "$sluice" zicio scan "$tmp/z.dat" --ranges 0:10,100:1K --host task --quiet
expect 0 "paced request rate" -- "$sluice" zicio scan "$tmp/z.dat" --rate 64M --host task
expect nonzero "para, thread or task" -- "$sluice" zicio scan "$tmp/z.dat" --host kernel
expect nonzero "zicio.control_core 4000" -- "$sluice" --set zicio.control_core=4000 zicio scan "$tmp/z.dat"
expect nonzero "No such file" -- "$sluice" zicio scan "$tmp/missing.dat"
expect nonzero "sorted and disjoint" -- "$sluice" zicio scan "$tmp/z.dat" --ranges 0:10,5:10
expect nonzero "no open zicio channel" -- "$sluice" zicio stats $$
mkfifo "$tmp/fifo"
expect nonzero "not a regular file" -- timeout 20 "$sluice" zicio scan "$tmp/fifo"
expect nonzero "too large" -- "$sluice" zicio scan "$tmp/z.dat" --ranges 99999999999999999999:1
unset SLUICE_DBOS_DATA_DIR

echo "cli: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
