#!/usr/bin/python3
"""Turns dbos_bench JSON into markdown tables (stdout) and docs/bench/dbos_*.png.

usage: plot_dbos.py dbos_bench.json [more.json …] [--out-dir docs/bench] [--tag _name]
Each point is the median of the repetitions; the spread is min–max.
"""
import argparse
import json
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return f"{min(xs):,.0f}–{max(xs):,.0f}" if xs else ""


def sched_tables(data, out_dir, tag=""):
    tp = defaultdict(list)
    tpc = defaultdict(list)
    for r in data.get("sched_throughput", []):
        k = (r["backend"], r["scheduler"], r["threads"], r["batch"])
        tp[k].append(r["tasks_per_s"])
        tpc[k].append(r.get("tasks_per_cpu_s", 0))
    lat = defaultdict(lambda: defaultdict(list))
    for r in data.get("sched_latency", []):
        k = (r["backend"], r["scheduler"], r["load"])
        lat[k]["p50"].append(r["p50_us"])
        lat[k]["p99"].append(r["p99_us"])
        lat[k]["rate"].append(r["rate"])
    print("### Schedulers: tasks/s (median of repetitions, spread min–max)\n")
    print("| backend | scheduler | threads | tasks/txn | tasks/s | spread | tasks per CPU-second |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k in sorted(tp):
        print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {med(tp[k]):,.0f} | {spread(tp[k])} "
              f"| {med(tpc[k]):,.0f} |")
    print("\n### Schedulers: latency at a share of the one-thread peak, offered open-loop\n")
    print("| backend | scheduler | load | offered tasks/s | p50 µs | p99 µs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in sorted(lat):
        v = lat[k]
        print(f"| {k[0]} | {k[1]} | {k[2]:.2f} | {med(v['rate']):,.0f} | {med(v['p50']):,.0f} "
              f"| {med(v['p99']):,.0f} |")

    backends = sorted({k[0] for k in tp})
    scheds = sorted({k[1] for k in tp})
    pairs = sorted({c[1] for c in cases if c[0] == "pairs"})
    fig, axes = plt.subplots(1, 4 if pairs else 3, figsize=(21 if pairs else 16, 4.5))
    ax = axes[0]
    width = 0.8 / max(1, 2 * len(backends))
    for bi, b in enumerate(backends):
        for ci, (threads, batch) in enumerate([(1, 1), (1, 64)]):
            xs, ys, lo, hi = [], [], [], []
            for si, s in enumerate(scheds):
                v = tpc.get((b, s, threads, batch), [])
                if not v:
                    continue
                xs.append(si + (bi * 2 + ci) * width)
                ys.append(med(v))
                lo.append(med(v) - min(v))
                hi.append(max(v) - med(v))
            ax.bar(xs, ys, width, yerr=[lo, hi], label=f"{b}, {batch} task/txn")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(scheds))])
    ax.set_xticklabels(scheds, rotation=15)
    ax.set_ylabel("tasks per CPU-second")
    ax.set_yscale("log")
    ax.set_title("scheduler throughput per core (1 thread)")
    ax.legend(fontsize=8)
    for pi, b in enumerate(backends):
        ax = axes[1 + pi]
        for s in scheds:
            loads = sorted({k[2] for k in lat if k[0] == b and k[1] == s})
            if not loads:
                continue
            rates = [med(lat[(b, s, l)]["rate"]) for l in loads]
            ax.plot(rates, [med(lat[(b, s, l)]["p50"]) for l in loads], "o-", label=f"{s} p50")
            ax.plot(rates, [med(lat[(b, s, l)]["p99"]) for l in loads], "x--", label=f"{s} p99")
        ax.set_xlabel("offered tasks/s (one thread)")
        ax.set_ylabel("latency µs")
        ax.set_yscale("log")
        ax.set_title(f"scheduling latency, {b}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out_dir}/dbos_sched{tag}.png", dpi=110)


