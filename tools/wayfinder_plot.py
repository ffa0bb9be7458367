#!/usr/bin/python3
"""Plots of wayfinder studies from `sluice tune export --csv` files.

For each CSV: docs/bench/wayfinder_<study>.png with three panels: each trial's metric and the
best so far over iterations, the same over wall time, and the cumulative failure rate (crashes,
timeouts, start/build failures, missing metrics) over time. The default configuration's value is a
dashed line; confirm-phase re-runs are drawn separately at the end.

  tools/wayfinder_plot.py --out docs/bench study1.csv study2.csv ...
"""
import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot(path, out_dir, metric, direction):
    rows = load(path)
    if not rows:
        return None
    study = os.path.splitext(os.path.basename(path))[0]
    cols = list(rows[0].keys())
    metric = metric or cols[4]
    sign = -1 if direction == "min" else 1
    t0 = min(int(r["started_ns"]) for r in rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    search = [r for r in rows if r["role"] != "confirm"]
    confirm = [r for r in rows if r["role"] == "confirm"]
    xs, ys, ts, best_x, best_t, best_y, fail_x, fail_t = [], [], [], [], [], [], [], []
    best = None
    default = None
    for r in search:
        it = int(r["iteration"])
        t = (int(r["started_ns"]) - t0) / 1e9 + float(r["eval_s"]) + float(r["build_s"])
        if r["outcome"] == "ok" and r[metric] != "":
            v = float(r[metric])
            xs.append(it)
            ys.append(v)
            ts.append(t / 60)
            if r["role"] == "default":
                default = v
            if best is None or sign * v > sign * best:
                best = v
        else:
            fail_x.append(it)
            fail_t.append(t / 60)
        if best is not None:
            best_x.append(it)
            best_t.append(t / 60)
            best_y.append(best)
    for ax, x, bx, fx, label in ((axes[0], xs, best_x, fail_x, "iteration"),
                                 (axes[1], ts, best_t, fail_t, "wall time (min)")):
        ax.scatter(x, ys, s=14, color="tab:blue", label="trial")
        ax.step(bx, best_y, where="post", color="tab:red", label="best so far")
        if default is not None:
            ax.axhline(default, color="gray", linestyle="--", label="default")
        if fx and ys:
            ax.scatter(fx, [min(ys) if sign > 0 else max(ys)] * len(fx), marker="x",
                       color="black", label="failure")
        ax.set_xlabel(label)
        ax.set_ylabel(metric + (" (lower is better)" if sign < 0 else " (higher is better)"))
        ax.grid(alpha=0.3)
    if confirm:
        cx = [max(xs or [0]) + 1 + i for i in range(len(confirm))]
        cv = [float(r[metric]) if r["outcome"] == "ok" and r[metric] else float("nan")
              for r in confirm]
        is_def = [r["role"] == "confirm" and all(
            r[c] == search[0][c] for c in cols[9:-1]) for r in confirm]
        axes[0].scatter([x for x, d in zip(cx, is_def) if d], [v for v, d in zip(cv, is_def) if d],
                        marker="s", color="gray", s=18, label="confirm: default")
        axes[0].scatter([x for x, d in zip(cx, is_def) if not d],
                        [v for v, d in zip(cv, is_def) if not d], marker="s", color="tab:red",
                        s=18, label="confirm: best")
    axes[0].legend(fontsize=7)
    done = 0
    fails = 0
    rate_t, rate = [], []
    for r in sorted(rows, key=lambda r: int(r["started_ns"])):
        done += 1
        fails += r["outcome"] not in ("ok", "pending")
        rate_t.append((int(r["started_ns"]) - t0) / 60e9)
        rate.append(100.0 * fails / done)
    axes[2].plot(rate_t, rate, color="black")
    axes[2].set_xlabel("wall time (min)")
    axes[2].set_ylabel("cumulative failure rate (%)")
    axes[2].set_ylim(0, 100)
    axes[2].grid(alpha=0.3)
    fig.suptitle(f"wayfinder random search: {study}")
    fig.tight_layout()
    out = os.path.join(out_dir, f"wayfinder_{study}.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="CSV files from `sluice tune export`")
    ap.add_argument("--out", default="docs/bench")
    ap.add_argument("--metric", action="append", default=[],
                    help="STUDY=METRIC[:min|max] (default: the first metric, max)")
    args = ap.parse_args()
    chosen = {}
    for m in args.metric:
        study, spec = m.split("=", 1)
        name, _, d = spec.partition(":")
        chosen[study] = (name, d or "max")
    os.makedirs(args.out, exist_ok=True)
    for path in args.csv:
        study = os.path.splitext(os.path.basename(path))[0]
        name, d = chosen.get(study, (None, "max"))
        out = plot(path, args.out, name, d)
        if out:
            print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
