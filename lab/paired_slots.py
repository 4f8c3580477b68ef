"""What pairing the sides' runs by slot does to a side-by-side interval, on committed sessions (issue 48's third lever).

  python lab/paired_slots.py docs/notebook/runs/side_by_side_fixed.json docs/notebook/runs/side_by_side_windows.json

The sessions of lab/side_by_side_windows.py visit every side once a round (A A2 B5 ..., the order reversed every
other round), so a round's runs are neighbours in time. For each window of N rounds, B's runs are judged against A's
two ways, at 99%: Welch's interval of the difference of the two sides' means (the command's `verdict.judge_runs`),
and the paired interval of the mean of the per-round differences (Student's t with N-1 degrees of freedom: the
machine's drift between rounds falls on both sides of a pair and cancels). Rounds where either run was busy (others
took more than verdict.BUSY_CPUS) are left out of both. Printed per side and row: the median half-width of each
interval over the windows, and how often each reads slower and faster (beyond the side-by-side threshold, 3%).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from mnist_models.bench import verdict


def paired(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float, float]:
  """(low, high, estimate) of mean(b - a), the runs paired by round."""
  d = b - a
  half = float(stats.t.ppf((1 + confidence) / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
  return float(d.mean() - half), float(d.mean() + half), float(d.mean())


def windows(session: dict, side: str, key: str, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """(A's, side's) statistics of `key` in each window of `size` quiet rounds, in order, not overlapping."""
  quiet = [
    (a[key]["stat"], b[key]["stat"])
    for a, b in zip(session["runs"]["A"], session["runs"][side], strict=True)
    if key in a and key in b and max(a[key]["others_cpu"] or 0, b[key]["others_cpu"] or 0) <= verdict.BUSY_CPUS
  ]
  return [
    (np.array([x for x, _ in quiet[i : i + size]]), np.array([y for _, y in quiet[i : i + size]]))
    for i in range(0, len(quiet) - size + 1, size)
  ]


def compare(session: dict, side: str, key: str, size: int) -> dict:
  """Both intervals over every window: median half-widths (as relative changes) and verdict counts."""
  out = {"windows": 0, "welch": [], "paired": [], "calls": {"welch": [], "paired": []}}
  for a, b in windows(session, side, key, size):
    out["windows"] += 1
    for name, (low, high, est) in (
      ("welch", verdict._welch(a, b, verdict.CONFIDENCE)),
      ("paired", paired(a, b, verdict.CONFIDENCE)),
    ):
      out[name].append((np.expm1(high) - np.expm1(low)) / 2)
      out["calls"][name].append(verdict.decide(*np.expm1([est, low, high]), verdict.SIDE_BY_SIDE_THRESHOLD))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("sessions", nargs="+", type=Path, help="windows.json files of lab/side_by_side_windows.py")
  parser.add_argument("--size", type=int, default=10, help="rounds a window (the command's visits a side)")
  args = parser.parse_args()
  for path in args.sessions:
    session = json.loads(path.read_text())
    for side in [s for s in session["runs"] if s != "A"]:
      for key in sorted(session["runs"]["A"][0]):
        c = compare(session, side, key, args.size)
        if not c["windows"]:
          continue
        tallies = {
          name: f"{calls.count('slower')} slower, {calls.count('faster')} faster, {calls.count('same')} same"
          for name, calls in c["calls"].items()
        }
        print(
          f"{path.name} {side} {key}: {c['windows']} windows of {args.size}; half-width median "
          f"Welch +-{np.median(c['welch']):.1%}, paired +-{np.median(c['paired']):.1%}; "
          f"Welch {tallies['welch']}; paired {tallies['paired']}"
        )


if __name__ == "__main__":
  main()
