#!/usr/bin/env python3
"""Turns zicio_bench's JSON lines into docs/bench/zicio_*.{md,json,png}.

  report.py --out docs/bench --prefix zicio seq.jsonl sweep.jsonl ranges.jsonl

Runs are grouped by (tag, method, rate, req, batch); a group's median, min and max are given, and
each peer's ratio to zicio is the median over repetitions of peer/zicio measured in the same
repetition (the driver interleaves methods, so a repetition's runs saw the same machine).
Plots need matplotlib (/usr/bin/python3 on Debian); without it only the Markdown and JSON are
written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path

METHODS = ["pread", "direct", "uring", "uring-q4", "uring-thp", "uring-thp-q4", "zicio",
           "zicio-thread", "zicio-task", "zicio-q16", "fio", "fio-q4"]
LABEL = {
    "uring-q4": "io_uring, 4 × 2 MiB in flight",
    "zicio-q16": "zicio, max_inflight 16",
    "zicio-thread": "zicio, control loop on its own thread",
    "zicio-task": "zicio, worker a task on the loop's reactor",
    "uring-thp": "io_uring on huge pages (THP), 32 MiB in flight",
    "uring-thp-q4": "io_uring on huge pages, 4 × 2 MiB in flight",
    "fio-q4": "fio (io_uring, 2M × 4)",
    "pread": "pread (buffered, readahead)",
    "direct": "pread O_DIRECT",
    "uring": "io_uring (O_DIRECT, registered, 32 MiB in flight)",
    "zicio": "zicio",
    "fio": "fio (io_uring, 2M × 16)",
}


def size(n: int) -> str:
    for unit, div in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def rate_name(r: int) -> str:
    return "unlimited" if r == 0 else f"{r / (1 << 30):g} GiB/s"


def load(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                runs.append(json.loads(line))
    return runs


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def groups(runs, tag):
    g = OrderedDict()
    for r in runs:
        if r["tag"] != tag:
            continue
        g.setdefault((r["method"], r["rate"], r["req"], r["batch"]), []).append(r)
    return g


def ratio_to_zicio(runs, tag, key_fn, metric, base="zicio"):
    """Median over reps of run[metric] / base[metric] in the same rep (and rate, batch)."""
    zic = {}
    for r in runs:
        if r["tag"] == tag and r["method"] == base:
            zic[(r["rep"], r["rate"], r["batch"])] = r[metric]
    out = defaultdict(list)
    for r in runs:
        if r["tag"] != tag:
            continue
        z = zic.get((r["rep"], r["rate"], r["batch"]))
        if z:
            out[key_fn(r)].append(r[metric] / z)
    return {k: med(v) for k, v in out.items()}


def fmt_range(xs, f="{:.2f}"):
    return f"{f.format(med(xs))} ({f.format(min(xs))}–{f.format(max(xs))})"


def order(m):
    return METHODS.index(m) if m in METHODS else len(METHODS)


def seq_table(runs, tag, base="zicio"):
    g = groups(runs, tag)
    if not g:
        return "", {}
    ratios = ratio_to_zicio(runs, tag, lambda r: (r["method"], r["rate"], r["req"], r["batch"]),
                            "gib_per_s", base)
    cpu_ratios = ratio_to_zicio(runs, tag,
                                lambda r: (r["method"], r["rate"], r["req"], r["batch"]),
                                "cpu_s_per_gib", base)
    lines = [
        "| scan | worker rate | method | request | n | GiB/s median (min–max) | × zicio | wall s | "
        "worker wait % of wall | CPU s per GiB | CPU × zicio | own CPU s per GiB | "
        "device request KiB | others' CPU % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = {}
    for (m, rate, req, batch), rs in sorted(
            g.items(), key=lambda kv: (kv[0][3], kv[0][1] == 0, kv[0][1], order(kv[0][0]),
                                       kv[0][2])):
        tp = [r["gib_per_s"] for r in rs]
        ws = [100 * r["wait_share"] for r in rs]
        cpu = [r["cpu_s_per_gib"] for r in rs]
        # The method's own CPU, beside the worker's pass over the bytes (runs since the driver
        # measures that pass; fio has no pass, its figure is all of its CPU).
        own = [r["io_cpu_s_per_gib"] for r in rs if "io_cpu_s_per_gib" in r]
        oth = [100 * r["others_cpu_share"] for r in rs]
        wall = [r["wall_s"] for r in rs]
        k = (m, rate, req, batch)
        rt = ratios.get(k)
        ct = cpu_ratios.get(k)
        dev = [r["device_read_kib"] for r in rs if r.get("device_read_kib")]
        scan = "full" if batch == 0 else f"odd {size(batch)} batches"
        lines.append(
            f"| {scan} | {rate_name(rate)} | {m} | {size(req)} | {len(rs)} | {fmt_range(tp)} | "
            f"{'' if rt is None else f'{rt:.2f}'} | {med(wall):.2f} | {fmt_range(ws, '{:.1f}')} | "
            f"{fmt_range(cpu, '{:.3f}')} | {'' if ct is None else f'{ct:.2f}'} | "
            f"{fmt_range(own, '{:.4f}') if own else ''} | "
            f"{f'{med(dev):.0f}' if dev else ''} | {med(oth):.0f} |")
        summary[f"{m}/{rate}/{req}/{batch}"] = {
            "method": m, "rate": rate, "req": req, "batch": batch, "n": len(rs),
            "gib_per_s_median": med(tp), "gib_per_s_min": min(tp), "gib_per_s_max": max(tp),
            "wait_share_median": med(ws) / 100, "wait_share_max": max(ws) / 100,
            "cpu_s_per_gib_median": med(cpu), "ratio_to_zicio": rt, "cpu_ratio_to_zicio": ct,
            "own_cpu_s_per_gib_median": med(own) if own else None,
            "others_cpu_share_median": med(oth) / 100,
            "fio_gib_per_s_median": med([r["fio_bw_gib_per_s"] for r in rs]),
        }
    return "\n".join(lines) + "\n", summary


def goals(summary_seq, summary_sweep, summary_ranges, base="zicio"):
    out = ["| goal | measured | verdict |", "| --- | --- | --- |"]
    z = {v["rate"]: v for v in summary_seq.values() if v["method"] == base}
    fio = [v for v in summary_seq.values() if v["method"] == "fio"]
    fio_bw = fio[0]["fio_gib_per_s_median"] if fio else None
    # (a) slow worker: wait < 2 % of wall.
    for rate, v in sorted(z.items()):
        if rate == 0:
            continue
        slow = fio_bw is not None and rate / (1 << 30) < fio_bw
        if slow:
            w = v["wait_share_median"] * 100
            out.append(f"| (a) worker at {rate_name(rate)} (slower than the device): wait < 2 % "
                       f"| median {w:.2f} %, worst {v['wait_share_max'] * 100:.2f} % "
                       f"| {'met' if v['wait_share_max'] < 0.02 else ('met at the median' if w < 2 else 'missed')} |")
    # (b) fast worker: ≥ 95 % of fio.
    if 0 in z and fio_bw:
        share = z[0]["gib_per_s_median"] / fio_bw * 100
        out.append(f"| (b) unlimited worker: zicio ≥ 95 % of fio | zicio {z[0]['gib_per_s_median']:.2f} "
                   f"GiB/s, fio {fio_bw:.2f} GiB/s: {share:.0f} % | {'met' if share >= 95 else 'missed'} |")
    # (c) lowest CPU per byte: unlimited worker only (a rate-held worker spins, and the spin is
    # in the process's CPU time whatever the method).
    for rate in sorted(z):
        if rate != 0:
            continue
        peers = [v for v in list(summary_seq.values()) + list(summary_sweep.values())
                 if v["rate"] == rate and not v["method"].startswith(("zicio", "fio"))
                 and v["batch"] == 0]
        if not peers:
            continue
        best = min(peers, key=lambda v: v["cpu_s_per_gib_median"])
        zc = z[rate]["cpu_s_per_gib_median"]
        ok = zc <= best["cpu_s_per_gib_median"]
        out.append(f"| (c) CPU per byte lowest (unlimited worker, full scans) | zicio {zc:.3f} s/GiB, "
                   f"best peer {best['method']} {size(best['req'])} "
                   f"{best['cpu_s_per_gib_median']:.3f} s/GiB | {'met' if ok else 'missed'} |")
    # (d) zicio faster than every peer at every request size (all tables).
    losses = []
    for table in (summary_seq, summary_sweep, summary_ranges):
        for v in table.values():
            if v["method"].startswith(("zicio", "fio")) or v["ratio_to_zicio"] is None:
                continue
            if v["ratio_to_zicio"] > 1.0:
                losses.append(f"{v['method']} {size(v['req'])} "
                              f"{'batch ' + size(v['batch']) + ' ' if v['batch'] else ''}"
                              f"at {rate_name(v['rate'])}: {v['ratio_to_zicio']:.2f}×")
    out.append(f"| (d) zicio beats every peer at every request size | "
               f"{'; '.join(losses) if losses else 'no peer faster'} | "
               f"{'missed' if losses else 'met'} |")
    return "\n".join(out) + "\n"


def plots(runs, out: Path, prefix: str):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not found: no plots (use /usr/bin/python3)", file=sys.stderr)
        return []
    written = []
    colors = {"pread": "tab:blue", "direct": "tab:orange", "uring": "tab:green",
              "zicio": "tab:red", "fio": "black", "uring-q4": "tab:olive",
              "zicio-q16": "tab:pink", "fio-q4": "tab:gray", "uring-thp": "tab:cyan",
              "zicio-thread": "tab:brown", "zicio-task": "tab:purple"}

    def grouped_bars(ax, ms, groups, labels, values):
        """One bar per method in each group: the median of values(m, group), min–max whiskers."""
        width = 0.8 / len(ms)
        for i, m in enumerate(ms):
            ys, lo, hi = [], [], []
            for g in groups:
                v = values(m, g)
                ys.append(med(v) if v else 0)
                lo.append(ys[-1] - (min(v) if v else 0))
                hi.append((max(v) if v else 0) - ys[-1])
            xs = [j + i * width for j in range(len(groups))]
            ax.bar(xs, ys, width, yerr=[lo, hi], color=colors[m], label=LABEL[m], capsize=2)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], labels)

    # Throughput vs request size (sweep tag, unlimited worker) with zicio and fio as levels.
    sweep = [r for r in runs if r["tag"] == "sweep"]
    if sweep:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for m in ("pread", "direct", "uring"):
            by = defaultdict(list)
            for r in sweep:
                if r["method"] == m:
                    by[r["req"]].append(r["gib_per_s"])
            if by:
                xs = sorted(by)
                ax.plot(xs, [med(by[x]) for x in xs], "o-", color=colors[m], label=LABEL[m])
        for m in ("zicio", "zicio-q16", "zicio-task", "fio"):
            tag = "seq" if m == "fio" else "sweep"
            v = [r["gib_per_s"] for r in runs
                 if r["tag"] == tag and r["method"] == m and r["rate"] == 0 and r["batch"] == 0]
            if v:
                ax.axhline(med(v), color=colors[m], ls="--" if m != "fio" else ":",
                           label=f"{LABEL[m]} (2 MiB chunks)" if m.startswith("zicio") else LABEL[m])
        ax.set_xscale("log", base=2)
        xs = sorted({r["req"] for r in sweep})
        ax.set_xticks(xs, [size(x) for x in xs])
        ax.set_xlabel("request size")
        ax.set_ylabel("GiB/s (median)")
        ax.set_title("Full scan, unlimited worker, cold cache")
        ax.legend(fontsize=7)
        ax.grid(alpha=.3)
        p = out / f"{prefix}_throughput_vs_request.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        written.append(p)

    seq = [r for r in runs if r["tag"] == "seq" and r["method"] != "fio"]
    if seq:
        rates = sorted({r["rate"] for r in seq}, key=lambda x: (x == 0, x))
        ms = [m for m in METHODS if any(r["method"] == m for r in seq)]
        for metric, ylabel, fname, scale in (
                ("wait_share", "worker wait, % of wall time", "wait_share", 100),
                ("cpu_s_per_gib", "process CPU seconds per GiB", "cpu_per_gib", 1)):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            grouped_bars(ax, ms, rates, [f"worker {rate_name(x)}" for x in rates],
                         lambda m, rate, metric=metric, scale=scale: [
                             scale * r[metric] for r in seq
                             if r["method"] == m and r["rate"] == rate])
            ax.set_ylabel(ylabel)
            ax.set_title("Full scans, cold cache (median, min–max)")
            ax.legend(fontsize=7)
            ax.grid(alpha=.3, axis="y")
            p = out / f"{prefix}_{fname}.png"
            fig.tight_layout()
            fig.savefig(p, dpi=110)
            written.append(p)

    rng = [r for r in runs if r["tag"] == "ranges"]
    if rng:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for m in METHODS:
            by = defaultdict(list)
            for r in rng:
                if r["method"] == m:
                    by[r["batch"]].append(r["gib_per_s"])
            if by:
                xs = sorted(by)
                ax.plot(xs, [med(by[x]) for x in xs], "o-", color=colors[m], label=LABEL[m])
        ax.set_xscale("log", base=2)
        xs = sorted({r["batch"] for r in rng})
        ax.set_xticks(xs, [size(x) for x in xs])
        ax.set_xlabel("batch size (odd-numbered batches read)")
        ax.set_ylabel("GiB/s of requested data (median)")
        ax.set_title("Disjoint range scans, unlimited worker, cold cache")
        ax.legend(fontsize=7)
        ax.grid(alpha=.3)
        p = out / f"{prefix}_ranges.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        written.append(p)

    # The methods' own CPU (beside the worker's pass over the bytes), unlimited worker, full
    # scans and each batch size: where the methods differ. Runs from before the driver measured
    # the pass have no such figure and are left out.
    own = [r for r in runs if "io_cpu_s_per_gib" in r and r["rate"] == 0
           and r["tag"] in ("seq", "ranges") and not r["method"].startswith("fio")
           and r["method"] not in ("pread", "direct")]
    if own:
        scans = sorted({r["batch"] for r in own})
        ms = [m for m in METHODS if any(r["method"] == m for r in own)]
        fig, ax = plt.subplots(figsize=(7, 5))
        grouped_bars(ax, ms, scans, ["full scan" if b == 0 else f"odd {size(b)}" for b in scans],
                     lambda m, b: [1000 * r["io_cpu_s_per_gib"] for r in own
                                   if r["method"] == m and r["batch"] == b])
        ax.set_yscale("log")
        ax.set_ylabel("CPU ms per GiB beside the worker's pass")
        ax.set_title("The method's own CPU, unlimited worker (median, min–max)")
        ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1))
        ax.grid(alpha=.3, axis="y")
        p = out / f"{prefix}_own_cpu.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        written.append(p)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--out", default="docs/bench")
    ap.add_argument("--prefix", default="zicio")
    ap.add_argument("--machine", default="", help="a Markdown paragraph describing the machine")
    args = ap.parse_args()
    runs = load(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seq_md, seq_sum = seq_table(runs, "seq")
    sweep_md, sweep_sum = seq_table(runs, "sweep")
    rng_md, rng_sum = seq_table(runs, "ranges")
    depth_md, _ = seq_table(runs, "depth")
    # The sweep's ratios compare with zicio's own run in the sweep repetition.
    md = [f"# zicio against its peers: results\n",
          "Generated by `bench/zicio/make_report.sh` (driver `bench/zicio/zicio_bench.cc`); "
          "how to read it: docs/zicio.md, section Benchmarks.\n"]
    if args.machine:
        md.append(args.machine + "\n")
    if seq_md:
        md += ["## Full scans, by worker rate\n",
               "× zicio: the median over repetitions of (method ÷ zicio) in the same repetition; "
               "for GiB/s above 1 means faster than zicio, for CPU above 1 means more CPU. "
               "Own CPU: the process's CPU beside the worker's pass over the bytes and its "
               "rate-holding spin, i.e. what the method spent to bring the bytes (fio has no "
               "worker: all of its CPU).\n",
               seq_md]
    if sweep_md:
        md += ["## Request-size sweep (unlimited worker)\n", sweep_md]
    if rng_md:
        md += ["## Disjoint range scans: odd-numbered batches (unlimited worker)\n",
               "GiB/s counts the bytes the worker asked for (half the scanned region).\n", rng_md]
    if depth_md:
        md += ["## Reads in flight (unlimited worker, full scan)\n",
               "The same 2 MiB reads with 4 and with 16 in flight, for fio, io_uring and zicio.\n",
               depth_md]
    md += ["## Goals\n", "zicio as sluice runs it: the control loop on a para reactor.\n",
           goals(seq_sum, sweep_sum, rng_sum)]
    # The same goals for the other ways to run a channel, each against itself: a loop on a
    # thread of its own (embedded without sluice's runtime), and the worker as a task of the
    # loop's reactor (unlimited worker only: a rate-holding spin would hold that reactor, so
    # goal (a) has no row there).
    for base, title, note in (
            ("zicio-thread", "control loop on its own thread",
             "Only the tables that ran zicio-thread count here."),
            ("zicio-task", "worker a task on the loop's reactor",
             "Unlimited worker only; ratios against zicio-task in the same repetition.")):
        if any(r["method"] == base for r in runs):
            tables = [seq_table(runs, tag, base)[1] for tag in ("seq", "sweep", "ranges")]
            md += [f"## Goals, {title} ({base})\n", note + "\n", goals(*tables, base)]
    (out / f"{args.prefix}_results.md").write_text("\n".join(md))
    (out / f"{args.prefix}_results.json").write_text(json.dumps(
        {"runs": runs, "seq": seq_sum, "sweep": sweep_sum, "ranges": rng_sum}, indent=1))
    for p in plots(runs, out, args.prefix):
        print("wrote", p)
    print("wrote", out / f"{args.prefix}_results.md", out / f"{args.prefix}_results.json")


if __name__ == "__main__":
    main()
