"""Paired timing: each call of a benchmark timed just after one call of the yardstick, in visits.

A benchmark's first visit is its test's timed rounds (pytest-benchmark's, each after the yardstick); more
pairs join that visit while its verdict is undecided, and revisits at the session's end add visits minutes
apart (mnist_models.bench.verdict says why). What extra_info saves as `paired` is `Pairing.record()`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import mnist_models as mm
from mnist_models.bench import verdict
from mnist_models.bench.machine import Neighbours


def log_ratio_pairs(fn: Callable[[], Any], yardstick: verdict.Yardstick, n: int, meter: Any = None) -> list[float]:
  """`n` pairs, each the yardstick then `fn`, as log(fn's time / the yardstick's), `meter` (Neighbours) meanwhile."""
  sample = []
  with meter or contextlib.nullcontext():
    for _ in range(n):
      yardstick()
      start = time.perf_counter()
      fn()
      sample.append(float(np.log((time.perf_counter() - start) / yardstick.times[-1])))
  return sample


def seconds_per_pair(fn: Callable[[], Any], yardstick: verdict.Yardstick) -> float:
  """The faster of two more untimed calls of `fn` and the yardstick: what one pair costs, to size the rounds."""
  costs = []
  for _ in range(2):
    start = time.perf_counter()
    fn()
    yardstick()
    costs.append(time.perf_counter() - start)
  yardstick.times.clear()
  return min(costs)


def pairs_per_visit(per_pair: float | None, target_s: float) -> int:
  """Pairs per revisit: a REVISITS-th of the target's second half each; 0 (no revisits) if a pair takes longer."""
  return int(target_s / 2 / verdict.REVISITS / per_pair) if per_pair else 0


class Pairing:
  """One benchmark's pairs with the yardstick, by visit, and its verdict against the baseline's pairs (`base`).

  Args:
    key: the benchmark's row key.
    fn: what its timed rounds called.
    yardstick: the yardstick those rounds were paired with; `times` are the rounds' times, in order.
    neighbours: the meter of other processes' CPU, running while its pairs are timed.
    per_pair: seconds a pair takes; per_visit: pairs per revisit (0: not revisited); cap_s: seconds of
      pairs it may take in all, at most.
    base: the baseline's samples of this benchmark (runs of visits), or None when it is not judged.
  """

  def __init__(
    self,
    key: str,
    fn: Callable[[], Any],
    *,
    yardstick: verdict.Yardstick,
    neighbours: Neighbours,
    times: list[float],
    per_pair: float,
    per_visit: int,
    cap_s: float,
    base: list | None,
  ):
    self.key, self.fn, self.yardstick, self.neighbours = key, fn, yardstick, neighbours
    self.per_pair, self.per_visit, self.cap_s, self.base = per_pair, per_visit, cap_s, base
    self.yardstick_s = float(np.median(yardstick.times))
    self.visits = [[round(float(x), 5) for x in verdict.log_ratios(times, yardstick.times)]]
    self.revisits = 0  # tried, kept or not
    self.verdict: dict | None = None  # its verdict, once judged
    self.recheck: dict | None = None  # a slower verdict's fresh sample, judged on its own

  def more(self, n: int) -> None:
    """`n` more pairs in the current visit."""
    self.visits[-1] += log_ratio_pairs(self.fn, self.yardstick, n, self.neighbours)

  def fresh(self, n: int) -> list[float]:
    """`n` pairs kept apart from its visits (a fresh sample)."""
    return log_ratio_pairs(self.fn, self.yardstick, n, self.neighbours)

  def visit(self) -> None:
    """One more visit: `per_visit` pairs; dropped if anything compiled meanwhile (caches emptied by a later test)."""
    self.revisits += 1
    with mm.count_compiles() as seen:
      self.fn()  # untimed: a later benchmark may have emptied JAX's caches
      sample = log_ratio_pairs(self.fn, self.yardstick, self.per_visit, self.neighbours)
    if not seen.compiles:
      self.visits.append(sample)

  def spent_s(self) -> float:
    """Seconds of pairs taken so far (the dropped visits included)."""
    return (len(self.visits[0]) + self.revisits * self.per_visit) * self.per_pair

  def can_visit(self) -> bool:
    """Whether one more visit stays within its cap."""
    return self.spent_s() + self.per_visit * self.per_pair <= self.cap_s

  def record(self) -> dict:
    """What extra_info saves as `paired`: the yardstick, its median time, every pair's log-ratio, pairs per visit,
    and the CPU other processes took meanwhile."""
    return {
      "yardstick": verdict.YARDSTICK,
      "yardstick_s": self.yardstick_s,
      "log_ratios": [round(x, 5) for v in self.visits for x in v],
      "visits": [len(v) for v in self.visits],
      "others_cpu": self.neighbours.load,
    }
