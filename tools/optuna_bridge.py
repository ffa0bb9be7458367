#!/usr/bin/env python3
"""Optuna's TPE sampler behind sluice's Searcher interface (src/wayfinder/optuna_search.cc).

sluice starts this script as a child process and talks to it in JSON lines over its stdin and
stdout, one request per line. Requests:

  {"op": "init", "seed": 1, "failures": "worst",
   "params": [{"name": "a", "type": "int", "min": 1, "max": 1000, "log": true, "values": [],
               "fixed": null}, ...]}
      -> {"ok": true, "optuna": "3.1.0", "python": "3.11.2"}
  {"op": "observe", "config": {"a": "10", ...}, "value": 12.5}        (or "value": null: failed)
      -> no reply (observations stream; problems are reported with the next "ask")
  {"op": "ask", "n": 1}
      -> {"ok": true, "configs": [{"a": "37", ...}], "notes": ["..."]}
  {"op": "reset"}
      -> no reply; forget every observation (sluice re-sends the history, e.g. after the
         Equation 4 scores of earlier trials changed)

Any failure answers {"ok": false, "error": "..."}. Configurations travel as sluice's canonical
text (ints as integers, floats as "%.6g", bools "true"/"false", enum values as listed); pinned
parameters are never sampled and always come back at their fixed value. The objective is higher
is better (direction=maximize); a failed trial ("value": null) completes with the lowest value
there is ("failures": "worst", the default) or is marked FAIL ("failures": "fail"). A
configuration that TPE itself proposed is told to its trial; any other observation (the default,
history replayed on resume) becomes a trial of its own with study.add_trial().

The script exits when its stdin closes, so it never outlives sluice.
"""

import json
import math
import os
import signal
import sys

# Debian's python3-optuna is installed for the system interpreter only; a python3 earlier on
# PATH (pyenv, a virtualenv) cannot import it. Retry once with the system interpreter.
_SYSTEM_PYTHON = "/usr/bin/python3"
_RETRIED = "SLUICE_OPTUNA_BRIDGE_RETRIED"

try:
    import optuna
except ImportError as e:
    if (
        not os.environ.get(_RETRIED)
        and os.path.exists(_SYSTEM_PYTHON)
        and os.path.realpath(sys.executable) != os.path.realpath(_SYSTEM_PYTHON)
    ):
        os.environ[_RETRIED] = "1"
        os.execv(_SYSTEM_PYTHON, [_SYSTEM_PYTHON] + sys.argv)
    sys.stdout.write(
        json.dumps(
            {
                "ok": False,
                "code": "unavailable",
                "error": f"python3 ({sys.executable}) cannot import optuna ({e}); "
                "install python3-optuna (Debian) or pip install optuna",
            }
        )
        + "\n"
    )
    sys.stdout.flush()
    sys.exit(3)

from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial  # noqa: E402

# What a failed trial is worth with failures="worst": below any objective, so that TPE's split
# (by rank only) puts it among the bad trials and the crash region stops looking unexplored.
# Optuna's own FAIL state ("fail") leaves the trial out of both densities: then a value that
# always crashes is never seen, and TPE's prior makes exactly that value the most attractive.
_WORST = -sys.float_info.max

# The attempts at a configuration not seen before, per proposal: TPE repeats itself in small
# spaces, and a repeat measures nothing new.
_MAX_ATTEMPTS = 50


def float_text(v):
    """sluice's canonical float: Space::sample's "{:.6g}"."""
    return "%.6g" % v


