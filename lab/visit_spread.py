"""Where a side-by-side run's spread comes from: each run (process) of each side, each of its visits' lower quartile
of log-ratios (the verdicts' statistic), and the spread between runs against the spread within them.

  python lab/visit_spread.py .sides/reports/STAMP/report.json [--json OUT.json]

The runs' saved files must still be where the report names them (`--json` keeps the few numbers that matter).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from mnist_models.bench import baseline, verdict


def spread(report: dict) -> dict:
  """{key: {side: [[visit quartile, ...] per run]}} from the runs a side-by-side report names."""
  out: dict = {}
  for side, paths in zip("AB", report["runs"], strict=True):
    for path in paths:
      for key, visits in baseline.paired_samples(json.loads(Path(path).read_text())).items():
        quartiles = [round(float(np.quantile(v, verdict.QUANTILE)), 4) for v in verdict.as_visits(visits)]
        out.setdefault(key, {}).setdefault(side, []).append(quartiles)
  return out


def lines(found: dict) -> list[str]:
  out = []
  for key, sides in sorted(found.items()):
    first = np.array([run[0] for runs in sides.values() for run in runs])
    later = np.array([q for runs in sides.values() for run in runs for q in run[1:]])
    out.append(
      f"{key}: sd between runs of the first visit {np.std(first, ddof=1):.1%}, revisits above the run's first visit "
      f"by more than 5%: {int(np.sum(later - np.repeat(first, 3) > np.log(1.05)))} of {later.size}"
    )
    for side, runs in sides.items():
      out += [f"  {side} " + " ".join(f"{q:.3f}" for q in run) for run in runs]
  return out


if __name__ == "__main__":
  parser = argparse.ArgumentParser()
  parser.add_argument("report")
  parser.add_argument("--json")
  args = parser.parse_args()
  found = spread(json.loads(Path(args.report).read_text()))
  print("\n".join(lines(found)))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(found, f, indent=1)
