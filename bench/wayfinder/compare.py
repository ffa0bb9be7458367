#!/usr/bin/env python3
"""Compare wayfinder's searchers on the synthetic suite: the same job, store and budget for each.

For each suite, for seeds 1..N, every searcher runs one study through `sluice tune run` (the
searchers interleaved, their order rotated per seed, so that a burst of load on the machine hits
all of them), then `sluice tune export --csv` gives every trial. From the trials:

  best-so-far per iteration        median and min-max across seeds
  crash rate                       over the last half of each study (any non-ok outcome)
  trials to random's final best    per seed: the first trial at which the searcher's best so far
                                   reaches what random search (same seed) ended with
  search time per iteration        the CSV's search_s (propose() of that trial); without it, the
                                   gap between trial starts minus the evaluation (search + store)

For a real target (a job file, no known optimum) also: each study's best trial against its
default, metric by metric, and the trials and seconds until the best so far is 95 % of the way
from the seed's default to the best any searcher found on that seed; a job with several
metrics is scored with Equation 4 over all its studies at once (one scale for all). With
--confirm N each real-target study then re-measures its best against its default N times each,
alternately, and the report adds that ratio: a best found by one noisy measurement per trial is
partly luck, and the re-measured ratio says how much.

and writes docs/bench/wayfinder_synthetic_<suite>.png, docs/bench/wayfinder_synthetic.md and
docs/bench/wayfinder_synthetic.json (--name sets the base name: a transfer-only run, say,
--name wayfinder_transfer_gcc). Studies live in one SQLite store per suite under --work; a
rerun resumes unfinished studies and reuses finished ones (--fresh starts over).

  compare.py --searchers random,optuna --budget 30 --seeds 2 --suites small
  compare.py                                       # 4 searchers x 5 seeds x bowl,rugged x 100
  compare.py --jobs targets/sqlite.yaml            # real targets too (no known optimum)
  compare.py --transfer bowl bowl_shift            # DeepTune warm (--warm-start) vs cold
  compare.py --report-only --jobs targets/sqlite.yaml   # the report again, running nothing

Needs python3 with matplotlib (Debian: python3-matplotlib) for the plots; the benchmark itself
(synthetic.py eval) needs only the standard library.
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import synthetic  # noqa: E402

ALL_SEARCHERS = ["deeptune", "random", "bayes", "optuna"]
COLORS = {"deeptune": "C3", "random": "C7", "bayes": "C0", "optuna": "C2", "grid": "C4",
          "warm": "C3", "cold": "C7"}


# ---------------------------------------------------------------------------------------------
# Machine and environment


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version()}


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ---------------------------------------------------------------------------------------------
# Running studies


class Runner:
    def __init__(self, args):
        self.sluice = os.path.abspath(args.sluice)
        self.work = os.path.abspath(args.work)
        self.timeout = args.run_timeout
        self.report_only = args.report_only
        self.confirm = getattr(args, "confirm", 0)
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.work, "csv"), exist_ok=True)
        os.makedirs(os.path.join(self.work, "stores"), exist_ok=True)

    def store(self, target):
        return "sqlite:" + os.path.join(self.work, "stores", target + ".db")

    def study(self, job, target, study, search, seed, budget, extra=(), real=False):
        """Runs (or resumes) one study and exports it; returns what happened and the trials.
        A real target's study re-measures its best against its default --confirm times."""
        log = os.path.join(self.work, "logs", study + ".log")
        if self.report_only:
            return self.export(target, study, search, seed, None, 0.0, log)
        cmd = [self.sluice, "tune", "run", job, "--search", search, "--seed", str(seed),
               "--budget", str(budget), "--study", study, "--store", self.store(target),
               "--work-dir", os.path.join(self.work, "runs")] + list(extra)
        if real and self.confirm:
            cmd += ["--confirm", str(self.confirm)]
        t0 = time.monotonic()
        with open(log, "w") as out:
            out.write("$ " + " ".join(cmd) + "\n")
            out.flush()
            try:
                rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=self.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        return self.export(target, study, search, seed, rc, time.monotonic() - t0, log)

    def export(self, target, study, search, seed, rc, wall, log):
        """The study's trials from the store (rc None: not run now, only exported)."""
        run = {"target": target, "study": study, "search": search, "seed": seed, "rc": rc,
               "wall_s": round(wall, 3), "log": log, "trials": [], "error": None}
        if rc not in (0, None):
            run["error"] = tail(log)
        path = os.path.join(self.work, "csv", study + ".csv")
        exp = subprocess.run([self.sluice, "tune", "export", study, "--csv", "--store",
                              self.store(target), "-o", path], capture_output=True, text=True)
        if exp.returncode == 0:
            run["trials"] = read_trials(path)
            run["confirm"] = read_confirms(path)
        elif not run["error"]:
            run["error"] = (exp.stderr or exp.stdout).strip()[-500:]
        return run


