"""Counts the verdicts of saved runs: `python benchmarks/tally_verdicts.py RUN.json ...` (benchmarks/alternate.sh).

One line per run: how many benchmarks were judged slower, faster, undecided and same (information-only verdicts
apart), and which were slower; a slower one that its visits or fresh sample confirmed fails the run.
"""

import json
import sys

from mnist_models.bench import verdict


def tally(path: str) -> str:
  """One run's line: its verdicts by kind, then its slower benchmarks (confirmed ones marked '!')."""
  benches = json.load(open(path))["benchmarks"]
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


if __name__ == "__main__":
  print("\n".join(tally(path) for path in sys.argv[1:]))
