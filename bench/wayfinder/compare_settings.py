#!/usr/bin/env python3
"""Compare settings of one searcher (knob values) on the synthetic suite, from exported studies.

compare.py runs searchers against each other; to tune a searcher's own knobs, run compare.py
once per setting (the knob in the environment, its own --work directory), then point this
script at the CSV directories those runs left (<work>/csv/<suite>-<searcher>-s<seed>-n<budget>.csv):

  SLUICE_WAYFINDER_DEEPTUNE_RECOMBINE_SHARE=0 compare.py --searchers deeptune,random \\
      --seeds 10 --work /tmp/r0 --out-dir /tmp/r0
  SLUICE_WAYFINDER_DEEPTUNE_RECOMBINE_SHARE=1 compare.py --searchers deeptune \\
      --seeds 10 --work /tmp/r1 --out-dir /tmp/r1
  compare_settings.py --setting "share 0=/tmp/r0/csv:deeptune" \\
      --setting "share 1=/tmp/r1/csv:deeptune" --reference /tmp/r0/csv:random \\
      --baseline "share 0" --seeds 10 --out docs/bench/wayfinder_recombine

For each suite it writes <out>_<suite>.png (median best so far per setting, min–max shaded,
and the reference's median) and one <out>.md table: final best, trials to the reference's
final best per seed (the goal: within half the budget), last-half crash rate and how many
studies keep it at most half the reference's, and paired wins against --baseline (the same
seed: the same first random trials).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import (analyse, fmt_range, median, per_iteration, read_trials,  # noqa: E402
                     trials_to_reach)


def parse_source(text):
    path, _, searcher = text.rpartition(":")
    if not path or not searcher:
        raise argparse.ArgumentTypeError(f"expected DIR:SEARCHER, got {text!r}")
    return path, searcher


def load(source, suite, seeds, budget):
    path, searcher = source
    out = {}
    for seed in range(1, seeds + 1):
        f = os.path.join(path, f"{suite}-{searcher}-s{seed}-n{budget}.csv")
        if os.path.exists(f):
            out[seed] = analyse({"trials": read_trials(f)}, budget)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", action="append", required=True,
                    help="LABEL=DIR:SEARCHER (repeat; the first is plotted first)")
    ap.add_argument("--reference", type=parse_source, required=True,
                    help="DIR:SEARCHER whose final best each setting must reach (random search)")
    ap.add_argument("--baseline", help="the label paired wins are counted against")
    ap.add_argument("--suites", default="bowl,rugged")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--out", required=True, help="path prefix of the .md and .png files")
    args = ap.parse_args()
    settings = []
    for s in args.setting:
        label, _, source = s.partition("=")
        if not label or not source:
            ap.error(f"--setting wants LABEL=DIR:SEARCHER, got {s!r}")
        settings.append((label, parse_source(source)))
    labels = [label for label, _ in settings]
    if args.baseline and args.baseline not in labels:
        ap.error(f"--baseline {args.baseline!r} is not one of the settings")

    half = args.budget // 2
    lines = [
        "| suite | setting | studies | final best, median (min–max) | trials to the reference's "
        "final best, per seed | ≤ %d | crash rate, last half | ≤ ½ reference's | paired wins "
        "vs %s |" % (half, args.baseline or "–"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for suite in args.suites.split(","):
        ref = load(args.reference, suite, args.seeds, args.budget)
        runs = {label: load(src, suite, args.seeds, args.budget) for label, src in settings}
        ref_finals = [ref[s]["final_best"] for s in sorted(ref)]
        lines.append("| %s | reference | %d | %s | – | – | %s | – | – |" % (
            suite, len(ref), fmt_range(ref_finals),
            fmt_range([ref[s]["crash_rate_last_half"] for s in ref], pct=True)))
        for label in labels:
            r = runs[label]
            seeds = sorted(r)
            reach = [trials_to_reach(r[s]["curve"], ref[s]["final_best"]) if s in ref else None
                     for s in seeds]
            within = sum(1 for t in reach if t is not None and t <= half)
            calm = sum(1 for s in seeds if s in ref and
                       r[s]["crash_rate_last_half"] <= ref[s]["crash_rate_last_half"] / 2)
            wins = "–"
            if args.baseline and label != args.baseline:
                base = runs[args.baseline]
                common = [s for s in seeds if s in base]
                w = sum(r[s]["final_best"] > base[s]["final_best"] for s in common)
                lo = sum(r[s]["final_best"] < base[s]["final_best"] for s in common)
                wins = "%d–%d" % (w, lo)
            lines.append("| %s | %s | %d | %s | %s | %d/%d | %s | %d/%d | %s |" % (
                suite, label, len(seeds), fmt_range([r[s]["final_best"] for s in seeds]),
                ", ".join(">%d" % args.budget if t is None else str(t) for t in reach),
                within, len(seeds),
                fmt_range([r[s]["crash_rate_last_half"] for s in seeds], pct=True),
                calm, len(seeds), wins))
        plot(f"{args.out}_{suite}.png", suite, runs, labels, ref, args.budget)
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s.md and %s_<suite>.png" % (args.out, args.out))


def plot(path, suite, runs, labels, ref, budget):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(1, budget + 1))
    for label in labels:
        rows = per_iteration([runs[label][s]["curve"] for s in sorted(runs[label])], budget)
        med = [r[0] for r in rows]
        ax.plot(x, med, label=label)
        ax.fill_between(x, [r[1] for r in rows], [r[2] for r in rows], alpha=0.12)
    ref_final = median([ref[s]["final_best"] for s in ref])
    if ref_final is not None:
        ax.axhline(ref_final, color="black", linestyle=":", label="reference's final best, median")
    ax.axvline(budget // 2, color="grey", linewidth=0.8)
    ax.set_xlabel("trial")
    ax.set_ylabel("best so far (median over seeds; min–max shaded)")
    ax.set_title(f"{suite}: settings compared")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
