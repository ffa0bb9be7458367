#!/usr/bin/python3
"""Turns dbos_fs_bench JSON runs into a markdown table (stdout) and docs/bench/dbos_fs.png.

usage: plot_fs.py RUN.json [RUN.json …] [--out-dir docs/bench]
Runs of one backend are pooled; each dbos figure is divided by its ext4 peer of the same run and
repetition (analytics: the SQL query against the C++ walk), and the table gives the median of those
ratios with their min–max, beside the median ops/s and its spread.
"""
import argparse
import json
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCHES = ["meta", "rw-1-file", "rw-20-files", "analytics"]
TITLES = {
    "meta": "create + delete, ops/s",
    "rw-1-file": "20 blocks of 1 file, rounds/s",
    "rw-20-files": "1 block of 20 files, rounds/s",
    "analytics": "size aggregate, answers/s",
}
PEER = {"analytics": "ext4-walk"}
COLORS = {"dbos-localized": "tab:blue", "dbos-parallel": "tab:orange", "dbos-sql": "tab:blue",
          "engine-floor": "tab:gray", "ext4": "tab:red", "ext4-walk": "tab:red"}


def engine(url):
    return "postgres" if url.startswith("postgres") else "sqlite"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json", nargs="+")
    ap.add_argument("--out-dir", default="docs/bench")
    a = ap.parse_args()

    ops = defaultdict(list)  # (backend, bench, system) → ops/s over runs and reps
    by_rep = {}  # (backend, bench, system, run, rep) → ops/s
    threads = set()
    for run, path in enumerate(a.json):
        with open(path) as f:
            d = json.load(f)
        # Runs with another number of clients are another column.
        be = f"{engine(d['backend'])}, {d.get('threads', '?')} clients"
        threads.add(d.get("threads"))
        for p in d["points"]:
            # ext4 runs beside each backend: its figures are kept under that backend's run.
            k = (be, p["bench"], p["system"])
            ops[k].append(p["ops_per_s"])
            by_rep[k + (run, p.get("rep", 0))] = p["ops_per_s"]

    ratios = defaultdict(list)
    for (be, bench, system, run, rep), v in by_rep.items():
        peer = PEER.get(bench, "ext4")
        if system == peer:
            continue
        g = by_rep.get((be, bench, peer, run, rep))
        if g:
            ratios[(be, bench, system)].append(v / g)

    print("| backend | bench | system | ops/s, median | spread | × ext4 (same repetition) |")
    print("| --- | --- | --- | ---: | --- | --- |")
    for k in sorted(ops, key=lambda k: (k[0], BENCHES.index(k[1]), k[2])):
        v = ops[k]
        r = ratios.get(k)
        rs = f"{statistics.median(r):.3g} ({min(r):.3g}–{max(r):.3g})" if r else "1 (peer)"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {statistics.median(v):,.0f} "
              f"| {min(v):,.0f}–{max(v):,.0f} | {rs} |")
    print(f"\nclient threads: {sorted(t for t in threads if t is not None)}")

    backends = sorted({k[0] for k in ops})
    fig, axes = plt.subplots(1, len(BENCHES), figsize=(4.6 * len(BENCHES), 4.4))
    for ax, bench in zip(axes, BENCHES):
        systems = sorted({k[2] for k in ops if k[1] == bench})
        width = 0.8 / max(1, len(systems))
        for si, system in enumerate(systems):
            xs, ys, lo, hi = [], [], [], []
            for bi, be in enumerate(backends):
                v = ops.get((be, bench, system))
                if not v:
                    continue
                m = statistics.median(v)
                xs.append(bi + si * width)
                ys.append(m)
                lo.append(m - min(v))
                hi.append(max(v) - m)
            ax.bar(xs, ys, width, yerr=[lo, hi], label=system, capsize=2,
                   color=COLORS.get(system))
        ax.set_xticks([bi + 0.4 - width / 2 for bi in range(len(backends))])
        ax.set_xticklabels([b.replace(", ", "\n") for b in backends], fontsize=8)
        ax.set_yscale("log")
        ax.set_title(TITLES[bench], fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("dbos filesystems against ext4 (median, min–max over repetitions)", fontsize=11)
    fig.tight_layout()
    fig.savefig(f"{a.out_dir}/dbos_fs.png", dpi=110)


if __name__ == "__main__":
    main()
