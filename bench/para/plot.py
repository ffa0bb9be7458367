#!/usr/bin/python3
"""Turns para_bench's JSON into docs/bench/para_*.png and a Markdown table (stdout).

    python3 bench/para/plot.py para_bench.json --out docs/bench
"""
import argparse
import collections
import json
import pathlib
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CHARTS = [
    # bench, metric, file, title, unit, reference system (ratios are system / reference)
    ("io", "iops", "para_io.png", "4 KiB random O_DIRECT reads, QD 32, 1 core", "IOPS",
     "fio-registered"),
    ("msg", "ns", "para_msg.png", "cross-core round trip", "ns per round trip",
     "mutex-condvar"),
    ("http", "rps", "para_http_rps.png", "HTTP keep-alive under wrk, 1 server core",
     "requests/s", "nginx"),
    ("http", "p99_ms", "para_http_p99.png", "HTTP keep-alive under wrk: p99 latency", "ms",
     "nginx"),
    ("http", "rps_per_core", "para_http_per_core.png",
     "HTTP keep-alive: requests per busy server-core second", "requests/s per core", "nginx"),
    ("http", "server_busy", None, "", "busy share of the server core", "nginx"),
    ("http16", "rps", "para_http16_rps.png", "HTTP, 16 requests pipelined per write",
     "requests/s", "nginx"),
    ("http16", "rps_per_core", None, "", "requests/s per core", "nginx"),
]


def fmt(x):
    return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--out", default="docs/bench")
    args = ap.parse_args()
    doc = json.loads(pathlib.Path(args.json).read_text())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    series = collections.defaultdict(list)
    by_rep = {}
    for r in doc["results"]:
        series[(r["bench"], r["metric"], r["system"])].append(r["value"])
        by_rep[(r["bench"], r["metric"], r["system"], r["rep"])] = r["value"]

    print(f"others' CPU busy share before the run: {100 * doc.get('others_busy_share_before', 0):.0f}%,"
          f" whole-machine busy share during it: {100 * doc.get('cpu_busy_share', 0):.0f}%;"
          f" loadavg before {doc.get('load_before', '?')}, after {doc.get('load_after', '?')}")
    print()
    print("| benchmark | system | reps | median | min | max | ratio of medians | median of "
          "per-rep ratios |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for bench, metric, fname, title, unit, ref in CHARTS:
        systems = sorted({s for (b, m, s) in series if b == bench and m == metric},
                         key=lambda s: (s != "para" and not s.startswith("para"), s))
        if not systems:
            continue
        ref_med = statistics.median(series[(bench, metric, ref)]) if (bench, metric, ref) in series else None
        meds, lows, highs = [], [], []
        for s in systems:
            v = series[(bench, metric, s)]
            med = statistics.median(v)
            meds.append(med)
            lows.append(med - min(v))
            highs.append(max(v) - med)
            ratio = f"{med / ref_med:.2f}× {ref}" if ref_med and s != ref else ""
            # A reference of 0 (wrk rounds a p99 under 10 µs to 0) gives no ratio.
            paired = [by_rep[(bench, metric, s, k[3])] / by_rep[(bench, metric, ref, k[3])]
                      for k in by_rep if k[:3] == (bench, metric, s)
                      and by_rep.get((bench, metric, ref, k[3]))]
            per_rep = f"{statistics.median(paired):.2f}×" if paired and s != ref else ""
            print(f"| {bench} {metric} ({unit}) | {s} | {len(v)} | {fmt(med)} | {fmt(min(v))} | "
                  f"{fmt(max(v))} | {ratio} | {per_rep} |")
        if fname is None:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar(systems, meds, yerr=[lows, highs], capsize=6,
               color=["#2a6f97" if s.startswith("para") else "#adb5bd" for s in systems])
        ax.set_title(title)
        ax.set_ylabel(unit + " (median, min–max)")
        if bench == "msg":
            ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    main()
