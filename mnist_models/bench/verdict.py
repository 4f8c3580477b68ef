"""Timing verdicts: each benchmark paired with a fixed yardstick in time, sampled in visits, and compared by interval.

Every timed round of a benchmark is preceded by one call of a yardstick that no framework touches (a
numpy matmul), so both see the same moment of a shared machine; a round's sample is the log of the
ratio benchmark / yardstick. A benchmark's pairs are taken in visits minutes apart (its test, then
revisits at the end of the session, asv's interleaved rounds): the machine's slow phases shift a
visit's pairs together (measured: ~1.5% between blocks of 100 pairs, docs/notebook/method.md), so the
interval resamples visits as well as the pairs within them. A verdict compares the pooled lower
quartile (QUANTILE) of this run with the baseline's: slower (or faster) when the change is beyond the
noise threshold and its interval excludes no change; the same when the whole interval lies within the
threshold; otherwise undecided, and the caller may take more pairs.

One run is one moment of the machine, and a later run of the same code reads a few percent away from it
(measured: -0.7..-6.5%, three hours after a baseline). A baseline may therefore be several runs of the
same code saved at different moments: their mean is the reference, and their spread is how far one
run's moment can move, added to this run's interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

YARDSTICK = "numpy float32 matmul 512x512x512"
# Changes within 6% count as noise: 3x the standard deviation (2.0%) of an unchanged step's paired ratio between
# processes on a quiet machine (docs/notebook/method.md). A neighbour moves it further (a memory-heavy one: +7.0%; Keras
# steps up to +23%): such runs are told apart by BUSY_CPUS, not by a wider threshold.
THRESHOLD = 0.06
# Side by side (both sides' runs in one time window, their spread in the interval), changes within 3% count as
# noise: the threshold is then the smallest change worth naming, not a cover for the machine's moments.
SIDE_BY_SIDE_THRESHOLD = 0.03
# 99%: at 95% one unchanged run beside a busy neighbour was called slower (+13.9%, CI +0.4..+20.5%; set G).
CONFIDENCE = 0.99
# The chance that a whole run of unchanged code fails on a timing, at most: a first reading only picks the rows to
# look at again, and a row fails only on fresh data (side by side: fresh runs of both sides, at CONFIDENCE each; a
# compare run: a fresh sample judged at 1 - 2 * FAMILY_ALPHA / rows, Bonferroni over the baseline's rows).
# tests/test_calibration.py simulates many null runs to show it holds.
FAMILY_ALPHA = 0.01
# How far a later run of unchanged code read from a baseline's, hours later (measured: -0.7..-6.5%; the module's doc):
# a baseline's runs saved within one session do not see it, so a fresh sample is slower than a saved baseline only
# where its interval lies beyond it.
MACHINE_DRIFT = 0.065
# A run is busy, and its timing verdicts information only, when other processes took more than this many CPUs on
# average while its pairs were timed (measured here: 0.00-0.02 quiet; 0.57-0.71 beside one busy process).
BUSY_CPUS = 0.25
TARGET_S = 2.0  # seconds of pairs a benchmark takes: half in its test, half in REVISITS visits at the session's end
PRECISE_S = 8.0  # ... for the headline rows (the train step at batch 64 in each framework): 4x the pairs
REVISITS = 3
CAP_FACTOR = 4  # at most this many times its target, adding visits while its verdict is undecided
MIN_PAIRS, MAX_PAIRS = 5, 600
# The statistic compared: the lower quartile of the log-ratios, not the median. Interference only adds time, and a
# process can sit in a slow mode for minutes (unchanged steps read +12..+16% when most of a run's visits were in one,
# set L): the lower quartile keeps to the fast mode while a real slowdown moves every mode (docs/notebook/method.md).
QUANTILE = 0.25


class Yardstick:
  """A fixed piece of work timed before each round: `pedantic(fn, setup=yardstick)`; `times` in call order."""

  def __init__(self, size: int = 512):
    self._a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    self.times: list[float] = []
    self()  # BLAS warmed up; not kept
    self.times.clear()

  def __call__(self) -> None:
    start = time.perf_counter()
    self._a @ self._a  # noqa: B018 - the work is the point
    self.times.append(time.perf_counter() - start)


def pairs_for(seconds_per_pair: float, target_s: float = TARGET_S, minimum: int = MIN_PAIRS) -> int:
  """How many pairs fit in `target_s`, within [minimum, MAX_PAIRS]."""
  return int(min(MAX_PAIRS, max(minimum, math.ceil(target_s / seconds_per_pair))))


def log_ratios(times: list[float], yardstick_times: list[float]) -> np.ndarray:
  """Per-pair log(benchmark / yardstick); the two lists in the same order, as long as each other."""
  times, yard = np.asarray(times, np.float64), np.asarray(yardstick_times, np.float64)
  if times.shape != yard.shape or times.ndim != 1:
    raise ValueError(f"need as many benchmark times as yardstick times, got {times.shape} and {yard.shape}")
  return np.log(times / yard)


def as_visits(samples: Any, name: str = "samples") -> list[np.ndarray]:
  """A run's samples as visits: a flat list of log-ratios is one visit; a list of lists, one per visit."""
  parts = (
    list(samples)
    if isinstance(samples, (list, tuple)) and samples and isinstance(samples[0], (list, tuple, np.ndarray))
    else [samples]
  )
  visits = [np.asarray(p, np.float64) for p in parts]
  if any(v.ndim != 1 or not v.size or not np.isfinite(v).all() for v in visits) or sum(v.size for v in visits) < 2:
    raise ValueError(f"{name}'s samples must be at least 2 finite numbers, got {parts[0][:5]}... ({len(parts)} visits)")
  return visits