def ipc_tables(data, out_dir, tag=""):
    pts = defaultdict(lambda: defaultdict(list))
    by_rep = {}  # (case, system, run, rep) → msgs/s: each system against gRPC in its own rep
    for r in data.get("ipc", []):
        k = (r["pattern"], r["receivers"], r["size"], r["system"])
        pts[k]["msgs"].append(r["msgs_per_s"])
        pts[k]["p50"].append(r["p50_us"])
        by_rep[k + (r.get("run", 0), r["rep"])] = r["msgs_per_s"]
    if not pts:
        return
    rep_ratio = defaultdict(list)
    for k, m in by_rep.items():
        g = by_rep.get(k[:3] + ("grpc",) + k[4:])
        if g:
            rep_ratio[k[:4]].append(m / g)
    systems = sorted({k[3] for k in pts})
    cases = sorted({k[:3] for k in pts}, key=lambda c: (c[0], c[1], c[2]))
    print("\n### IPC: messages/s (median, spread min–max), median round latency, ratio to gRPC\n")
    print("| pattern | receivers | bytes | system | msgs/s | spread | p50 µs | × gRPC (msgs/s) "
          "| × gRPC per repetition (median, min–max) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in cases:
        g = med(pts[c + ("grpc",)]["msgs"])
        for s in systems:
            v = pts.get(c + (s,))
            if not v:
                continue
            m = med(v["msgs"])
            rr = rep_ratio.get(c + (s,), [])
            per_rep = f"{med(rr):.2f} ({min(rr):.2f}–{max(rr):.2f})" if rr else ""
            print(f"| {c[0]} | {c[1]} | {c[2]} | {s} | {m:,.0f} | {spread(v['msgs'])} "
                  f"| {med(v['p50']):,.1f} | {m / g:.2f} | {per_rep} |")
    pairs = sorted({c[1] for c in cases if c[0] == "pairs"})
    fig, axes = plt.subplots(1, 4 if pairs else 3, figsize=(21 if pairs else 16, 4.5))
    for ai, pattern in enumerate(["pingpong", "ping20"]):
        ax = axes[ai]
        sizes = sorted({c[2] for c in cases if c[0] == pattern})
        for s in systems:
            ys = [med(pts[(pattern, 1, z, s)]["msgs"]) for z in sizes]
            ax.plot(sizes, ys, "o-", label=s)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message bytes")
        ax.set_ylabel("messages/s")
        ax.set_title("ping-pong" if pattern == "pingpong" else "ping²⁰-pong²⁰")
        ax.legend(fontsize=8)
    ax = axes[2]
    ns = sorted({c[1] for c in cases if c[0] == "multicast"})
    msizes = sorted({c[2] for c in cases if c[0] == "multicast"})
    for size in msizes:
        for i, s in enumerate(systems):
            ys = [med(pts[("multicast", n, size, s)]["msgs"]) for n in ns]
            ax.plot(ns, ys, "o-" if size == msizes[0] else "x--", color=f"C{i}",
                    label=s if len(msizes) == 1 else f"{s}, {size} B")
    ax.set_yscale("log")
    ax.set_xlabel("receivers")
    ax.set_ylabel("messages/s")
    ax.set_title("multicast, " + " and ".join(f"{m} B" for m in msizes))
    ax.legend(fontsize=8)
    if pairs:
        ax = axes[3]
        for s in systems:
            ax.plot(pairs, [med(pts[("pairs", n, 64, s)]["msgs"]) for n in pairs], "o-", label=s)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent sender/receiver pairs")
        ax.set_ylabel("messages/s, all pairs")
        ax.set_title("ping-pong pairs at once, 64 B")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{out_dir}/dbos_ipc{tag}.png", dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json", nargs="+", help="one or more runs; their repetitions are pooled")
    ap.add_argument("--out-dir", default="docs/bench")
    ap.add_argument("--tag", default="", help="suffix of the plot names (dbos_ipc<tag>.png)")
    a = ap.parse_args()
    data = {}
    for run, path in enumerate(a.json):
        with open(path) as f:
            d = json.load(f)
        for key, rows in d.items():
            if isinstance(rows, list):
                data.setdefault(key, []).extend(dict(r, run=run) for r in rows)
            else:
                data.setdefault(key, rows)
    if data.get("sched_throughput"):
        sched_tables(data, a.out_dir, a.tag)
    ipc_tables(data, a.out_dir, a.tag)
    cpu = data.get("cpu", {})
    print(f"\nmachine busy {100 * cpu.get('machine_busy_share', 0):.0f} %, not this benchmark "
          f"process {100 * cpu.get('not_this_process_share', 0):.0f} % over "
          f"{cpu.get('wall_s', 0):.0f} s")


if __name__ == "__main__":
    main()
