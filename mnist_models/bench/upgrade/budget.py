"""How a side-by-side comparison spends its minutes: two looks at each row, the second planned by its spread.

The first stage visits every row `first` times a side; a row whose interval already decides (slower, faster or the
same) is done. The rows still open are each judged once more, at the end, on all their runs. Before that second
stage, each open row's spread between runs (both sides' runs, pooled) says how far its change is expected to be
bounded at each number of runs (no change beyond +-bound: `bound`): Stein's two-stage design, whose second sample
size depends on the first stage's variance only, never on the difference it estimates. The minutes left are spent
a run at a time where a run narrows a row's bound most for its seconds, until each row is bounded within the
threshold or has MAX_RUNS runs (`plan`).

Two looks at a row are two chances to read a change that is not there: each look judges at LOOK_CONFIDENCE, the
family's 1% split between them (Bonferroni), so that a row's chance of a false reading over both looks stays
within 1 - verdict.CONFIDENCE (lab/calibration.py simulates whole comparisons of this design;
tests/test_calibration.py holds the bound).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np

from mnist_models.bench import verdict

LOOKS = 2
LOOK_CONFIDENCE = 1 - (1 - verdict.CONFIDENCE) / LOOKS
MAX_RUNS = 30  # a side, a row: beyond it a row's interval narrows too slowly to be worth its visits
RECHECK_SHARE = 0.2  # of the minutes, kept for rechecking the rows that read slower or faster
_STEP = 1.1  # the targets tried: the threshold, then 10% coarser each time


def bound(sd: float, runs: int, confidence: float = LOOK_CONFIDENCE) -> float:
  """How far, in log units, an unchanged row spread by `sd` between runs is expected to be bounded with `runs` runs a
  side: its interval's half-width (Welch's, 2 * runs - 2 degrees of freedom) plus the mean distance of its estimate
  from zero (sqrt(2 / pi) standard errors): the furthest end of its interval, on average."""
  return float(bounds(confidence)[runs]) * sd


@functools.cache
def bounds(confidence: float = LOOK_CONFIDENCE) -> np.ndarray:
  """[n]: `bound` per unit of spread with n runs a side, for n from 2 to MAX_RUNS (inf below)."""
  from scipy import stats  # noqa: PLC0415 - only the command's planning needs it

  n = np.arange(MAX_RUNS + 1, dtype=np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    out = (stats.t.ppf((1 + confidence) / 2, 2 * n - 2) + math.sqrt(2 / math.pi)) * np.sqrt(2 / n)
  out[:2] = np.inf
  return out


def runs_for(sd: float, target: float, first: int) -> int | None:
  """The fewest runs a side (at least `first`) that are expected to bound a row spread by `sd` within +-`target`
  (a fraction: `bound`); None if more than MAX_RUNS would be needed."""
  fits = np.nonzero(bounds()[first:] * sd <= math.log1p(target))[0]
  return int(first + fits[0]) if fits.size else None


def seconds(runs: Mapping[str, int], first: int, cost: Mapping[str, float], start_s: float) -> float:
  """What the second stage's visits take, both sides: visit k (after the first stage's) runs every row planned
  for k runs or more, at `start_s` a visit plus each of its rows' `cost`."""
  total = 0.0
  for k in range(first + 1, max(runs.values(), default=first) + 1):
    due = [key for key, n in runs.items() if n >= k]
    total += 2 * (start_s + sum(cost[key] for key in due))
  return total


def plan(
  spreads: Mapping[str, float],
  cost: Mapping[str, float],
  start_s: float,
  budget_s: float,
  first: int,
  threshold: float,
) -> tuple[dict[str, int], float | None]:
  """(runs a side for each open row that is visited again, the median open row's bound they are planned to reach,
  a fraction): one run a side at a time, to the row whose bound it narrows most for its seconds (a row's bound
  narrows by the same factor at the same number of runs, so the cheaper rows and the rows with fewer runs go first),
  until every row is bounded within `threshold` or has MAX_RUNS, or nothing more fits in `budget_s`. ({}, None)
  where not one more run fits."""
  per_unit, goal = bounds(), math.log1p(threshold)
  runs, spent, top = dict.fromkeys(spreads, first), 0.0, first
  while True:
    best, best_score, best_cost = None, 0.0, 0.0
    for key, sd in spreads.items():
      n = runs[key]
      if n >= MAX_RUNS or sd * per_unit[n] <= goal:
        continue
      price = 2 * cost[key] + (2 * start_s if n + 1 > top else 0.0)  # both sides; a new visit's start-up too
      gain = math.log(sd * per_unit[n] / max(sd * per_unit[n + 1], goal))
      if spent + price <= budget_s and gain / price > best_score:
        best, best_score, best_cost = key, gain / price, price
    if best is None:
      break
    runs[best] += 1
    spent, top = spent + best_cost, max(top, runs[best])
  planned = {key: n for key, n in runs.items() if n > first}
  if not planned:
    return {}, None
  return planned, float(np.median([math.expm1(bound(sd, runs[key])) for key, sd in spreads.items()]))