def _bootstrap_stat(visits: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
  """QUANTILE of each of `resamples` two-level resamples: visits with replacement, then each visit's pairs with
  replacement."""
  lengths = np.array([v.size for v in visits])
  padded = np.full((len(visits), lengths.max()), np.nan)
  for i, v in enumerate(visits):
    padded[i, : v.size] = v
  pick = rng.integers(0, len(visits), (resamples, len(visits)))
  size = lengths[pick][..., None]  # [resamples, visits, 1]
  index = (rng.random((*pick.shape, lengths.max())) * size).astype(np.int64)
  values = padded[pick[..., None], index]
  values[np.arange(lengths.max()) >= size] = np.nan  # a short visit keeps its own size
  return _row_quantile(values.reshape(resamples, -1), QUANTILE)


def _row_quantile(values: np.ndarray, q: float) -> np.ndarray:
  """np.nanquantile(values, q, axis=1), its default linear method, bit for bit, for a NaN-padded [rows, n] array:
  without the 1-d quantile that np.nanquantile applies row by row in Python (most of a verdict's time, measured)."""
  last = np.sum(~np.isnan(values), axis=1) - 1
  index = q * last
  below = np.floor(index).astype(np.int64)
  ordered = np.sort(values, axis=1)  # NaN last
  a, b = (np.take_along_axis(ordered, i[:, None], axis=1)[:, 0] for i in (below, np.minimum(below + 1, last)))
  t = index - below
  return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)  # numpy's own lerp, exact at both ends


def as_runs(samples: Any, name: str = "samples") -> list[list[np.ndarray]]:
  """A baseline's samples as runs, each a list of visits: one run (a flat list, or a list of visits), or a list of
  runs (several saved runs pooled: each a list of visits)."""
  depth, x = 0, samples
  while isinstance(x, (list, tuple, np.ndarray)) and len(x):
    depth, x = depth + 1, x[0]
  return [as_visits(run, name) for run in samples] if depth == 3 else [as_visits(samples, name)]