def bound_text(v):
    """sluice's format_double() for a range bound: an integer if whole, else shortest repr."""
    if math.isfinite(v) and v == math.floor(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class Param:
    def __init__(self, spec):
        self.name = spec["name"]
        self.type = spec["type"]
        self.fixed = spec.get("fixed")
        lo, hi = spec.get("min", 0), spec.get("max", 0)
        log = bool(spec.get("log", False))
        self.lo, self.hi = lo, hi
        if self.type == "int":
            self.dist = IntDistribution(int(lo), int(hi), log=log)
        elif self.type == "float":
            self.dist = FloatDistribution(float(lo), float(hi), log=log)
        elif self.type == "bool":
            self.dist = CategoricalDistribution(("false", "true"))
        elif self.type in ("enum", "string"):
            values = spec.get("values") or []
            if not values:
                raise ValueError(f"parameter {self.name} has no values")
            self.dist = CategoricalDistribution(tuple(values))
        else:
            raise ValueError(f"parameter {self.name} has unknown type {self.type!r}")

    def text(self, v):
        """Optuna's value -> sluice's canonical text."""
        if self.type == "int":
            return str(int(v))
        if self.type == "float":
            t = float_text(v)
            # Rounding to 6 digits can step outside the range at a bound.
            if float(t) < self.lo:
                return bound_text(self.lo)
            if float(t) > self.hi:
                return bound_text(self.hi)
            return t
        return str(v)

    def value(self, text):
        """sluice's text -> Optuna's value, or None when it is not in the distribution."""
        try:
            if self.type == "int":
                v = int(float(text))
            elif self.type == "float":
                v = float(text)
            else:
                v = text
            if self.type in ("int", "float"):
                return v if self.lo <= v <= self.hi else None
            return v if v in self.dist.choices else None
        except (TypeError, ValueError):
            return None


class Bridge:
    def __init__(self, out):
        self.out = out
        self.params = []
        self.seed = 1
        self.failures = "worst"
        self.study = None
        self.pending = {}  # configuration key -> numbers of asked trials not yet observed
        self.seen = {}  # configuration key -> value (None: failed), every observation
        self.notes = []
        self.error = None  # a failed observe, answered by the next ask

    def reply(self, obj):
        self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.out.flush()

    def new_study(self):
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.pending = {}
        self.seen = {}

    def free(self):
        return [p for p in self.params if p.fixed is None]

    @staticmethod
    def key(config):
        return json.dumps(config, sort_keys=True, separators=(",", ":"))

    def init(self, req):
        self.seed = int(req.get("seed", 1)) % (2**32)
        self.failures = req.get("failures", "worst")
        if self.failures not in ("worst", "fail"):
            raise ValueError(f"failures must be worst or fail, not {self.failures!r}")
        self.params = [Param(s) for s in req["params"]]
        self.new_study()
        self.reply(
            {
                "ok": True,
                "optuna": optuna.__version__,
                "python": sys.version.split()[0],
            }
        )

    def tell(self, number, value):
        if value is not None:
            self.study.tell(number, value)
        elif self.failures == "worst":
            self.study.tell(number, _WORST)
        else:
            self.study.tell(number, state=TrialState.FAIL)

    def observe(self, req):
        config = req["config"]
        value = req.get("value")
        if value is not None and not math.isfinite(float(value)):
            value = None
        key = self.key(config)
        self.seen[key] = value
        numbers = self.pending.get(key)
        if numbers:
            self.tell(numbers.pop(0), value)
            if not numbers:
                del self.pending[key]
            return
        params, dists = {}, {}
        for p in self.free():
            if p.name not in config:
                continue
            v = p.value(config[p.name])
            if v is None:
                self.notes.append(f"observed {p.name}={config[p.name]!r} is outside its range")
                continue
            params[p.name] = v
            dists[p.name] = p.dist
        if value is not None:
            trial = create_trial(params=params, distributions=dists, value=float(value))
        elif self.failures == "worst":
            trial = create_trial(params=params, distributions=dists, value=_WORST)
        else:
            trial = create_trial(params=params, distributions=dists, state=TrialState.FAIL)
        self.study.add_trial(trial)

    def config_of(self, trial):
        config = {}
        for p in self.params:
            if p.fixed is not None:
                config[p.name] = p.fixed
            else:
                config[p.name] = p.text(trial.params[p.name])
        return config

    def ask(self, req):
        if self.error:
            error, self.error = self.error, None
            raise ValueError(error)
        n = int(req.get("n", 1))
        dists = {p.name: p.dist for p in self.free()}
        configs, keys = [], set()
        for _ in range(n):
            for _attempt in range(_MAX_ATTEMPTS):
                trial = self.study.ask(fixed_distributions=dists)
                config = self.config_of(trial)
                key = self.key(config)
                if key in self.seen:
                    # Already measured: TPE learns the known result and tries again.
                    self.tell(trial.number, self.seen[key])
                    continue
                if key in keys or key in self.pending:
                    # Proposed already and not measured yet: leave the trial running (TPE
                    # ignores running trials) and try again.
                    continue
                keys.add(key)
                self.pending.setdefault(key, []).append(trial.number)
                configs.append(config)
                break
        notes, self.notes = self.notes, []
        self.reply({"ok": True, "configs": configs, "notes": notes})


def main():
    # sluice stops this process itself (closing stdin, then SIGKILL); a Ctrl-C meant for sluice
    # must not kill it mid-request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    import logging
    import warnings

    handler = logging.StreamHandler(sys.stderr)
    optuna.logging.get_logger("optuna").addHandler(handler)
    warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)

    bridge = Bridge(out)
    ops = {"init": bridge.init, "observe": bridge.observe, "ask": bridge.ask}
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        line = line.strip()
        if not line:
            continue
        req = None
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "reset":
                bridge.new_study()
            elif op in ops:
                if op != "init" and bridge.study is None:
                    raise ValueError("the first request must be init")
                ops[op](req)
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # noqa: BLE001 -- every failure becomes an answer
            error = f"{type(e).__name__}: {e}"
            if isinstance(req, dict) and req.get("op") in ("observe", "reset"):
                # These send no reply; the next ask answers with the error instead.
                bridge.error = bridge.error or f"{req.get('op')}: {error}"
            else:
                bridge.reply({"ok": False, "code": "internal", "error": error})


if __name__ == "__main__":
    sys.exit(main())
