"""Timing verdicts: each benchmark paired with a fixed yardstick in time, and compared with a baseline by interval.

Every timed round of a benchmark is preceded by one call of a yardstick that no framework touches (a
numpy matmul), so both see the same moment of a shared machine; a round's sample is the log of the
ratio benchmark / yardstick. A verdict compares the median sample of this run with the baseline's:
the change as a factor, with a bootstrap interval, judged against a noise threshold the way
criterion.rs does (slower or faster only when the whole interval lies beyond the threshold; the same
only when it lies within it; otherwise undecided, and the caller may take more pairs).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

YARDSTICK = "numpy float32 matmul 512x512x512"
THRESHOLD = 0.075  # changes within 7.5% count as noise: what unchanged runs drifted by (docs/methodology.md)
CONFIDENCE = 0.95
TARGET_S = 2.0  # seconds of pairs a benchmark takes before its verdict
CAP_S = 8.0  # ... and at most, adding pairs while its verdict is undecided
MIN_PAIRS, MAX_PAIRS = 5, 400


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


def pairs_for(seconds_per_pair: float, target_s: float = TARGET_S) -> int:
  """How many pairs fit in `target_s`, within [MIN_PAIRS, MAX_PAIRS]."""
  return int(min(MAX_PAIRS, max(MIN_PAIRS, math.ceil(target_s / seconds_per_pair))))


def log_ratios(times: list[float], yardstick_times: list[float]) -> np.ndarray:
  """Per-pair log(benchmark / yardstick); the two lists in the same order, as long as each other."""
  times, yard = np.asarray(times, np.float64), np.asarray(yardstick_times, np.float64)
  if times.shape != yard.shape or times.ndim != 1:
    raise ValueError(f"need as many benchmark times as yardstick times, got {times.shape} and {yard.shape}")
  return np.log(times / yard)


def change(base: Any, now: Any, confidence: float = CONFIDENCE, resamples: int = 2000,
           seed: int = 0) -> tuple[float, float, float]:
  """(change, low, high): now's median log-ratio over base's as a relative change (+0.1 = 10% slower).

  The interval is a percentile bootstrap of the difference of the two medians, each sample resampled
  on its own (the runs are independent; within a run the pairs are what removes the machine's phases).
  """
  base, now = np.asarray(base, np.float64), np.asarray(now, np.float64)
  for name, sample in (("baseline", base), ("this run", now)):
    if sample.ndim != 1 or len(sample) < 2 or not np.isfinite(sample).all():
      raise ValueError(f"{name}'s samples must be at least 2 finite numbers, got {sample[:5]}... ({sample.size})")
  rng = np.random.default_rng(seed)
  diffs = (np.median(rng.choice(now, (resamples, len(now))), axis=1)
           - np.median(rng.choice(base, (resamples, len(base))), axis=1))
  low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
  return tuple(float(np.expm1(x)) for x in (np.median(now) - np.median(base), low, high))


def decide(low: float, high: float, threshold: float = THRESHOLD) -> str:
  """'slower' / 'faster' when the whole interval is beyond the threshold (either way), 'same' within it."""
  up, down = threshold, 1 / (1 + threshold) - 1  # symmetric as factors: x1.05 and /1.05
  if low > up:
    return "slower"
  if high < down:
    return "faster"
  if low >= down and high <= up:
    return "same"
  return "undecided"


def drift(samples: Any, min_pairs: int = 10) -> float:
  """How far a run's own samples moved between its first and second half, as a relative change (0 if < min_pairs).

  Some benchmarks have phases the yardstick does not share (measured: jax-jit-plain moved 9% within
  one run while jax-jit moved 0.1%); none can be judged finer than it moves within a run.
  """
  samples = np.asarray(samples, np.float64)
  half = len(samples) // 2
  if len(samples) < min_pairs:
    return 0.0
  return float(abs(np.expm1(np.median(samples[:half]) - np.median(samples[half:]))))


def judge(base: Any, now: Any, threshold: float = THRESHOLD) -> dict:
  """The verdict of `now`'s samples against `base`'s: what extra_info and the summary show.

  The threshold used is the larger of `threshold` and either run's own drift (`drift`).
  """
  est, low, high = change(base, now)
  used = max(threshold, drift(base), drift(now))
  return {"verdict": decide(low, high, used), "change": est, "low": low, "high": high,
          "pairs": len(now), "baseline_pairs": len(base), "threshold": used}


def sample_until_decided(verdict: Callable[[], dict], more: Callable[[int], None], pairs: int,
                         seconds_per_pair: float, cap_s: float = CAP_S) -> dict:
  """Sequential sampling: while the verdict is undecided and `cap_s` allows, `more(n)` pairs, then judge again."""
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
  """'slower by 11.8% (95% CI +9.5%..+14.0%; 120 pairs vs 100, threshold 7.5%)'."""
  amount = {"slower": f"slower by {v['change']:.1%}", "faster": f"faster by {-v['change'] / (1 + v['change']):.1%}",
            "same": "same", "undecided": f"undecided ({v['change']:+.1%})"}[v["verdict"]]
  return (f"{amount} (95% CI {v['low']:+.1%}..{v['high']:+.1%}; {v['pairs']} pairs vs {v['baseline_pairs']}, "
          f"threshold {v['threshold']:.1%})")


# What must match for timings to be judged: the same machine, set up the same way. Versions may differ
# (an upgrade is what a verdict is for); they are reported beside the verdicts.
MACHINE_KEYS = ("cpu_brand", "cpu_features", "cpu_count", "pinned_cpus", "tf_onednn_enabled", "jax_backend",
                "jax_device_kind", "blas_threads", "env")


def machine_key(machine_info: dict) -> dict:
  """The facts of a saved run's machine_info that make its timings comparable."""
  cpu = machine_info.get("cpu") or {}
  flags = set(cpu.get("flags") or ())
  return {"cpu_brand": cpu.get("brand_raw"), "cpu_features": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "amx_tile"}),
          "cpu_count": machine_info.get("cpu_count"), "pinned_cpus": len(machine_info.get("cpu_affinity") or ()),
          **{k: machine_info.get(k) for k in MACHINE_KEYS[4:]}}


def differences(base: dict, now: dict, keys: tuple[str, ...] | None = None) -> list[str]:
  """'name: baseline -> now' for each key that differs."""
  return [f"{k}: {base.get(k)} -> {now.get(k)}" for k in (keys or sorted(set(base) | set(now))) if base.get(k) != now.get(k)]