def _moment_sd(runs: list[list[np.ndarray]]) -> float:
  """How far one run's moment of the machine moves its statistic: the standard deviation of the runs' (the error
  of their mean is in the resampled runs). 0 for a single run, whose moment cannot be told from its pairs."""
  if len(runs) < 2:
    return 0.0
  return float(np.std([_stat(run) for run in runs], ddof=1))


def _moments(runs: list[list[np.ndarray]], resamples: int, rng: np.random.Generator) -> np.ndarray:
  """Draws of this run's moment of the machine: Student's t with the runs' degrees of freedom, as wide as their
  spread (3 runs know that spread poorly: their 99% quantile is 9.9 standard deviations, a normal's 2.6)."""
  if len(runs) < 2:
    return np.zeros(resamples)
  return _moment_sd(runs) * rng.standard_t(len(runs) - 1, resamples)


def _stat(visits: list[np.ndarray]) -> float:
  """A run's statistic: the QUANTILE of all its pairs' log-ratios."""
  return float(np.quantile(np.concatenate(visits), QUANTILE))


def change(
  base: Any, now: Any, confidence: float = CONFIDENCE, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
  """(change, low, high): now's pooled log-ratio quartile (QUANTILE) over base's, a relative change (+0.1: 10% slower).

  Each sample is a flat list (one visit) or a list of visits; `base` may also be a list of runs (`as_runs`),
  whose reference is the mean of the runs' statistics. The interval is a percentile bootstrap of the
  difference, each side resampled on its own (the runs are independent): base's runs, then each run's
  visits, then the pairs within each (a visit's pairs share its moment of the machine); and this run's
  visits and pairs, shifted by a moment of the machine drawn from a t as wide as base's runs' spread (`_moments`).
  """
  runs, now = as_runs(base, "baseline"), as_visits(now, "this run")
  rng = np.random.default_rng(seed)
  per_run = np.stack([_bootstrap_stat(run, resamples, rng) for run in runs])  # [runs, resamples]
  picked = rng.integers(0, len(runs), (resamples, len(runs)))
  base_means = per_run[picked, rng.integers(0, resamples, picked.shape)].mean(axis=1)
  diffs = _bootstrap_stat(now, resamples, rng) + _moments(runs, resamples, rng) - base_means
  low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
  est = _stat(now) - np.mean([_stat(run) for run in runs])
  return tuple(float(np.expm1(x)) for x in (est, low, high))


def decide(
  change: float, low: float, high: float, threshold: float = THRESHOLD, same_within: float | None = None
) -> str:
  """'slower' / 'faster' when the change is beyond the threshold (either way) and its interval excludes no
  change (asv's rule: a factor and significance); 'same' when the whole interval lies within `same_within` (default
  the threshold: a wider threshold for moves never widens what is called the same)."""
  up, down = threshold, 1 / (1 + threshold) - 1  # symmetric as factors: x1.05 and /1.05
  same = threshold if same_within is None else min(same_within, threshold)
  if change > up and low > 0:
    return "slower"
  if change < down and high < 0:
    return "faster"
  if low >= 1 / (1 + same) - 1 and high <= same:
    return "same"
  return "undecided"


def drift(samples: Any, min_pairs: int = 10) -> float:
  """How far a run's own samples moved between its first and second half, as a relative change (0 if < min_pairs).

  Some benchmarks have phases the yardstick does not share (measured: jax-jit-plain moved 9% within
  one run while jax-jit moved 0.1%); none can be judged finer than it moves within a run.
  """
  samples = np.concatenate(as_visits(samples))
  half = len(samples) // 2
  if len(samples) < min_pairs:
    return 0.0
  return float(abs(np.expm1(_stat([samples[:half]]) - _stat([samples[half:]]))))


def judge(base: Any, now: Any, threshold: float = THRESHOLD) -> dict:
  """The verdict of `now`'s samples against `base`'s (flat lists or lists of visits; `base` also a list of runs): what
  extra_info and the summary show. A move must exceed the larger of `threshold`, this run's own drift (`drift`) and
  the baseline runs' median drift; "same" must lie within `threshold` itself (a run that drifts, as a step made
  bimodal does, is never the same for it)."""
  est, low, high = change(base, now)
  runs, now_visits = as_runs(base, "baseline"), as_visits(now)
  used = max(
    threshold, drift(now), float(np.median([drift(run) for run in runs]))
  )  # one run's phase does not speak for all
  return {
    "verdict": decide(est, low, high, used, same_within=threshold),
    "change": est,
    "low": low,
    "high": high,
    "confidence": CONFIDENCE,
    "pairs": sum(v.size for v in now_visits),
    "visits": len(now_visits),
    "baseline_pairs": sum(v.size for run in runs for v in run),
    "baseline_visits": sum(len(run) for run in runs),
    "baseline_runs": len(runs),
    "threshold": used,
  }


def judge_runs(base: Any, now: Any, threshold: float = SIDE_BY_SIDE_THRESHOLD, confidence: float = CONFIDENCE) -> dict:
  """The verdict of `now`'s runs against `base`'s (each a list of runs, each a list of visits), both sides measured
  in one time window, alternating (mnist_models.bench.upgrade): what `judge` returns.

  Each run is one process, whose moment of the machine its own pairs cannot see: the runs' statistics (`_stat`)
  are the samples, and the interval is Welch's t interval of the difference of their means (the between-run spread
  holds the pairs' noise, the visits' and the moments'; for few runs a t interval is wider than a bootstrap's, as
  it must be). No drift term: each side's phases are in its runs' spread, which is returned too (`spread`: the
  sides' standard deviations between runs, pooled, in log units).
  """
  a, b = as_runs(base, "side A"), as_runs(now, "side B")
  if min(len(a), len(b)) < 2:
    raise ValueError(f"need at least 2 runs a side to see how far runs differ, got {len(a)} and {len(b)}")
  sa, sb = np.array([_stat(r) for r in a]), np.array([_stat(r) for r in b])
  low, high, est = _welch(sa, sb, confidence)
  return {
    "verdict": decide(*(float(np.expm1(x)) for x in (est, low, high)), threshold),
    "change": float(np.expm1(est)),
    "low": float(np.expm1(low)),
    "high": float(np.expm1(high)),
    "spread": pooled_sd(sa, sb),
    "confidence": confidence,
    "pairs": sum(v.size for run in b for v in run),
    "visits": sum(len(run) for run in b),
    "runs": len(b),
    "baseline_pairs": sum(v.size for run in a for v in run),
    "baseline_visits": sum(len(run) for run in a),
    "baseline_runs": len(a),
    "threshold": threshold,
  }


def pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
  """Two samples' standard deviations pooled (both their degrees of freedom): how far one draw of either spreads."""
  return math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))


