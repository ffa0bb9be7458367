#!/usr/bin/env python3
"""Synthetic wayfinder targets: objectives with a known optimum over large mixed spaces.

Each suite is a space of hundreds of parameters (int and float, some on a log scale, enums of
2-8 values, bools) of which only a few matter, with crash regions. A suite is fixed by its
definition below and a seed, so every run of every searcher sees the same problem.

  synthetic.py list                      the suites, their size and known optimum
  synthetic.py job SUITE -o FILE.yaml    a sluice job file whose benchmark is `eval SUITE`
  synthetic.py eval SUITE                reads WF_PARAM_<name> (set by sluice's pipeline),
                                         prints "objective: X", exits 3 in a crash region
  synthetic.py optimum SUITE [--json]    the known optimum and a configuration reaching it

The evaluation is pure Python (no numpy) so that a trial costs one interpreter start, ~30 ms.
The objective is higher-is-better; sluice's job maximizes it.

Suites:
  bowl        200 parameters (150 numeric, 50 enums). A shifted quadratic bowl in 3 numeric
              parameters (one int on a log scale, one float, one float on a log scale) plus
              bonuses for 2 enums. Crashes when the bowl's first parameter and an otherwise
              inert one are jointly high (the cliff lies next to the optimum), and for one value
              of an inert enum. Optimum 116.
  bowl_shift  bowl's space, crash regions and important parameters with the bowl's centre moved
              by 0.08 in unit space and the enum bonuses swapped to other values: the target of
              a transfer-learning study trained on bowl. Optimum 116.
  rugged      300 parameters (180 numeric, 20 bools, 100 enums). Rastrigin in 4 float
              dimensions (shifted, many local optima), an interaction (an int's window pays only
              with the right enum value) and a coupled pair (a ridge along u_p = u_q). Crash
              band 0.4 < u_c < 0.6 in one inert float, and an inert bool true with another inert
              int high. Optimum 320.
  small       24 parameters (16 numeric, 8 enums): a bowl in 2 numeric parameters and one enum
              bonus, one joint crash region. Optimum 110. For smoke tests.

"Unit space" is sluice's numeric encoding: (v - min) / (max - min), or in log space for
log-scale parameters.
"""

import argparse
import json
import math
import os
import random
import shlex
import sys

# ---------------------------------------------------------------------------------------------
# Spaces


def _from_unit(p, u):
    if p["log"]:
        return math.exp(math.log(p["min"]) + u * (math.log(p["max"]) - math.log(p["min"])))
    return p["min"] + u * (p["max"] - p["min"])


def to_unit(p, v):
    if p["max"] <= p["min"]:
        return 0.0
    if p["log"]:
        return (math.log(v) - math.log(p["min"])) / (math.log(p["max"]) - math.log(p["min"]))
    return (v - p["min"]) / (p["max"] - p["min"])


def value_at(p, u):
    """The parameter's canonical text at unit position u (ints rounded, floats %.6g)."""
    v = _from_unit(p, min(1.0, max(0.0, u)))
    if p["type"] == "int":
        return str(int(min(p["max"], max(p["min"], math.floor(v + 0.5)))))
    return "%.6g" % v


# Numeric range templates: (type, min, max, log).
_RANGES = [
    ("int", 1, 65536, True),
    ("int", 0, 100, False),
    ("int", 16, 16384, True),
    ("int", -50, 50, False),
    ("float", 0.0, 1.0, False),
    ("float", 0.0001, 10.0, True),
    ("float", -5.0, 5.0, False),
    ("float", 0.5, 500.0, True),
]


