#!/usr/bin/python3
"""Compares two settings or builds of dbos from runs taken in turn: markdown tables on stdout.

usage: ab_dbos.py --a A1.json A2.json … --b B1.json B2.json … [--names before after]
       [--plot docs/bench/NAME.png] [--plot-sched PNG] [--plot-p99 PNG]

Inputs are `dbos_bench … --out` files and/or `dbos_fs_bench … --json` files (told apart by their
keys). Each cell is the median over every repetition of the runs given, with the min–max spread:
- IPC: msgs/s divided by gRPC's in the same repetition of the same run (the noise of the hour
  cancels), and the p50 round;
- schedulers: tasks/s, tasks per CPU-second, and the p99 of the open-loop runs at half the one-thread peak;
- filesystem: ops/s.
The last column is B's median over A's.
"""
import argparse
import json
import statistics
from collections import defaultdict


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def cell(xs, fmt="{:,.2f}"):
    if not xs:
        return "–"
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def collect(paths):
    """Every measured quantity of these runs: key -> list of values, one per repetition."""
    out = defaultdict(list)
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        if "points" in d:  # dbos_fs_bench
            for p in d["points"]:
                out[("fs", p["bench"], p["system"])].append(p["ops_per_s"])
            continue
        grpc = {}
        for r in d.get("ipc", []):
            if r["system"] == "grpc":
                grpc[(r["pattern"], r["receivers"], r["size"], r["rep"])] = r["msgs_per_s"]
        for r in d.get("ipc", []):
            if not r["system"].startswith("dbos"):
                continue
            g = grpc.get((r["pattern"], r["receivers"], r["size"], r["rep"]))
            case = (r["system"], r["pattern"], r["receivers"], r["size"])
            if g:
                out[("ipc-ratio",) + case].append(r["msgs_per_s"] / g)
            out[("ipc-p50",) + case].append(r["p50_us"])
        for r in d.get("sched_throughput", []):
            out[("sched", r["backend"], r["scheduler"], r["threads"], r["batch"])].append(
                r["tasks_per_s"])
            if r.get("tasks_per_cpu_s"):
                out[("sched-cpu", r["backend"], r["scheduler"], r["threads"], r["batch"])].append(
                    r["tasks_per_cpu_s"])
        for r in d.get("sched_latency", []):
            if abs(r["load"] - 0.5) < 1e-9:
                out[("p99", r["backend"], r["scheduler"])].append(r["p99_us"] / 1000)
    return out


def table(title, header, keys, a, b, label, fmt):
    rows = sorted(k for k in set(a) | set(b) if k[0] == keys)
    if not rows:
        return
    print(f"### {title}\n")
    print(f"| {header} | A | B | B ÷ A |")
    print("| --- | --- | --- | ---: |")
    for k in rows:
        ratio = med(b.get(k, [])) / med(a.get(k, [])) if a.get(k) and b.get(k) else float("nan")
        print(f"| {label(k)} | {cell(a.get(k, []), fmt)} | {cell(b.get(k, []), fmt)} | "
              f"{ratio:.2f} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", nargs="+", required=True)
    ap.add_argument("--b", nargs="+", required=True)
    ap.add_argument("--names", nargs=2, default=["A", "B"])
    ap.add_argument("--plot", help="a bar chart of the IPC ratios to gRPC")
    ap.add_argument("--plot-sched", help="a bar chart of the schedulers' tasks per CPU-second "
                    "(batched runs where there are any)")
    ap.add_argument("--plot-p99", help="a bar chart of the schedulers' p99 at half the peak")
    args = ap.parse_args()
    a, b = collect(args.a), collect(args.b)
    print(f"A = {args.names[0]} ({len(args.a)} runs), B = {args.names[1]} ({len(args.b)} runs)\n")
    ipc_label = lambda k: f"{k[1]} {k[2]} {k[4]} B, {k[3]} receivers"  # noqa: E731
    table("IPC, msgs/s ÷ gRPC's in the same repetition", "system, pattern, size, receivers",
          "ipc-ratio", a, b, ipc_label, "{:.2f}")
    table("IPC, p50 round (µs)", "system, pattern, size, receivers", "ipc-p50", a, b, ipc_label,
          "{:,.0f}")
    table("Schedulers, tasks/s", "backend, scheduler, threads, tasks per transaction", "sched", a,
          b, lambda k: f"{k[1]} {k[2]}, {k[3]}, {k[4]}", "{:,.0f}")
    table("Schedulers, tasks per CPU-second (the process and, for PostgreSQL, its server)",
          "backend, scheduler, threads, tasks per transaction", "sched-cpu", a, b,
          lambda k: f"{k[1]} {k[2]}, {k[3]}, {k[4]}", "{:,.0f}")
    table("Schedulers, p99 at half the one-thread peak (ms)", "backend, scheduler", "p99", a, b,
          lambda k: f"{k[1]} {k[2]}", "{:,.2f}")
    table("Filesystem, ops/s", "benchmark, system", "fs", a, b, lambda k: f"{k[1]}, {k[2]}",
          "{:,.0f}")
    keys = lambda kind: sorted(k for k in set(a) | set(b) if k[0] == kind)  # noqa: E731
    if args.plot:
        bars(keys("ipc-ratio"), [f"{k[2]}\n{k[3]}×{k[4]}B" for k in keys("ipc-ratio")], a, b,
             args.names, "msgs/s ÷ gRPC (same repetition)",
             "dbos IPC against gRPC: median and min–max of repetitions", args.plot, 1.0)
    if args.plot_sched:
        ks = [k for k in keys("sched-cpu") if k[4] > 1] or keys("sched-cpu")
        bars(ks, [f"{k[1]}\n{k[2]}\n{k[3]} thr × {k[4]}" for k in ks], a, b, args.names,
             "tasks per CPU-second", "schedulers: median and min–max of repetitions",
             args.plot_sched, 10000)
    if args.plot_p99:
        ks = keys("p99")
        bars(ks, [f"{k[1]}\n{k[2]}" for k in ks], a, b, args.names, "p99 latency (ms)",
             "p99 at half the one-thread peak (median, min–max)", args.plot_p99,
             1.0)


def bars(keys, labels, a, b, names, ylabel, title, path, hline):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(len(keys))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(keys)), 4))
    for off, (data, name) in zip((-0.2, 0.2), ((a, names[0]), (b, names[1]))):
        meds = [med(data.get(k, [])) for k in keys]
        lo = [m - min(data.get(k, [m])) for k, m in zip(keys, meds)]
        hi = [max(data.get(k, [m])) - m for k, m in zip(keys, meds)]
        ax.bar([i + off for i in x], meds, 0.4, yerr=[lo, hi], capsize=2, label=name)
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
