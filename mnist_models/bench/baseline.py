"""Stored baselines: reading pytest-benchmark's saved runs safely, and the in-run ratio gate."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mnist_models.bench.table import reference_ratios

SAVE_COMMAND = "pytest --benchmark-only --benchmark-save=baseline"
# Compile latency is reported, not gated: 3 noisy rounds. data_parallel rows are over jax-1dev, so a
# framework's own N-device/1-device ratio and the cross-framework one are both guarded.
GATED_GROUPS = ("train_step", "eval_step", "epoch", "data_parallel")


class BaselineError(ValueError):
  """A baseline is missing, malformed or does not match the suite; the message says what to run."""


def load_baseline(path: str | Path) -> dict:
  """Reads a saved pytest-benchmark run; checks it has the benchmarks and the ratio table we need."""
  path = Path(path)
  if not path.is_file():
    raise BaselineError(f"no baseline at {path}; make one on this machine with: {SAVE_COMMAND}")
  try:
    doc = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise BaselineError(f"{path} is not valid JSON (truncated or corrupt?): {e}; restore it with "
                        f"`git checkout -- {path}` or make a new one with: {SAVE_COMMAND}") from e
  rows = doc.get("comparison", {}).get("rows") if isinstance(doc, dict) else None
  if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) or not isinstance(rows, list):
    raise BaselineError(f"{path} is not a baseline saved by this suite (needs 'benchmarks' and 'comparison.rows'); "
                        f"make one with: {SAVE_COMMAND}")
  for row in rows:
    if not {"group", "variant", "batch_size", "min", "median"} <= set(row):
      raise BaselineError(f"{path}: malformed comparison row {row}; make a new baseline with: {SAVE_COMMAND}")
  return doc


def row_key(row: dict) -> str:
  """'train_step/keras-graph/b64': the name a ratio is stored under."""
  return f"{row['group']}/{row['variant']}/b{row['batch_size']}"


def ratios(rows: list[dict], reference: dict[str, str], stat: str = "min") -> dict[str, float]:
  """Each gated row's `stat` time divided by its group's reference at the same batch size.

  The minimum is the default: it is the least disturbed by other work on a shared machine.
  """
  return {row_key(r): ratio for r, ratio in zip(rows, reference_ratios(rows, reference, stat))
          if r["group"] in GATED_GROUPS and ratio is not None and r["variant"] != reference[r["group"]]}


def gate_title(count: int, tolerance: float) -> str:
  return f"ratio gate: {count} in-run ratios (min times) vs the baseline's, tolerance x{1 + tolerance:.2f} either way"


def gate_listing(stored: dict[str, float], current: dict[str, float]) -> str:
  """One line per ratio of this run: its key, the baseline's value and this run's."""
  width = max(map(len, current), default=0)
  return "\n".join(f"  {key:<{width}} baseline {f'{stored[key]:.3f}' if key in stored else '-':>6}  now {current[key]:.3f}"
                   for key in sorted(current))


def compare_ratios(stored: dict[str, float], current: dict[str, float], tolerance: float) -> list[str]:
  """Problems: a ratio that moved by more than a factor (1 + tolerance) either way, or a benchmark set that differs."""
  problems = []
  missing, extra = sorted(set(stored) - set(current)), sorted(set(current) - set(stored))
  if missing or extra:
    problems.append(f"the baseline's benchmarks do not match this run (missing now: {missing}, new: {extra}); "
                    f"run the whole default suite, or make a new baseline with: {SAVE_COMMAND}")
  for key in sorted(set(stored) & set(current)):
    change = current[key] / stored[key]
    if abs(math.log(change)) > math.log1p(tolerance):
      variant, reference = key.split("/")[1], "its group's JAX reference"
      side = (f"{variant} got slower relative to {reference}" if change > 1
              else f"{reference} got slower relative to {variant}")
      problems.append(f"{key}: ratio {stored[key]:.3f} -> {current[key]:.3f} ({change:.2f}x): {side}")
  return problems
