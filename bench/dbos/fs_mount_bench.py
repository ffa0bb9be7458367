#!/usr/bin/python3
"""Clients at once on a `sluice fs mount`: the multi-threaded server against `--single-thread`.

usage: fs_mount_bench.py --sluice build/release/sluice [--clients 8] [--mib 4] [--files 200]
                         [--reps 5] [--backend sqlite|URL] [--json OUT]

Each repetition mounts a fresh database once per mode, the modes in turns (the order rotates),
and times three phases with `--clients` threads, each on its own files through ordinary system
calls (which release the GIL, so the threads' requests reach the server together):
  write   each thread writes a file of `--mib` MiB in 128 KiB writes     -> MiB/s
  read    each thread reads its file back (the kernel does not cache it) -> MiB/s
  meta    each thread creates and removes `--files` empty files         -> operations/s
It prints the median and min-max of each mode and the median of the per-repetition ratios
(multi-threaded over single-threaded). Root and /dev/fuse are needed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CHUNK = 128 * 1024


def wait_mounted(mnt, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.ismount(mnt):
            return
        time.sleep(0.05)
    sys.exit(f"{mnt} did not mount")


def run_threads(n, fn):
    errors = []

    def body(i):
        try:
            fn(i)
        except OSError as e:  # a failed request fails the run: report it
            errors.append(f"client {i}: {e}")

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("; ".join(errors))
    return time.monotonic() - t0


def one_mount(args, mode, work):
    db_dir = os.path.join(work, f"db-{mode}")
    shutil.rmtree(db_dir, ignore_errors=True)
    os.makedirs(db_dir)
    mnt = os.path.join(work, f"mnt-{mode}")
    os.makedirs(mnt, exist_ok=True)
    backend = f"sqlite:{db_dir}/os.db" if args.backend == "sqlite" else args.backend
    cmd = [args.sluice, "fs", "--backend", backend, "mount", mnt]
    if mode == "single":
        cmd.append("--single-thread")
    subprocess.run(cmd, check=True)
    wait_mounted(mnt)
    try:
        payload = os.urandom(CHUNK)
        size = args.mib * 1024 * 1024
        prefix = f"{mnt}/{mode}-{time.monotonic_ns()}"

        def write(i):
            with open(f"{prefix}-{i}.bin", "wb", buffering=0) as f:
                for _ in range(size // CHUNK):
                    f.write(payload)

        def read(i):
            with open(f"{prefix}-{i}.bin", "rb", buffering=0) as f:
                while f.read(CHUNK):
                    pass

        def meta(i):
            for k in range(args.files):
                p = f"{prefix}-m{i}-{k}"
                os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                os.unlink(p)

        total_mib = args.clients * args.mib
        out = {
            "write": total_mib / run_threads(args.clients, write),
            "read": total_mib / run_threads(args.clients, read),
            "meta": 2 * args.clients * args.files / run_threads(args.clients, meta),
        }
        for i in range(args.clients):
            os.unlink(f"{prefix}-{i}.bin")
        return out
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--mib", type=int, default=4)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--backend", default="sqlite")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sluice-mount-bench-", dir="/var/tmp")
    modes = ["multi", "single"]
    runs = {m: [] for m in modes}
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        for rep in range(args.reps):
            order = modes if rep % 2 == 0 else modes[::-1]
            for mode in order:
                r = one_mount(args, mode, work)
                runs[mode].append(r)
                print(f"rep {rep} {mode:6s} write {r['write']:8.1f} MiB/s  read {r['read']:8.1f} "
                      f"MiB/s  meta {r['meta']:8.0f} ops/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"\n{args.clients} clients, {args.reps} repetitions, backend {args.backend}, "
          f"loadavg before {' '.join(load_before)}, after {' '.join(load_after)}")
    print("| phase | multi-threaded | single-threaded | multi ÷ single (same repetition) |")
    print("| --- | ---: | ---: | --- |")
    for phase, unit in (("write", "MiB/s"), ("read", "MiB/s"), ("meta", "ops/s")):
        cells = []
        for m in modes:
            v = [r[phase] for r in runs[m]]
            cells.append(f"{statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f}) {unit}")
        ratios = sorted(a[phase] / b[phase] for a, b in zip(runs["multi"], runs["single"]))
        print(f"| {phase} | {cells[0]} | {cells[1]} | {statistics.median(ratios):.2f} "
              f"({ratios[0]:.2f}–{ratios[-1]:.2f}) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clients": args.clients, "mib": args.mib, "files": args.files,
                       "backend": args.backend, "loadavg_before": load_before,
                       "loadavg_after": load_after, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
