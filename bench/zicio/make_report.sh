#!/usr/bin/env bash
# Runs the zicio benchmark (docs/zicio.md, "Benchmarks") and writes docs/bench/zicio_*:
#   zicio_{seq,sweep,ranges,depth}.jsonl                     one JSON object per run
#   zicio_results.{md,json}                                  tables and goal verdicts
#   zicio_{throughput_vs_request,wait_share,cpu_per_gib,ranges}.png
#
#   bench/zicio/make_report.sh <dir with zicio_bench> [--quick]
#
# Needs root (every run starts with `sync; echo 3 > /proc/sys/vm/drop_caches`), fio, and a data
# file on a real disk: DATA_DIR (default /var/tmp/sluice-zicio-bench; not tmpfs, whose pages never
# leave memory). The file is created once (8 GiB, or 1 GiB with --quick) and kept.
# Knobs: OUT_DIR (default docs/bench); STEPS (default "seq sweep ranges depth": the parts to run,
# the report is built from the .jsonl files present); REPS (key configurations, default 5),
# SWEEP_REPS (2), RANGE_REPS (2), DEPTH_REPS (3); PYTHON (needs matplotlib for the plots; Debian:
# /usr/bin/python3). Takes about 35 minutes on a 2-vCPU VM with a ~1 GiB/s disk.
set -euo pipefail
bin=${1:?usage: make_report.sh <bench binary dir> [--quick]}
quick=${2:-}
cd "$(dirname "$0")/../.."
out=${OUT_DIR:-docs/bench}
py=${PYTHON:-/usr/bin/python3}
data_dir=${DATA_DIR:-/var/tmp/sluice-zicio-bench}
reps=${REPS:-5}
sweep_reps=${SWEEP_REPS:-2}
range_reps=${RANGE_REPS:-2}
depth_reps=${DEPTH_REPS:-3}
steps=" ${STEPS:-seq sweep ranges depth} "
mkdir -p "$out" "$data_dir"

if [[ $quick == --quick ]]; then
  gib=1; sweep_bytes=256M; range_bytes=512M; reps=${REPS:-2}; sweep_reps=1; range_reps=1; depth_reps=1
  file=$data_dir/data1g.bin
else
  gib=8; sweep_bytes=512M; range_bytes=2G
  file=$data_dir/data8g.bin
fi
if [[ ! -f $file || $(stat -c %s "$file") -ne $((gib << 30)) ]]; then
  # Pseudo-random bytes (AES-CTR), written with O_DIRECT: every block is allocated and written,
  # and no layer below (a virtual disk that detects zeros) can serve reads without the device.
  # openssl dies of SIGPIPE once head has its bytes: that is the pipeline's end, not a failure
  # (under pipefail it would stop this script); the size check below is what counts.
  { openssl enc -aes-128-ctr -nosalt -pass pass:sluice -in /dev/zero 2>/dev/null || true; } \
    | head -c $((gib << 30)) | dd of="$file" bs=16M iflag=fullblock oflag=direct status=none
  if [[ $(stat -c %s "$file") -ne $((gib << 30)) ]]; then
    echo "make_report.sh: could not write the $gib GiB data file $file" >&2
    exit 1
  fi
fi
b="$bin/zicio_bench"
machine() {
  echo "**Machine.** $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) vCPUs," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)," \
    "data on $(df --output=source,fstype "$file" | tail -1 | xargs) ($file)," \
    "read_ahead_kb $(cat /sys/block/"$(basename "$(df --output=source "$file" | tail -1)")"/queue/read_ahead_kb 2>/dev/null || echo '?')." \
    "Load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)."
}
desc=$(machine)
echo "$desc"

run() { [[ $steps == *" $1 "* ]]; }
# 1. Key configurations: every method at each worker rate, fio's ceiling, interleaved.
if run seq; then
  "$b" --file "$file" --tag seq --methods pread,direct,uring,uring-thp,zicio,zicio-thread,zicio-task,fio \
    --rates 0,512M,1G \
    --req 256K --uring-req 2M --reps "$reps" \
    | grep --line-buffered "^{" | tee "$out/zicio_seq.jsonl"
fi
# 2. Request-size sweep, unlimited worker, on the file's first $sweep_bytes (O_DIRECT pread of
#    4 KiB requests is one request at a time and would take minutes over 8 GiB).
if run sweep; then
  "$b" --file "$file" --tag sweep --methods pread,direct,uring,uring-thp,zicio,zicio-thread,zicio-task,zicio-q16 --rates 0 \
    --req 4K,16K,64K,256K --bytes "$sweep_bytes" --reps "$sweep_reps" \
    | grep --line-buffered "^{" | tee "$out/zicio_sweep.jsonl"
fi
# 3. Disjoint range scans: odd-numbered batches of the first $range_bytes.
if run ranges; then
  "$b" --file "$file" --tag ranges --methods pread,direct,uring,uring-thp,zicio,zicio-thread,zicio-task,zicio-q16 --rates 0 \
    --req 256K --uring-req 2M --ranges 64K,1M,16M,64M --bytes "$range_bytes" \
    --reps "$range_reps" \
    | grep --line-buffered "^{" | tee "$out/zicio_ranges.jsonl"
fi
# 4. Reads in flight and buffer pages: the same 2 MiB reads, 4 or 16 at a time, into 4 KiB or
#    huge pages, for fio, io_uring and zicio.
if run depth; then
  "$b" --file "$file" --tag depth \
    --methods fio,fio-q4,uring,uring-q4,uring-thp,uring-thp-q4,zicio,zicio-q16 \
    --rates 0 --uring-req 2M --reps "$depth_reps" \
    | grep --line-buffered "^{" | tee "$out/zicio_depth.jsonl"
fi

inputs=()
for s in seq sweep ranges depth; do
  if [[ -f $out/zicio_$s.jsonl ]]; then inputs+=("$out/zicio_$s.jsonl"); fi
done
"$py" bench/zicio/report.py --out "$out" --prefix zicio --machine "$desc" "${inputs[@]}"
echo "wrote $out/zicio_*; load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