def tail(path, lines=3):
    try:
        with open(path) as f:
            text = [ln.rstrip() for ln in f if ln.strip()]
    except OSError:
        return "?"
    return " / ".join(text[-lines:])[-500:]


def _float(s):
    try:
        return float(s) if s not in (None, "") else None
    except ValueError:
        return None


# The CSV's own columns; the rest are the job's metrics and parameters.
TRIAL_COLUMNS = {"iteration", "role", "outcome", "objective", "build_s", "build_cached", "eval_s",
                 "started_ns", "search_s", "message"}


def read_trials(path):
    """The search trials of an exported study (the default included, confirm re-runs left out)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("role") == "confirm" or row.get("outcome") == "pending":
                continue
            out.append({
                "iteration": int(row["iteration"]),
                "role": row.get("role"),
                "outcome": row.get("outcome"),
                "objective": _float(row.get("objective")),
                "eval_s": _float(row.get("eval_s")) or 0.0,
                "build_s": _float(row.get("build_s")) or 0.0,
                "started_ns": int(row["started_ns"]) if row.get("started_ns") else None,
                "search_s": _float(row.get("search_s")) if "search_s" in row else None,
                "metrics": {k: _float(v) for k, v in row.items() if k not in TRIAL_COLUMNS},
            })
    out.sort(key=lambda t: t["iteration"])
    return out


def read_confirms(path):
    """The study's confirm re-runs (`sluice tune run --confirm`): the default and the best,
    alternately, in iteration order."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("role") == "confirm" and row.get("outcome") != "pending":
                out.append({"iteration": int(row["iteration"]), "outcome": row.get("outcome"),
                            "metrics": {k: _float(v) for k, v in row.items()
                                        if k not in TRIAL_COLUMNS}})
    out.sort(key=lambda t: t["iteration"])
    return out


def confirmed_ratios(run, metrics):
    """Per metric, the re-measured best ÷ default (inverted for a minimized metric) of each
    default/best pair of the confirm re-runs; {} when the study has none."""
    runs = run.get("confirm") or []
    out = {}
    for m in metrics:
        ratios = []
        for d, b in zip(runs[0::2], runs[1::2]):
            dv, bv = d["metrics"].get(m["name"]), b["metrics"].get(m["name"])
            if d["outcome"] == "ok" and b["outcome"] == "ok" and dv and bv:
                ratios.append(bv / dv if m["direction"] == "maximize" else dv / bv)
        if ratios:
            out[m["name"]] = ratios
    return out


# ---------------------------------------------------------------------------------------------
# Per-study figures


def best_so_far(trials):
    best, out = None, []
    for t in trials:
        if t["outcome"] == "ok" and t["objective"] is not None:
            best = t["objective"] if best is None else max(best, t["objective"])
        out.append(best)
    return out


def failed(t):
    return t["outcome"] != "ok"


def search_times(trials):
    """(seconds per trial, source): search_s where the CSV has it, else trial-start gaps."""
    if trials and any(t["search_s"] is not None for t in trials):
        return [t["search_s"] for t in trials], "search_s"
    out = [None] * len(trials)
    for i in range(1, len(trials)):
        a, b = trials[i - 1], trials[i]
        if a["started_ns"] and b["started_ns"]:
            gap = (b["started_ns"] - a["started_ns"]) / 1e9 - a["eval_s"] - a["build_s"]
            out[i] = max(0.0, gap)
    return out, "start gaps"


def trials_to_reach(curve, target):
    """Trials (the default included) until the best so far reaches target; None if never."""
    if target is None:
        return None
    for i, b in enumerate(curve):
        if b is not None and b >= target - 1e-9:
            return i + 1
    return None


def study_wall(trials):
    starts = [t["started_ns"] for t in trials if t["started_ns"]]
    if not starts:
        return None
    last = max(trials, key=lambda t: t["started_ns"] or 0)
    return (last["started_ns"] - min(starts)) / 1e9 + last["eval_s"] + last["build_s"]


