#!/usr/bin/env python3
"""Summarise Google Benchmark JSON files as a Markdown table and a PNG plot.

Reads one or more files written by `--benchmark_out=FILE --benchmark_out_format=json` (or by
sluice's scenario drivers, which write the same schema). Repetitions of one benchmark are grouped
by run name; the table gives their median, min, max and count, and, with --baseline, the ratio of
each median to the baseline's median.

Examples:
  tools/bench_report.py micro.json --baseline BM_PlainCall --md docs/bench/oqueue_micro.md
  tools/bench_report.py pingpong.json --filter '^pingpong/' --baseline 'pingpong/oq-spin' \\
      --ratio-direction baseline-over-row --png docs/bench/oqueue_pingpong.png
  tools/bench_report.py scaling.json --metric items_per_second --x-param observers \\
      --png docs/bench/oqueue_observers.png

Plots need matplotlib (Debian: python3-matplotlib, use /usr/bin/python3 when another python3 is
first on PATH); without it the Markdown is still written.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import OrderedDict
from pathlib import Path

_TIME_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
_AGGREGATE_SUFFIX = re.compile(r"_(mean|median|stddev|cv|min|max)$")


class Group:
    """All repetitions of one benchmark (one run name)."""

    def __init__(self, name: str):
        self.name = name
        self.values: list[float] = []
        self.median_aggregate: float | None = None  # used only when no iteration rows exist
        self.label: str = ""

    def samples(self) -> list[float]:
        if self.values:
            return self.values
        return [self.median_aggregate] if self.median_aggregate is not None else []


def metric_value(row: dict, metric: str) -> float | None:
    if metric in ("real_time", "cpu_time"):
        if metric not in row:
            return None
        return float(row[metric]) * _TIME_TO_NS.get(row.get("time_unit", "ns"), 1.0)
    value = row.get(metric)
    return None if value is None else float(value)


def load_groups(paths: list[Path], metric: str, name_filter: re.Pattern | None) -> "OrderedDict[str, Group]":
    groups: "OrderedDict[str, Group]" = OrderedDict()
    for path in paths:
        with path.open() as f:
            data = json.load(f)
        for row in data.get("benchmarks", []):
            if row.get("error_occurred"):
                continue
            run_name = row.get("run_name") or _AGGREGATE_SUFFIX.sub("", row.get("name", ""))
            if name_filter and not name_filter.search(run_name):
                continue
            value = metric_value(row, metric)
            if value is None:
                continue
            group = groups.setdefault(run_name, Group(run_name))
            if row.get("label"):
                group.label = row["label"]
            if row.get("run_type", "iteration") == "aggregate":
                if row.get("aggregate_name") == "median":
                    group.median_aggregate = value
            else:
                group.values.append(value)
    return OrderedDict((k, g) for k, g in groups.items() if g.samples())


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e7:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def find_baseline(groups: "OrderedDict[str, Group]", baseline: str) -> Group:
    if baseline in groups:
        return groups[baseline]
    matches = [g for name, g in groups.items() if re.search(baseline, name)]
    if len(matches) != 1:
        names = ", ".join(groups) or "(none)"
        sys.exit(f"bench_report: baseline '{baseline}' matches {len(matches)} benchmarks; "
                 f"give one of: {names}")
    return matches[0]


def markdown_table(groups: "OrderedDict[str, Group]", metric: str, unit: str,
                   baseline: Group | None, ratio_direction: str) -> str:
    header = ["benchmark", f"median {unit}", "min", "max", "spread", "n"]
    if baseline is not None:
        if ratio_direction == "row-over-baseline":
            header.append(f"ratio vs {baseline.name}")
        else:
            header.append(f"{baseline.name} / row")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base_median = statistics.median(baseline.samples()) if baseline is not None else None
    for group in groups.values():
        samples = group.samples()
        median = statistics.median(samples)
        lo, hi = min(samples), max(samples)
        spread = f"±{(hi - lo) / 2 / median * 100:.0f}%" if median else "-"
        cells = [group.name + (f" ({group.label})" if group.label else ""), fmt(median), fmt(lo),
                 fmt(hi), spread, str(len(samples))]
        if base_median is not None:
            if ratio_direction == "row-over-baseline":
                ratio = median / base_median if base_median else float("nan")
            else:
                ratio = base_median / median if median else float("nan")
            cells.append(f"{ratio:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Metric: {metric} ({unit}); median, min and max over the repetitions "
                 f"(n); spread is half the min-max range relative to the median.")
    return "\n".join(lines) + "\n"


def split_x(name: str, x_param: str) -> tuple[str, float] | None:
    """'strong/yield/observers:4' with x_param 'observers' -> ('strong/yield', 4.0)."""
    parts = name.split("/")
    for i, part in enumerate(parts):
        key, sep, value = part.partition(":")
        if sep and key == x_param:
            try:
                x = float(value)
            except ValueError:
                return None
            return "/".join(parts[:i] + parts[i + 1:]), x
    return None


def plot(groups: "OrderedDict[str, Group]", metric: str, unit: str, x_param: str | None,
         title: str, png: Path, log_y: bool, value_label: str | None = None) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench_report: matplotlib is not installed; no plot written "
              "(Debian: apt install python3-matplotlib, run with /usr/bin/python3)", file=sys.stderr)
        return False

    series: "OrderedDict[str, list[tuple[float, Group]]]" = OrderedDict()
    flat: list[Group] = []
    if x_param:
        for group in groups.values():
            split = split_x(group.name, x_param)
            if split is None:
                flat.append(group)
            else:
                series.setdefault(split[0], []).append((split[1], group))

    fig, ax = plt.subplots(figsize=(8, 4.8) if series else (8, 0.45 * len(groups) + 1.2))
    if series:
        for label, points in series.items():
            points.sort(key=lambda p: p[0])
            xs = [p[0] for p in points]
            med = [statistics.median(p[1].samples()) for p in points]
            lo = [m - min(p[1].samples()) for m, p in zip(med, points)]
            hi = [max(p[1].samples()) - m for m, p in zip(med, points)]
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=label)
        for group in flat:  # rows without the x parameter are drawn as reference lines
            ax.axhline(statistics.median(group.samples()), linestyle="--", linewidth=1,
                       label=group.name, color="gray" if len(flat) == 1 else None)
        ax.set_xlabel(x_param)
        ax.set_ylabel(f"{value_label or f'{metric} ({unit})'}, median; bars: min-max")
        if log_y:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
        ax.grid(True, alpha=0.3)
    else:
        names = list(groups)
        med = [statistics.median(g.samples()) for g in groups.values()]
        lo = [m - min(g.samples()) for m, g in zip(med, groups.values())]
        hi = [max(g.samples()) - m for m, g in zip(med, groups.values())]
        ypos = list(range(len(names)))
        ax.barh(ypos, med, xerr=[lo, hi], capsize=3, color="#4c72b0")
        ax.set_yticks(ypos)
        ax.set_yticklabels(names, fontsize="small")
        ax.invert_yaxis()
        ax.set_xlabel(f"{value_label or f'{metric} ({unit})'}, median; bars: min-max")
        if log_y:
            ax.set_xscale("log")
        for y, m in zip(ypos, med):
            ax.text(m, y, " " + fmt(m), va="center", fontsize="x-small")
        ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Summarise Google Benchmark JSON output (with repetitions) as Markdown and a PNG.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("inputs", nargs="+", type=Path, help="Google Benchmark JSON files")
    parser.add_argument("--metric", default="real_time",
                        help="real_time, cpu_time (in ns) or any counter, e.g. items_per_second "
                             "(default: real_time)")
    parser.add_argument("--filter", help="only benchmarks whose run name matches this regex")
    parser.add_argument("--baseline", help="run name (or a regex matching exactly one) to give "
                                           "each row's ratio against")
    parser.add_argument("--ratio-direction", choices=["row-over-baseline", "baseline-over-row"],
                        default="row-over-baseline",
                        help="row-over-baseline (default): row median / baseline median")
    parser.add_argument("--x-param", help="plot lines: take x from a 'PARAM:value' part of the run "
                                          "name (e.g. observers) and draw one line per remaining name")
    parser.add_argument("--title", default="", help="plot title (and Markdown heading)")
    parser.add_argument("--md", type=Path, help="write the Markdown table here (default: stdout)")
    parser.add_argument("--png", type=Path, help="write the plot here")
    parser.add_argument("--log", action="store_true", help="logarithmic value axis")
    parser.add_argument("--value-label", help="axis label for the metric (default: metric and unit)")
    args = parser.parse_args(argv)

    name_filter = re.compile(args.filter) if args.filter else None
    groups = load_groups(args.inputs, args.metric, name_filter)
    if not groups:
        print(f"bench_report: no benchmark in {', '.join(map(str, args.inputs))} has "
              f"'{args.metric}'" + (f" and matches '{args.filter}'" if args.filter else ""),
              file=sys.stderr)
        return 1
    unit = "ns" if args.metric in ("real_time", "cpu_time") else "/s" if args.metric.endswith(
        "_per_second") else ""
    baseline = find_baseline(groups, args.baseline) if args.baseline else None

    text = (f"### {args.title}\n\n" if args.title else "") + markdown_table(
        groups, args.metric, unit, baseline, args.ratio_direction)
    sources = ", ".join(p.name for p in args.inputs)
    text += f"Source: {sources}.\n"
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    else:
        sys.stdout.write(text)
    if args.png:
        plot(groups, args.metric, unit, args.x_param, args.title, args.png, args.log,
             args.value_label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