def _welch(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[Any, Any, Any]:
  """(low, high, estimate) of mean(b) - mean(a): Welch's t interval, over the last axis (arrays of many comparisons
  give arrays: tests/test_calibration.py judges thousands at once)."""
  from scipy import stats  # noqa: PLC0415 - only side by side and the fresh samples need it

  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  na, nb = a.shape[-1], b.shape[-1]
  va, vb = a.var(axis=-1, ddof=1) / na, b.var(axis=-1, ddof=1) / nb
  se = np.sqrt(va + vb)
  est = b.mean(axis=-1) - a.mean(axis=-1)
  with np.errstate(divide="ignore", invalid="ignore"):
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = np.where(se > 0, stats.t.ppf((1 + confidence) / 2, df) * se, 0.0)
  if np.ndim(est) == 0:
    return float(est - half), float(est + half), float(est)
  return est - half, est + half, est


def confirm(base: Any, fresh: Any, rows: int, threshold: float = THRESHOLD) -> dict:
  """The verdict of a fresh sample of a row read slower (pairs timed after that reading, one look) against `base`'s
  runs, at the family's level: the prediction interval of one more run from the baseline runs' statistics, Student's
  t with their degrees of freedom, at confidence 1 - 2 * FAMILY_ALPHA / `rows` (Bonferroni over the rows a run can
  judge: whatever chose the rows, at most FAMILY_ALPHA of unchanged runs fail). Against one baseline run the spread
  is unknown: never slower. Slower only where the interval lies beyond MACHINE_DRIFT, too."""
  runs, visits = as_runs(base, "baseline"), as_visits(fresh, "the fresh sample")
  stats = np.array([_stat(run) for run in runs])
  confidence = 1 - 2 * FAMILY_ALPHA / max(rows, 1)
  est = _stat(visits) - float(stats.mean())
  half = math.inf
  if stats.size > 1:
    from scipy import stats as scipy_stats  # noqa: PLC0415

    spread = float(stats.std(ddof=1)) * math.sqrt(1 + 1 / stats.size)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, stats.size - 1)) * spread
  low, high = est - half, est + half
  found = decide(*(float(np.expm1(x)) for x in (est, low, high)), threshold)
  if found == "slower" and low <= math.log1p(MACHINE_DRIFT):
    found = "undecided"  # within what the machine itself moves between sessions
  return {
    "verdict": found,
    "change": float(np.expm1(est)),
    "low": float(np.expm1(low)),
    "high": float(np.expm1(high)),
    "confidence": confidence,
    "pairs": sum(v.size for v in visits),
    "visits": len(visits),
    "baseline_pairs": sum(v.size for run in runs for v in run),
    "baseline_visits": sum(len(run) for run in runs),
    "baseline_runs": len(runs),
    "threshold": threshold,
  }


