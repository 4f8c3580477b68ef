"""What the upgrade command's recheck does to the verdicts of saved window sessions (lab/side_by_side_windows.py):

  python lab/recheck_windows.py docs/notebook/runs/side_by_side_fixed.json ... --size 10

Each session's windows of SIZE runs a side are taken in disjoint pairs (0 and 1, 2 and 3, ...): the first window is
the command's first reading, the second its recheck, a fresh set of runs of the same side and rows timed later.
A finding (slower or faster) stands only where the recheck reads the same, as `upgrade.judge.Row.moved` decides; a
busy window in either is information only, as there. Per side and row: the findings of the first readings, and
those that stand. The recheck the command runs times the moved rows alone; here it is the next window of all the
session's rows, so these counts are the recheck's rule on measured runs, not its own runs.
"""

import argparse
import json
from collections import Counter
from pathlib import Path


def pairs(windows: list[dict]) -> list[tuple[dict, dict]]:
  """(first reading, recheck) of each side: its windows 0 and 1, 2 and 3, ..."""
  by_side: dict[str, list[dict]] = {}
  for w in sorted(windows, key=lambda w: w["window"]):
    by_side.setdefault(w["side"], []).append(w)
  return [(ws[i], ws[i + 1]) for ws in by_side.values() for i in range(0, len(ws) - 1, 2)]


def outcome(first: dict, again: dict) -> tuple[str, str]:
  """(the first reading's finding, what stands after the recheck): 'slower', 'faster', '-' or 'busy'."""
  if first["busy"] or again["busy"]:
    return "busy", "busy"
  found = first["verdict"] if first["verdict"] in ("slower", "faster") else "-"
  return found, found if found != "-" and again["verdict"] == found else "-"


def tally(paths: list[str], size: int) -> Counter:
  """(side, row, first finding, standing finding) -> count, over every session's pairs of windows."""
  counts: Counter = Counter()
  for path in paths:
    for first, again in pairs(json.loads(Path(path).read_text())["windows"][str(size)]):
      for key, row in first["rows"].items():
        if key in again["rows"]:
          counts[(first["side"], key, *outcome(row, again["rows"][key]))] += 1
  return counts


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("sessions", nargs="+", help="windows.json files of side_by_side_windows.py")
  parser.add_argument("--size", type=int, default=10, help="runs a side in a window (one the sessions judged)")
  args = parser.parse_args()
  counts = tally(args.sessions, args.size)
  for side, key in sorted({(s, k) for s, k, _, _ in counts}):
    mine = {(f, st): n for (s, k, f, st), n in counts.items() if (s, k) == (side, key)}
    quiet = sum(n for (f, _), n in mine.items() if f != "busy")
    first = {v: sum(n for (f, _), n in mine.items() if f == v) for v in ("slower", "faster")}
    stand = {v: sum(n for (_, st), n in mine.items() if st == v) for v in ("slower", "faster")}
    print(
      f"{side} {key}: {quiet} quiet pairs; first reading {first['slower']} slower, {first['faster']} faster; "
      f"after the recheck {stand['slower']} slower, {stand['faster']} faster"
    )


if __name__ == "__main__":
  main()
