"""Counts the verdicts of saved runs: `python lab/tally_verdicts.py RUN.json ...` (lab/alternate.sh),
or of side-by-side reports (`OUT/report.json` of `mnist_models.bench.upgrade`): then also each row's change.

One line per run: how many benchmarks were judged slower, faster, undecided and same (information-only verdicts
apart), and which were slower; a slower one that its visits or fresh sample confirmed fails the run.
"""

import json
import sys
from pathlib import Path

from mnist_models.bench import verdict


def tally(path: str) -> str:
  """One run's line: its verdicts by kind, then its slower benchmarks (confirmed ones marked '!')."""
  doc = json.loads(Path(path).read_text())
  if "rows" in doc:
    return tally_side_by_side(path, doc)
  benches = doc["benchmarks"]
  judged = [(b["group"], b["extra_info"]) for b in benches if "verdict" in b["extra_info"]]
  counted = [(g, e) for g, e in judged if e["verdict"].get("judged", True)]
  kinds = [e["verdict"]["verdict"] for _, e in counted]
  slower = [
    f"{g}/{e['variant']}/b{e['batch_size']}{'!' * verdict.confirmed(e['verdict'])}"
    for g, e in counted
    if e["verdict"]["verdict"] == "slower"
  ]
  counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("slower", "faster", "undecided", "same"))
  return f"{path}: {counts}, {len(judged) - len(counted)} information only; slower: {', '.join(slower) or '-'}"


def tally_side_by_side(path: str, doc: dict) -> str:
  """A side-by-side report's line: its verdicts by kind, busy rows apart, then each row's verdict and change."""
  rows = [r for r in doc["rows"] if not r["busy"]]
  kinds = [r["verdict"]["verdict"] for r in rows]
  counts = ", ".join(f"{kinds.count(k)} {k}" for k in ("slower", "faster", "undecided", "same"))
  each = "; ".join(f"{r['key']} {r['verdict']['verdict']} {r['verdict']['change']:+.1%}" for r in rows)
  return f"{path}: {counts}, {len(doc['rows']) - len(rows)} information only (busy); {each}"


if __name__ == "__main__":
  print("\n".join(tally(path) for path in sys.argv[1:]))