def analyse(run, budget):
    trials = run["trials"]
    n = len(trials)
    curve = best_so_far(trials)
    st, source = search_times(trials)
    half = trials[n // 2:]
    a = {
        "trials": n,
        "curve": curve,
        "failed": [failed(t) for t in trials],
        "search_s": st,
        "search_source": source,
        "final_best": curve[-1] if curve else None,
        "default": trials[0]["objective"] if trials and trials[0]["role"] == "default" else None,
        "crash_rate": sum(failed(t) for t in trials) / n if n else None,
        "crash_rate_last_half": sum(failed(t) for t in half) / len(half) if half else None,
        "wall_s": study_wall(trials),
        "eval_s_mean": statistics.mean(t["eval_s"] for t in trials) if trials else None,
    }
    return a


# ---------------------------------------------------------------------------------------------
# Across seeds


def median(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def per_iteration(curves, budget, fill_last=True):
    """Rows per iteration: (median, min, max) across seeds; a short study keeps its last value."""
    rows = []
    for i in range(budget):
        vals = []
        for c in curves:
            if i < len(c):
                v = c[i]
            elif fill_last and c:
                v = c[-1]
            else:
                v = None
            if v is not None:
                vals.append(v)
        rows.append((statistics.median(vals), min(vals), max(vals)) if vals else (None,) * 3)
    return rows


def rolling(flags, window):
    out = []
    for i in range(len(flags)):
        w = flags[max(0, i - window + 1): i + 1]
        out.append(sum(w) / len(w))
    return out


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 100:
            return "%.0f" % v
        return ("%%.%df" % digits) % v
    return str(v)


def fmt_range(xs, digits=1, pct=False):
    lo, hi = spread(xs)
    m = median(xs)
    if m is None:
        return "–"
    f = (lambda v: "%.0f %%" % (100 * v)) if pct else (lambda v: fmt(v, digits))
    return "%s (%s–%s)" % (f(m), f(lo), f(hi))


def summarize(target, runs, budget, optimum, searchers):
    """Per searcher: the figures of the report, and the goals against random (same seed)."""
    by = {s: {} for s in searchers}
    for r in runs:
        if r["target"] == target and r["search"] in by and r["trials"]:
            by[r["search"]][r["seed"]] = analyse(r, budget)
    random_by_seed = by.get("random", {})
    out = {}
    for s in searchers:
        seeds = sorted(by[s])
        A = [by[s][k] for k in seeds]
        reach, reach_ok, crash_ok = {}, [], []
        for k in seeds:
            rnd = random_by_seed.get(k)
            if rnd is None or rnd["final_best"] is None:
                continue
            t = trials_to_reach(by[s][k]["curve"], rnd["final_best"])
            reach[k] = t
            reach_ok.append(t is not None and t <= budget / 2)
            cr, crr = by[s][k]["crash_rate_last_half"], rnd["crash_rate_last_half"]
            if cr is not None and crr is not None:
                crash_ok.append(cr <= 0.5 * crr if crr > 0 else cr == 0)
        gap = []
        for a in A:
            if optimum is not None and a["final_best"] is not None and a["default"] is not None \
                    and optimum > a["default"]:
                gap.append((a["final_best"] - a["default"]) / (optimum - a["default"]))
        last = [median(a["search_s"][-10:]) for a in A]
        first = [median([x for x in a["search_s"][1:11]]) for a in A]
        out[s] = {
            "seeds": seeds,
            "final_best": [a["final_best"] for a in A],
            "gap_closed": gap,
            "reach_random_final": reach,
            "reach_within_half_budget": reach_ok,
            "crash_rate_last_half": [a["crash_rate_last_half"] for a in A],
            "crash_last_half_at_most_half_random": crash_ok,
            "search_s_first10": first,
            "search_s_last10": last,
            "search_source": A[0]["search_source"] if A else None,
            "wall_s": [a["wall_s"] for a in A],
            "curves": [a["curve"] for a in A],
            "failed": [a["failed"] for a in A],
            "search_series": [a["search_s"] for a in A],
        }
    return out


def pool_scores(target, runs):
    """Equation 4 over every study of a target at once.

    sluice scores a multi-metric trial against the min-max range of its own study, so the
    objectives of two studies are on different scales. Comparing searchers needs one scale:
    the range of every ok trial of every study of the target. A single metric is left alone.
    """
    metrics = target.get("metrics") or []
    if len(metrics) < 2:
        return False
    trials = [t for r in runs if r["target"] == target["name"] for t in r["trials"]]
    ok = [t for t in trials if t["outcome"] == "ok"]
    rng = {}
    for m in metrics:
        vals = [t["metrics"].get(m["name"]) for t in ok]
        vals = [v for v in vals if v is not None]
        rng[m["name"]] = (min(vals), max(vals)) if vals else (0.0, 0.0)
    for t in trials:
        t["study_objective"] = t["objective"]
        if t["outcome"] != "ok":
            continue
        score = 0.0
        for m in metrics:
            v = t["metrics"].get(m["name"])
            if v is None:
                score = None
                break
            lo, hi = rng[m["name"]]
            norm = (v - lo) / (hi - lo) if hi > lo else 0.0
            score += m["weight"] * (norm if m["direction"] == "maximize" else -norm)
        t["objective"] = score
    return True


def real_target_figures(target, runs, budget, searchers):
    """Per searcher: the best trial's metrics against the default's, and trials and seconds to
    95 % of the way from the default to the best any searcher found on the same seed."""
    metrics = target.get("metrics") or []
    mine = [r for r in runs if r["target"] == target["name"] and r["trials"]]
    goal = {}
    for k in sorted({r["seed"] for r in mine}):
        same = [r for r in mine if r["seed"] == k]
        defaults = [r["trials"][0]["objective"] for r in same
                    if r["trials"][0]["role"] == "default" and r["trials"][0]["objective"] is not None]
        bests = [b for b in (best_so_far(r["trials"])[-1] for r in same) if b is not None]
        if defaults and bests:
            d, b = median(defaults), max(bests)
            goal[k] = d + 0.95 * (b - d)
    out = {}
    for s in searchers:
        rows = []
        for r in sorted((r for r in mine if r["search"] == s), key=lambda r: r["seed"]):
            tr = r["trials"]
            ok = [t for t in tr if t["outcome"] == "ok" and t["objective"] is not None]
            if not ok or tr[0]["role"] != "default":
                continue
            best = max(ok, key=lambda t: t["objective"])
            ratio = {}
            for m in metrics:
                b, d = best["metrics"].get(m["name"]), tr[0]["metrics"].get(m["name"])
                if b and d:
                    ratio[m["name"]] = b / d if m["direction"] == "maximize" else d / b
            t95 = trials_to_reach(best_so_far(tr), goal.get(r["seed"]))
            secs = None
            if t95 is not None and tr[0]["started_ns"] and tr[t95 - 1]["started_ns"]:
                end = tr[t95 - 1]
                secs = (end["started_ns"] - tr[0]["started_ns"]) / 1e9 + end["eval_s"] + end["build_s"]
            confirmed = {n: median(v) for n, v in confirmed_ratios(r, metrics).items()}
            rows.append({"seed": r["seed"], "ratio": ratio, "trials_to_95": t95,
                         "seconds_to_95": secs, "confirmed": confirmed})
        out[s] = rows
    return out


def real_target_table(figures, metrics, budget):
    names = [m["name"] for m in metrics]
    confirmed = any(r.get("confirmed") for rows in figures.values() for r in rows)
    head = (["searcher"] + ["best ÷ default, %s: median (min–max)" % n for n in names] +
            (["re-measured best ÷ default, %s: median of seeds (min–max)" % n for n in names]
             if confirmed else []) +
            ["trials to 95 % of the seed's best, per seed", "median",
             "seconds to 95 %, median (min–max)"])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s, rows in figures.items():
        if not rows:
            continue
        cells = [s]
        for n in names:
            cells.append(fmt_range([r["ratio"][n] for r in rows if n in r["ratio"]], 2))
        if confirmed:
            for n in names:
                cells.append(fmt_range([r["confirmed"][n] for r in rows
                                        if n in r.get("confirmed", {})], 2))
        t = [r["trials_to_95"] for r in rows]
        cells.append(", ".join(str(v) if v is not None else ">%d" % budget for v in t))
        # A study that never got there counts as past the budget, so the median stays honest.
        med = median([v if v is not None else budget + 1 for v in t])
        cells.append(fmt(med, 0) if med <= budget else ">%d" % budget)
        secs = [r["seconds_to_95"] for r in rows if r["seconds_to_95"] is not None]
        cells.append(fmt_range(secs, 0) + ("" if len(secs) == len(rows) else
                                           " (%d of %d reached)" % (len(secs), len(rows))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Output


def plot_target(path, target, summary, budget, optimum, seeds, window=10):
    try:
        import matplotlib
    except ImportError:
        print("compare.py: matplotlib missing (Debian: python3-matplotlib); no plot for %s"
              % target, file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(16, 4.6))
    xs = list(range(budget))
    for s, d in summary.items():
        if not d["curves"]:
            continue
        c = COLORS.get(s, None)
        rows = per_iteration(d["curves"], budget)
        med = [r[0] for r in rows]
        ax[0].plot(xs, med, color=c, label="%s (%d seeds)" % (s, len(d["curves"])))
        ax[0].fill_between(xs, [r[1] if r[1] is not None else math.nan for r in rows],
                           [r[2] if r[2] is not None else math.nan for r in rows],
                           color=c, alpha=0.15, linewidth=0)
        crash = per_iteration([rolling(f, window) for f in d["failed"]], budget, fill_last=False)
        ax[1].plot(xs, [r[0] for r in crash], color=c, label=s)
        # A log axis needs a floor: random search proposes in microseconds.
        st = per_iteration([[max(x, 1e-5) if x is not None else math.nan for x in ser]
                            for ser in d["search_series"]], budget, fill_last=False)
        ax[2].plot(xs[1:], [r[0] for r in st][1:], color=c, label=s)
    if optimum is not None:
        ax[0].axhline(optimum, color="k", linestyle="--", linewidth=0.8, label="known optimum")
    ax[0].set_title("best so far (median, band: min–max over seeds)")
    ax[0].set_xlabel("iteration (0 = default)")
    ax[0].set_ylabel("objective (higher is better)")
    ax[0].legend(fontsize=8, loc="lower right")
    ax[1].set_title("crash rate, trailing %d trials (median over seeds)" % window)
    ax[1].set_xlabel("iteration")
    ax[1].set_ylim(-0.02, 1.02)
    src = next((d["search_source"] for d in summary.values() if d["search_source"]), "search_s")
    ax[2].set_title("search time per iteration (%s, median; floor 10 µs)" % src)
    ax[2].set_xlabel("iteration")
    ax[2].set_ylabel("seconds")
    ax[2].set_yscale("log")
    ax[2].legend(fontsize=8)
    kind = "synthetic suite" if optimum is not None else "job"
    fig.suptitle("wayfinder %s '%s': budget %d, seeds %s" % (kind, target, budget, seeds))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown_table(summary, budget):
    head = ["searcher", "studies", "final best: median (min–max)", "gap closed",
            "trials to random's final best, per seed", "≤ %d (½ budget)" % (budget // 2),
            "crash rate, last half", "≤ ½ random's", "search s/iter: trials 1–10 → last 10",
            "wall s/study"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for s, d in summary.items():
        if not d["seeds"]:
            lines.append("| %s | 0 | – | – | – | – | – | – | – | – |" % s)
            continue
        reach = ", ".join("%s" % (v if v is not None else ">%d" % budget)
                          for _, v in sorted(d["reach_random_final"].items()))
        ok = d["reach_within_half_budget"]
        cok = d["crash_last_half_at_most_half_random"]
        cells = [
            s, str(len(d["seeds"])), fmt_range(d["final_best"], 2),
            fmt_range(d["gap_closed"], pct=True) if d["gap_closed"] else "–",
            reach or "–",
            "%d/%d" % (sum(ok), len(ok)) if s != "random" and ok else "–",
            fmt_range(d["crash_rate_last_half"], pct=True),
            "%d/%d" % (sum(cok), len(cok)) if s != "random" and cok else "–",
            "%s → %s" % (fmt(median(d["search_s_first10"]), 4), fmt(median(d["search_s_last10"]), 4)),
            fmt(median(d["wall_s"])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(args, runs, targets, summaries, transfer, meta):
    os.makedirs(args.out_dir, exist_ok=True)
    kinds = sorted({"the synthetic suite" if t["optimum"] is not None else "real targets"
                    for t in targets})
    title = ("transfer learning, %s → %s" % (transfer["source"], transfer["target"])
             if transfer and not targets else
             "searchers on %s" % " and ".join(kinds or ["the synthetic suite"]))
    md = ["# wayfinder: " + title, ""]
    md.append("Generated by `bench/wayfinder/compare.py %s` on %s." % (
        " ".join(meta["argv"]), meta["date"]))
    m = meta["machine"]
    md.append("Machine: %s, %s CPUs, kernel %s; load average %s before, %s after; sluice %s "
              "(`%s`). Wall time %.0f s." % (m["cpu"], m["cpus"], m["kernel"], meta["load_before"],
                                          meta["load_after"], meta["revision"], meta["sluice"],
                                          meta["wall_s"]))
    if args.report_only:
        md.append("")
        md.append("A report (`--report-only`) of studies run before: the load average and wall "
                  "time above are the report's; each study's own wall time is in the table.")
    md.append("")
    md.append("Budget %d trials per study (the default configuration is trial 0), seeds %s, "
              "searchers run interleaved with the order rotated per seed. Objectives are higher-is-better "
              "(sluice's objective: a minimized metric negated). *Gap closed*: "
              "(best − default) / (optimum − default). *Trials to random's final best*: the first "
              "trial at which the searcher's best so far reaches what random search ended with "
              "on the same seed (>N: never). *Crash rate*: any outcome but ok, over the last "
              "half of each study. Goals: DeepTune reaches random's final best within half the "
              "budget, and its last-half crash rate is at most half of random's." % (
                  args.budget, meta["seeds"]))
    for t in targets:
        name = t["name"]
        md += ["", "## %s" % name, ""]
        if t.get("about"):
            md += [t["about"], ""]
        md.append(markdown_table(summaries[name], args.budget))
        if t.get("figures"):
            if t.get("pooled"):
                md += ["", "Several metrics: the objective above is Equation 4 recomputed over "
                       "every study of this target at once (sluice scores a trial against its "
                       "own study's min-max range, so two studies' scores are on different "
                       "scales)."]
            md += ["", "Best trial against the default (trial 0) of the same study, per metric "
                   "(× better: higher for a maximized metric, default ÷ best for a minimized "
                   "one); time to 95 % of the way from the seed's default (median of its "
                   "studies' trial 0) to the best any searcher found on that seed:", ""]
            md.append(real_target_table(t["figures"], t.get("metrics") or [], args.budget))
        errors = [r for r in runs if r["target"] == name and r["error"]]
        if errors:
            md += ["", "Studies that failed:", ""]
            seen = set()
            for r in errors:
                key = (r["search"], r["error"])
                if key in seen:
                    continue
                seen.add(key)
                md.append("- `%s` (seed %s, exit %s): %s" % (r["search"], r["seed"], r["rc"],
                                                             r["error"].replace("|", "/")))
        if t.get("plot"):
            md += ["", "![%s](%s)" % (name, os.path.basename(t["plot"]))]
    if transfer:
        md += ["", "## Transfer learning: %s → %s" % (transfer["source"], transfer["target"]), ""]
        md.append("DeepTune trained on `%s` (the model its study leaves in its work directory), "
                  "then `%s` from that model (`--warm-start`) against a cold start, same seeds "
                  "and budget. *Target*: 95 %% of the way from the default to the best either run "
                  "found on that seed." % (transfer["source"], transfer["target"]))
        confirmed = any(row.get("warm_confirmed") or row.get("cold_confirmed")
                        for row in transfer["rows"])
        extra_head = (" warm: re-measured best ÷ default | cold: re-measured best ÷ default |"
                      if confirmed else "")
        md += ["", "| seed | warm: trials to target | cold: trials to target | warm: seconds to "
               "target | cold: seconds to target | warm best | cold best |" + extra_head,
               "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if confirmed else "")]
        never = ">%d" % args.budget
        for row in transfer["rows"]:
            md.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                row["seed"], fmt(row["warm_trials"]) if row["warm_trials"] else never,
                fmt(row["cold_trials"]) if row["cold_trials"] else never,
                fmt(row["warm_s"]), fmt(row["cold_s"]), fmt(row["warm_best"], 2),
                fmt(row["cold_best"], 2)) +
                (" %s | %s |" % (fmt(row.get("warm_confirmed"), 3),
                                 fmt(row.get("cold_confirmed"), 3)) if confirmed else ""))
        for e in transfer.get("errors", []):
            md.append("- %s" % e)
        if transfer.get("plot"):
            md += ["", "![transfer](%s)" % os.path.basename(transfer["plot"])]
    md.append("")
    path_md = os.path.join(args.out_dir, args.name + ".md")
    with open(path_md, "w") as f:
        f.write("\n".join(md))
    # Each trial keeps its job's metrics, not the parameter columns the CSV has as well.
    names = {t["name"]: {m["name"] for m in t.get("metrics") or []} for t in targets}
    for r in runs:
        keep = names.get(r["target"], set())
        for tr in r["trials"]:
            tr["metrics"] = {k: v for k, v in tr.get("metrics", {}).items() if k in keep}
    raw = {"meta": meta, "targets": targets, "summary": summaries, "transfer": transfer,
           "runs": runs}
    path_json = os.path.join(args.out_dir, args.name + ".json")
    with open(path_json, "w") as f:
        json.dump(raw, f, indent=1, default=str)
    return path_md, path_json


# ---------------------------------------------------------------------------------------------
# Transfer learning


def transfer_study(args, runner, src, dst):
    """DeepTune on src saving its model, then dst warm from it vs cold, per seed."""
    search = args.transfer_search
    rows, errors, runs = [], [], []
    for k in range(1, args.seeds + 1):
        # The source study and the cold start are named as in the comparison, so a comparison
        # run in the same --work before is reused: its model (a finished study run again keeps
        # the model it trained) and its cold studies. Only the warm starts are new then.
        src_study = "%s-%s-s%d-n%d" % (src["name"], search, k, args.budget)
        model = os.path.join(runner.work, "runs", src_study, search + ".model")
        r = runner.study(src["job"], src["name"], src_study, search, k, args.budget,
                         real=src["optimum"] is None)
        runs.append(r)
        print("transfer seed %d: %s on %s, %d trials, %.1f s%s" % (
            k, search, src["name"], len(r["trials"]), r["wall_s"],
            ("  ERROR " + r["error"][:160]) if r["error"] else ""), flush=True)
        if r["error"] or not os.path.exists(model):
            errors.append("seed %d: training on %s failed: %s" % (k, src["name"], r["error"]))
            continue
        pair = {}
        order = ["warm", "cold"] if k % 2 else ["cold", "warm"]
        for mode in order:
            extra = ["--warm-start", model] if mode == "warm" else []
            name = "%s-%s-s%d-n%d" % (dst["name"], search, k, args.budget)
            rr = runner.study(dst["job"], dst["name"], name + ("-warm" if extra else ""), search,
                              k, args.budget, extra, real=dst["optimum"] is None)
            rr["mode"] = mode
            runs.append(rr)
            print("transfer seed %d: %s %s on %s, %d trials, %.1f s, best %s" % (
                k, mode, search, dst["name"], len(rr["trials"]), rr["wall_s"],
                fmt(best_so_far(rr["trials"])[-1] if rr["trials"] else None, 2)), flush=True)
            if rr["error"]:
                errors.append("seed %d %s: %s" % (k, mode, rr["error"]))
            pair[mode] = rr
        if not all(pair.get(m) and pair[m]["trials"] for m in ("warm", "cold")):
            continue
        curves = {m: best_so_far(pair[m]["trials"]) for m in pair}
        default = pair["cold"]["trials"][0]["objective"]
        best = max(c[-1] for c in curves.values() if c and c[-1] is not None)
        target = best if default is None else default + 0.95 * (best - default)
        row = {"seed": k, "target": target}
        for m in ("warm", "cold"):
            t = trials_to_reach(curves[m], target)
            row[m + "_trials"] = t
            row[m + "_best"] = curves[m][-1]
            tr = pair[m]["trials"]
            if t is not None and tr[0]["started_ns"]:
                end = tr[t - 1]
                row[m + "_s"] = round((end["started_ns"] - tr[0]["started_ns"]) / 1e9 +
                                      end["eval_s"] + end["build_s"], 2)
            else:
                row[m + "_s"] = None
            row[m + "_curve"] = curves[m]
            # The first metric's re-measured best ÷ default (--confirm), median of the pairs.
            conf = confirmed_ratios(pair[m], (dst.get("metrics") or [])[:1])
            row[m + "_confirmed"] = median(next(iter(conf.values()))) if conf else None
        rows.append(row)
    return {"source": src["name"], "target": dst["name"], "search": search, "rows": rows,
            "errors": errors}, runs


def plot_transfer(path, transfer, budget):
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in ("warm", "cold"):
        curves = [r[m + "_curve"] for r in transfer["rows"]]
        if not curves:
            continue
        rows = per_iteration(curves, budget)
        xs = list(range(budget))
        ax.plot(xs, [r[0] for r in rows], color=COLORS[m], label=m)
        ax.fill_between(xs, [r[1] if r[1] is not None else math.nan for r in rows],
                        [r[2] if r[2] is not None else math.nan for r in rows],
                        color=COLORS[m], alpha=0.15, linewidth=0)
    ax.set_title("%s on %s: warm start from %s vs cold" % (transfer["search"], transfer["target"],
                                                            transfer["source"]))
    ax.set_xlabel("iteration")
    ax.set_ylabel("best so far (median, band min–max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------


def target_of(spec, runner, args):
    """A suite name or a job file -> {name, job, optimum, about}."""
    if spec in synthetic.SUITES:
        s = synthetic.suite(spec)
        job = os.path.join(runner.work, "jobs", spec + ".yaml")
        os.makedirs(os.path.dirname(job), exist_ok=True)
        with open(job, "w") as f:
            f.write(synthetic.job_text(s, python=args.python, iterations=args.budget))
        default = s.objective(s.getter({p["name"]: p["default"] for p in s.params}))
        about = ("%d parameters; known optimum %g (default %.2f); what matters: %s; crash "
                 "regions: %s." % (len(s.params), s.optimum, default,
                                   ", ".join(s.description["matters"]),
                                   "; ".join(s.description["crash"])))
        return {"name": spec, "job": job, "optimum": s.optimum, "about": about}
    if not os.path.exists(spec):
        sys.exit("compare.py: %s is neither a suite (%s) nor a job file" % (
            spec, ", ".join(synthetic.SUITES)))
    name = os.path.splitext(os.path.basename(spec))[0]
    return {"name": name, "job": os.path.abspath(spec), "optimum": None,
            "about": "Job file `%s` (no known optimum)." % spec, "metrics": job_metrics(spec)}


def job_metrics(path):
    """The job's metrics: [{name, direction, weight}] (empty without python3-yaml)."""
    try:
        import yaml
    except ImportError:
        return []
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    ms = doc.get("metrics") or ([doc["metric"]] if doc.get("metric") else [])
    return [{"name": m["name"], "direction": m.get("direction", "maximize"),
             "weight": float(m.get("weight", 1.0))} for m in ms]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--sluice", default=os.path.join(ROOT, "build/release/sluice"),
                    help="the sluice binary (default: build/release/sluice)")
    ap.add_argument("--budget", type=int, default=100, help="trials per study (default 100)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 1..N (default 5)")
    ap.add_argument("--searchers", default=",".join(ALL_SEARCHERS),
                    help="comma-separated, in the first seed's order (default: %(default)s)")
    ap.add_argument("--suites", default="bowl,rugged",
                    help="comma-separated synthetic suites (%s; default: %%(default)s; '' for "
                         "none)" % ", ".join(synthetic.SUITES))
    ap.add_argument("--jobs", nargs="*", default=[], help="real-target job files as well")
    ap.add_argument("--transfer", nargs=2, metavar=("SRC", "DST"),
                    help="transfer learning: train on SRC (suite or job), warm-start DST; the "
                         "source and cold studies of a comparison in the same --work are reused")
    ap.add_argument("--transfer-search", default="deeptune",
                    help="the model-based searcher for --transfer (default deeptune)")
    ap.add_argument("--name", default="wayfinder_synthetic",
                    help="base name of the report's files in --out-dir (default "
                         "wayfinder_synthetic: NAME.md, NAME.json, NAME_<target>.png, "
                         "NAME_transfer.png)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "docs/bench"),
                    help="plots, Markdown and JSON (default: docs/bench)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build/wayfinder-synthetic"),
                    help="job files, stores, logs, CSVs (default: build/wayfinder-synthetic)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for the synthetic benchmark (default: this one)")
    ap.add_argument("--run-timeout", type=float, default=None,
                    help="seconds one study may take (default: no limit)")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: report the studies already in --work's stores")
    ap.add_argument("--confirm", type=int, default=0, metavar="N",
                    help="real targets: each study re-measures its best against its default N "
                         "times each, alternately (`sluice tune run --confirm`); the report adds "
                         "the re-measured ratio, which one noisy run per trial cannot give")
    ap.add_argument("--fresh", action="store_true",
                    help="delete --work's stores first (else finished studies are reused)")
    args = ap.parse_args()

    if not os.access(args.sluice, os.X_OK):
        sys.exit("compare.py: no sluice binary at %s (build it, or pass --sluice)" % args.sluice)
    if args.fresh and os.path.isdir(args.work):
        for sub in ("stores", "csv", "logs", "runs", "models"):
            shutil.rmtree(os.path.join(args.work, sub), ignore_errors=True)
    searchers = [s for s in args.searchers.split(",") if s]
    runner = Runner(args)
    targets = [target_of(s, runner, args) for s in args.suites.split(",") if s]
    targets += [target_of(j, runner, args) for j in args.jobs]

    meta = {"argv": sys.argv[1:], "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": machine(), "load_before": loadavg(), "revision": git_revision(),
            "sluice": os.path.relpath(args.sluice, ROOT), "seeds": "1–%d" % args.seeds,
            "budget": args.budget, "searchers": searchers}
    t_start = time.monotonic()
    runs = []
    total = len(targets) * args.seeds * len(searchers)
    done = 0
    for t in targets:
        for k in range(1, args.seeds + 1):
            r = (k - 1) % len(searchers)
            order = searchers[r:] + searchers[:r]
            for s in order:
                study = "%s-%s-s%d-n%d" % (t["name"], s, k, args.budget)
                run = runner.study(t["job"], t["name"], study, s, k, args.budget,
                                   real=t["optimum"] is None)
                run["order"] = order.index(s)
                runs.append(run)
                done += 1
                tr = run["trials"]
                best = best_so_far(tr)[-1] if tr else None
                fails = sum(failed(x) for x in tr)
                print("[%d/%d] %s seed %d %-8s %3d trials %7.1f s  best %s  failures %d  "
                      "load %s%s" % (done, total, t["name"], k, s, len(tr), run["wall_s"],
                                     fmt(best, 2), fails, loadavg(),
                                     ("  ERROR " + run["error"][:160]) if run["error"] else ""),
                      flush=True)

    summaries = {}
    for t in targets:
        if t["optimum"] is None:
            t["pooled"] = pool_scores(t, runs)
            t["figures"] = real_target_figures(t, runs, args.budget, searchers)
        summaries[t["name"]] = summarize(t["name"], runs, args.budget, t["optimum"], searchers)
        png = os.path.join(args.out_dir, "%s_%s.png" % (args.name, t["name"]))
        os.makedirs(args.out_dir, exist_ok=True)
        if plot_target(png, t["name"], summaries[t["name"]], args.budget, t["optimum"],
                       meta["seeds"]):
            t["plot"] = png

    transfer = None
    if args.transfer:
        src, dst = (target_of(x, runner, args) for x in args.transfer)
        transfer, truns = transfer_study(args, runner, src, dst)
        runs += truns
        os.makedirs(args.out_dir, exist_ok=True)
        png = os.path.join(args.out_dir, args.name + "_transfer.png")
        if transfer["rows"] and plot_transfer(png, transfer, args.budget):
            transfer["plot"] = png

    meta["load_after"] = loadavg()
    meta["wall_s"] = time.monotonic() - t_start
    md, js = write_report(args, runs, targets, summaries, transfer, meta)
    plots = [t["plot"] for t in targets if t.get("plot")]
    if transfer and transfer.get("plot"):
        plots.append(transfer["plot"])
    print("wrote %s, %s%s" % (md, js, "".join(", " + p for p in plots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
