"""Resolution against minutes, projected from one side-by-side report's first stage: what each budget buys.

  python lab/budget_curve.py REPORT.json [--minutes 15 30 45 60 90] [--counts-s 100] [--save MEASURED.json]
  python lab/budget_curve.py MEASURED.json  (what --save kept: the spreads and costs alone, small enough to commit)

From the report's first-stage runs (3 a side of every row): each row's spread between runs (both sides pooled), each
row's cost in a visit (its test's seconds, as the saved runs recorded them) and a visit's start-up (the time between
consecutive saved runs less their tests' seconds). For each budget, two designs, both after the compile counts
(`--counts-s`) and with the first stage's visits paid:
- the budget (`upgrade.budget.plan`, as the command plans it);
- every row every visit (the design before it): as many visits a side of the whole selection as fit.
Both keep a fifth of the minutes for the recheck, as the command does.
Each row's bound is `budget.bound` at its runs (what an unchanged row's interval reaches on average); the median and
the worst row's are printed. A projection from measured spreads and costs, not a measurement of the bounds: a first
stage's spreads come from 3 runs a side, and a busy window widens them.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from mnist_models.bench import baseline, verdict
from mnist_models.bench.upgrade import budget, command


def measured(report: dict, first: int = command.VISITS) -> tuple[dict[str, float], dict[str, float], float]:
  """(each row's spread, each row's seconds a visit, a visit's seconds besides its tests) of the first stage."""
  docs = [[json.loads(Path(p).read_text()) for p in paths[:first]] for paths in report["runs"]]
  named = [[(f"{side}{i}", doc) for i, doc in enumerate(ds)] for side, ds in zip("AB", docs, strict=True)]
  sides = [baseline.Baseline.of_runs(side, runs) for side, runs in zip("AB", named, strict=True)]
  spreads = {}
  for key in sorted(sides[0].samples.keys() & sides[1].samples.keys()):
    a, b = (np.array([verdict._stat(run) for run in side.samples[key]]) for side in sides)
    spreads[key] = verdict.pooled_sd(a, b)
  flat = [d for ds in docs for d in ds]
  costs: dict[str, list[float]] = {}
  for doc in flat:
    seconds = doc["session"]["test_seconds"]
    for key, bench in baseline.benchmarks_by_key(doc).items():
      costs.setdefault(key, []).append(seconds[bench["fullname"]])
  ends = sorted(datetime.fromisoformat(d["datetime"]).timestamp() for d in flat)
  tests = float(np.median([sum(d["session"]["test_seconds"].values()) for d in flat]))
  besides = max(0.0, float(np.median(np.diff(ends))) - tests)
  return spreads, {k: float(np.mean(v)) for k, v in costs.items() if k in spreads}, besides


def curve(spreads: dict, costs: dict, besides: float, minutes: float, counts_s: float) -> dict:
  """The median and worst row's bound (fractions) each design reaches within `minutes`."""
  first = command.VISITS
  visit = besides + sum(costs.values())
  left = 60 * minutes - counts_s - 2 * first * visit
  if left < 0:
    return {"minutes": minutes, "fits": False}
  left -= budget.RECHECK_SHARE * 60 * minutes  # both designs keep the recheck's share
  planned, _ = budget.plan(spreads, costs, besides, left, first, 0.03)
  runs = {k: planned.get(k, first) for k in spreads}
  uniform = first + int(max(left, 0) // (2 * visit))
  out = {"minutes": minutes, "fits": True, "uniform_runs": uniform, "budget_max_runs": max(runs.values())}
  for name, n in (("budget", runs), ("uniform", dict.fromkeys(spreads, min(uniform, budget.MAX_RUNS)))):
    bounds = sorted(math.expm1(budget.bound(sd, n[k])) for k, sd in spreads.items())
    out[name] = {"median": float(np.median(bounds)), "worst": bounds[-1]}
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("report", type=Path)
  parser.add_argument("--minutes", type=float, nargs="+", default=[15, 20, 30, 45, 60, 90, 120])
  parser.add_argument("--counts-s", type=float, default=100.0, help="both sides' compile counts, seconds")
  parser.add_argument("--save", type=Path, help="keep the measured spreads and costs here")
  args = parser.parse_args()
  doc = json.loads(args.report.read_text())
  spreads, costs, besides = (doc["spreads"], doc["costs"], doc["besides"]) if "spreads" in doc else measured(doc)
  if args.save:
    args.save.write_text(json.dumps({"spreads": spreads, "costs": costs, "besides": besides}, indent=1) + "\n")
  visit = besides + sum(costs.values())
  print(f"{len(spreads)} rows; a visit of all of them {visit:.0f} s ({besides:.0f} s besides the tests)")
  print("| minutes | every row every visit: runs a side, median / worst bound | the budget: median / worst bound |")
  print("| --- | --- | --- |")
  for minutes in args.minutes:
    c = curve(spreads, costs, besides, minutes, args.counts_s)
    if not c["fits"]:
      print(f"| {minutes:g} | the first stage does not fit | - |")
      continue
    u, b = c["uniform"], c["budget"]
    print(
      f"| {minutes:g} | {c['uniform_runs']}: +-{u['median']:.1%} / +-{u['worst']:.1%} "
      f"| +-{b['median']:.1%} / +-{b['worst']:.1%} (up to {c['budget_max_runs']} runs) |"
    )


if __name__ == "__main__":
  main()