def sample_until_decided(
  verdict: Callable[[], dict],
  more: Callable[[int], None],
  pairs: int,
  seconds_per_pair: float,
  cap_s: float = CAP_FACTOR * TARGET_S,
) -> dict:
  """Sequential sampling in one visit: while undecided and `cap_s` allows, `more(n)` pairs, then judge again."""
  start, result = time.perf_counter(), verdict()
  while result["verdict"] == "undecided" and pairs < MAX_PAIRS:
    extra = min(MAX_PAIRS - pairs, max(MIN_PAIRS, pairs // 2))
    if time.perf_counter() - start + extra * seconds_per_pair > cap_s:
      break
    more(extra)
    pairs += extra
    result = verdict()
  return result


def describe(v: dict) -> str:
  """'slower by 11.8% (99% CI +9.5%..+14.0%; 120 pairs in 4 visits vs 100 in 4, threshold 5.0%)'."""
  amount = {
    "slower": f"slower by {v['change']:.1%}",
    "faster": f"faster by {-v['change']:.1%}",  # the time it saves, as its interval reads (B/A - 1)
    "same": "same",
    "undecided": f"undecided ({v['change']:+.1%})",
  }[v["verdict"]]
  visits, base_visits, runs = v.get("visits", 1), v.get("baseline_visits", 1), v.get("baseline_runs", 1)
  now_runs = f" of {v['runs']} runs" if v.get("runs", 1) > 1 else ""
  level = v.get("confidence", 0.95)
  interval = f"{level:.{0 if round(level, 2) == level else 2}%} CI {v['low']:+.1%}..{v['high']:+.1%}"
  base = f"{v['baseline_pairs']} in {base_visits}{f' of {runs} runs' if runs > 1 else ''}"
  pairs = f"{v['pairs']} pairs in {visits} visit{'s' * (visits > 1)}{now_runs}"
  return f"{amount} ({interval}; {pairs} vs {base}, threshold {v['threshold']:.1%})"


def confirmed(v: dict | None) -> bool:
  """A regression: slower, on a comparable machine, and slower again on a fresh sample (pairs timed after the
  verdict was made, judged on their own: never the data that chose the row)."""
  if not v or v.get("verdict") != "slower" or not v.get("judged", False):
    return False
  return v.get("recheck", {}).get("verdict") == "slower"
