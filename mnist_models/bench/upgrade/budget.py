"""How a side-by-side comparison spends its minutes: two looks at each row, the second planned by its spread.

The first stage visits every row `first` times a side; a row whose interval already decides (slower, faster or the
same) is done. The rows still open are each judged once more, at the end, on all their runs. Before that second
stage, each open row's spread between runs (both sides' runs, pooled) says how many runs a side are expected to
bound its change within a target resolution (no change beyond +-target, `bound`): Stein's two-stage design, whose
second sample size depends on the first stage's variance only, never on the difference it estimates. The target is
the finest one that the minutes left buy, the same for every open row that can reach it within MAX_RUNS runs; the
others get the finest coarser target the minutes still hold (`plan`).

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
  """(runs a side for each open row that is visited again, the resolution most of them are planned to reach): the
  finest target, from `threshold` up, whose second stage fits in `budget_s`; then the rows that cannot reach it
  within MAX_RUNS, each planned for the finest coarser target that still fits. ({}, None) where nothing fits."""
  planned: dict[str, int] = {}
  target, goal = None, threshold
  while goal < 1:
    needed = {key: runs_for(sd, goal, first) for key, sd in spreads.items() if key not in planned}
    more = {key: n for key, n in needed.items() if n is not None and n > first}
    if more and seconds({**planned, **more}, first, cost, start_s) <= budget_s:
      planned.update(more)
      target = target or goal
    goal *= _STEP
  return planned, target