def _space(rng, n_numeric, n_bool, n_enum):
    """Parameters p000.. in a shuffled mix of kinds; defaults at unit 0.25 / the first value."""
    kinds = ["num"] * n_numeric + ["bool"] * n_bool + ["enum"] * n_enum
    # Fisher-Yates on rng.random() alone: stable across Python versions.
    for i in range(len(kinds) - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        kinds[i], kinds[j] = kinds[j], kinds[i]
    params = []
    for i, kind in enumerate(kinds):
        name = "p%03d" % i
        if kind == "num":
            t, lo, hi, log = _RANGES[int(rng.random() * len(_RANGES))]
            p = {"name": name, "type": t, "min": lo, "max": hi, "log": log}
            p["default"] = value_at(p, 0.25)
        elif kind == "bool":
            p = {"name": name, "type": "bool", "default": "false"}
        else:
            n = 2 + int(rng.random() * 7)  # 2..8 values
            p = {"name": name, "type": "enum", "values": ["v%d" % k for k in range(n)]}
            p["default"] = "v0"
        params.append(p)
    return params


def _pick(rng, params, pred, taken):
    """A parameter index satisfying pred, not taken yet (deterministic in rng)."""
    candidates = [i for i, p in enumerate(params) if pred(p) and i not in taken]
    i = candidates[int(rng.random() * len(candidates))]
    taken.add(i)
    return i


def _is_num(p):
    return p["type"] in ("int", "float")


def _snap(p, c):
    """The unit position of the value closest to c that the parameter can actually take."""
    return to_unit(p, float(value_at(p, c)))


# ---------------------------------------------------------------------------------------------
# Suites


class Suite:
    """A space, an objective over it, crash regions, and the known optimum."""

    def __init__(self, name, params, objective, crash, optimum, best, description):
        self.name = name
        self.params = params
        self.by_name = {p["name"]: p for p in params}
        self.objective = objective  # f(get) -> float; get(name) -> unit float or enum text
        self.crash = crash  # f(get) -> reason text or None
        self.optimum = optimum  # the known maximum of the objective
        self.best = best  # {name: text} for the parameters that matter; others anything safe
        self.description = description

    def getter(self, config):
        def get(name):
            p = self.by_name[name]
            text = config[name]
            if _is_num(p):
                return to_unit(p, float(text))
            return text

        return get


def _bowl(name, seed, n_numeric, n_enum, n_bowl, n_bonus, shift=0.0, swap=False):
    rng = random.Random(seed)
    params = _space(rng, n_numeric, 0, n_enum)
    taken = set()
    # The bowl: an int on a log scale, a float, a float on a log scale, then any numeric.
    preds = [
        lambda p: p["type"] == "int" and p["log"],
        lambda p: p["type"] == "float" and not p["log"],
        lambda p: p["type"] == "float" and p["log"],
    ]
    bowl = []
    for k in range(n_bowl):
        i = _pick(rng, params, preds[k] if k < len(preds) else _is_num, taken)
        c = 0.2 + 0.6 * rng.random()
        bowl.append((i, c))
    weights = [1.0, 0.7, 0.5][:n_bowl]
    bonus = []  # (index, best value, second value, best bonus, second bonus)
    for k, (b1, b2) in enumerate([(10.0, 4.0), (6.0, 0.0)][:n_bonus]):
        i = _pick(rng, params, lambda p: p["type"] == "enum" and len(p["values"]) >= 3, taken)
        vals = params[i]["values"][1:]  # never the default
        a = int(rng.random() * len(vals))
        bonus.append((i, vals[a], vals[(a + 1) % len(vals)], b1, b2))
    # The cliff: the bowl's first parameter (optimum placed below the threshold) and an inert one.
    cliff_i, _ = bowl[0]
    bowl[0] = (cliff_i, 0.55)
    partner = _pick(rng, params, _is_num, taken)
    crash_enum = _pick(rng, params, lambda p: p["type"] == "enum" and len(p["values"]) >= 4, taken)
    crash_value = params[crash_enum]["values"][-1]
    if shift:
        bowl = [(i, min(0.8, max(0.2, c + (shift if k % 2 == 0 else -shift))))
                for k, (i, c) in enumerate(bowl)]
        bowl[0] = (cliff_i, 0.55 - shift)
    if swap:
        bonus = [(i, v2, v1, b1, b2) for (i, v1, v2, b1, b2) in bonus]
    bowl = [(i, _snap(params[i], c)) for i, c in bowl]
    names = {i: params[i]["name"] for i in range(len(params))}
    top = 100.0 + sum(b1 for (_, _, _, b1, _) in bonus)

    def objective(get):
        f = 100.0
        for (i, c), w in zip(bowl, weights):
            f -= 100.0 * w * (get(names[i]) - c) ** 2
        for i, v1, v2, b1, b2 in bonus:
            e = get(names[i])
            f += b1 if e == v1 else (b2 if e == v2 else 0.0)
        return f

    def crash(get):
        if get(names[cliff_i]) > 0.7 and get(names[partner]) > 0.5:
            return "%s and %s jointly high" % (names[cliff_i], names[partner])
        if get(names[crash_enum]) == crash_value:
            return "%s=%s" % (names[crash_enum], crash_value)
        return None

    best = {names[i]: value_at(params[i], c) for i, c in bowl}
    best.update({names[i]: v1 for i, v1, _, _, _ in bonus})
    desc = {
        "matters": [names[i] for i, _ in bowl] + [names[i] for i, *_ in bonus],
        "crash": ["%s > 0.7 and %s > 0.5 (unit)" % (names[cliff_i], names[partner]),
                  "%s = %s" % (names[crash_enum], crash_value)],
    }
    return Suite(name, params, objective, crash, top, best, desc)


def _rugged(name, seed):
    rng = random.Random(seed)
    params = _space(rng, 180, 20, 100)
    taken = set()
    lin_float = lambda p: p["type"] == "float" and not p["log"]  # noqa: E731
    rast = []
    for _ in range(4):
        i = _pick(rng, params, lin_float, taken)
        s = -2.0 + 4.0 * rng.random()  # the optimum in x = -5.12 + 10.24 u
        rast.append((i, s))
    e_i = _pick(rng, params, lambda p: p["type"] == "enum" and len(p["values"]) >= 5, taken)
    e_best = params[e_i]["values"][1 + int(rng.random() * (len(params[e_i]["values"]) - 1))]
    k_i = _pick(rng, params, lambda p: p["type"] == "int", taken)
    k_c = _snap(params[k_i], 0.3 + 0.4 * rng.random())
    p_i = _pick(rng, params, lambda p: p["type"] == "float", taken)
    q_i = _pick(rng, params, lambda p: p["type"] == "float", taken)
    band_i = _pick(rng, params, lambda p: p["type"] == "float", taken)
    flag_i = _pick(rng, params, lambda p: p["type"] == "bool", taken)
    high_i = _pick(rng, params, lambda p: p["type"] == "int", taken)
    names = {i: params[i]["name"] for i in range(len(params))}

    def rastrigin_x(get, i):
        return -5.12 + 10.24 * get(names[i])

    def objective(get):
        f = 0.0
        for i, s in rast:
            z = rastrigin_x(get, i) - s
            f += z * z - 10.0 * math.cos(2.0 * math.pi * z) + 10.0
        bonus = 0.0
        if get(names[e_i]) == e_best:
            bonus = 20.0 * max(0.0, 1.0 - abs(get(names[k_i]) - k_c) / 0.15)
        ridge = 30.0 * (get(names[p_i]) - get(names[q_i])) ** 2
        return 300.0 - f + bonus - ridge

    def crash(get):
        u = get(names[band_i])
        if 0.4 < u < 0.6:
            return "%s in the crash band" % names[band_i]
        if get(names[flag_i]) == "true" and get(names[high_i]) > 0.75:
            return "%s=true with %s high" % (names[flag_i], names[high_i])
        return None

    best = {names[i]: value_at(params[i], (s + 5.12) / 10.24) for i, s in rast}
    best[names[e_i]] = e_best
    best[names[k_i]] = value_at(params[k_i], k_c)
    # The ridge: both at unit 0.25, their defaults (floats take it exactly).
    best[names[p_i]] = params[p_i]["default"]
    best[names[q_i]] = params[q_i]["default"]
    desc = {
        "matters": [names[i] for i, _ in rast] + [names[e_i], names[k_i], names[p_i], names[q_i]],
        "crash": ["0.4 < %s < 0.6 (unit)" % names[band_i],
                  "%s = true and %s > 0.75 (unit)" % (names[flag_i], names[high_i])],
    }
    return Suite(name, params, objective, crash, 320.0, best, desc)


def _small(name, seed):
    return _bowl(name, seed, 16, 8, 2, 1)


SUITES = {
    "bowl": lambda: _bowl("bowl", 20240601, 150, 50, 3, 2),
    "bowl_shift": lambda: _bowl("bowl_shift", 20240601, 150, 50, 3, 2, shift=0.08, swap=True),
    "rugged": lambda: _rugged("rugged", 20240602),
    "small": lambda: _small("small", 20240603),
}


def suite(name):
    if name not in SUITES:
        sys.exit("synthetic.py: unknown suite %r (known: %s)" % (name, ", ".join(SUITES)))
    return SUITES[name]()


def optimum_configuration(s):
    """Every parameter at its default except the ones that matter, at their optimum."""
    config = {p["name"]: p["default"] for p in s.params}
    config.update(s.best)
    return config


# ---------------------------------------------------------------------------------------------
# Job files


def job_text(s, python=None, script=None, iterations=100):
    python = python or sys.executable or "python3"
    script = script or os.path.abspath(__file__)
    lines = [
        "# Generated by bench/wayfinder/synthetic.py job %s; do not edit." % s.name,
        "name: synthetic-%s" % s.name.replace("_", "-"),
        "description: %s" % json.dumps(
            "synthetic suite %s: %d parameters, known optimum %g" % (s.name, len(s.params),
                                                                     s.optimum)),
        "parameters:",
    ]
    for p in s.params:
        d = {"name": p["name"], "type": p["type"]}
        if _is_num(p):
            d["range"] = [p["min"], p["max"]]
            if p["log"]:
                d["log"] = True
            d["default"] = int(p["default"]) if p["type"] == "int" else float(p["default"])
        elif p["type"] == "enum":
            d["values"] = p["values"]
            d["default"] = p["default"]
        else:
            d["default"] = False
        lines.append("  - " + json.dumps(d))
    bench = "%s %s eval %s" % (shlex.quote(python), shlex.quote(script), s.name)
    lines += [
        "commands:",
        "  bench: %s" % json.dumps(bench),
        "metrics:",
        '  - {name: f, regex: "objective: (-?[0-9.]+(?:[eE][-+]?[0-9]+)?)", '
        "direction: maximize}",
        "repetitions: 1",
        "timeouts: {start: 10, bench: 30, stop: 10}",
        "budget: {iterations: %d}" % iterations,
        "isolation: {netns: false}",
        "export: env",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_eval(args):
    s = suite(args.suite)
    config = {}
    for p in s.params:
        v = os.environ.get("WF_PARAM_" + p["name"])
        config[p["name"]] = p["default"] if v is None else v
    get = s.getter(config)
    reason = s.crash(get)
    if reason:
        print("synthetic %s: crash region: %s" % (s.name, reason), file=sys.stderr)
        return 3
    print("objective: %.6f" % s.objective(get))
    return 0


def cmd_job(args):
    s = suite(args.suite)
    text = job_text(s, python=args.python, iterations=args.iterations)
    if args.output and args.output != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_optimum(args):
    s = suite(args.suite)
    config = optimum_configuration(s)
    get = s.getter(config)
    reached = s.objective(get)
    crash = s.crash(get)
    default = s.objective(s.getter({p["name"]: p["default"] for p in s.params}))
    out = {
        "suite": s.name,
        "parameters": len(s.params),
        "optimum": s.optimum,
        "optimum_configuration_reaches": round(reached, 6),
        "default_objective": round(default, 6),
        "optimum_configuration": s.best,
        "matters": s.description["matters"],
        "crash_regions": s.description["crash"],
    }
    if crash or abs(reached - s.optimum) > 1e-3:
        print("synthetic.py: the optimum configuration of %s reaches %g (crash: %s), not %g"
              % (s.name, reached, crash, s.optimum), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print("%s: optimum %g (default %.3f); matters: %s" % (
            s.name, s.optimum, default, ", ".join("%s=%s" % kv for kv in s.best.items())))
        print("crash regions: " + "; ".join(s.description["crash"]))
    return 0


def cmd_list(_args):
    for name in SUITES:
        s = suite(name)
        kinds = {}
        for p in s.params:
            kinds[p["type"]] = kinds.get(p["type"], 0) + 1
        print("%-11s %3d parameters (%s), optimum %g" % (
            name, len(s.params), ", ".join("%d %s" % (n, t) for t, n in sorted(kinds.items())),
            s.optimum))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the suites")
    e = sub.add_parser("eval", help="evaluate WF_PARAM_* (the job's benchmark)")
    e.add_argument("suite")
    j = sub.add_parser("job", help="write the suite's sluice job file")
    j.add_argument("suite")
    j.add_argument("-o", "--output", help="file (default: stdout)")
    j.add_argument("--python", help="interpreter for the benchmark (default: this one)")
    j.add_argument("--iterations", type=int, default=100, help="the job's default budget")
    o = sub.add_parser("optimum", help="the known optimum")
    o.add_argument("suite")
    o.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    return {"eval": cmd_eval, "job": cmd_job, "optimum": cmd_optimum, "list": cmd_list}[
        args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
