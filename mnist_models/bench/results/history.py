"""Benchmarks across saved runs.

  python -m mnist_models.bench.results.history RUN_OR_FOLDER... [--bench KEY] [--out DIR]

A folder (pytest-benchmark's storage, `.benchmarks/<machine>/`) gives its saved runs in their
numbered order (0001_, 0002_, ...); files are taken in the order given. For each chosen benchmark
(`group/variant/bBATCH`; default: HISTORY_KEYS) it prints, run by run, the median with the quartiles
of the timed rounds and the ratio to the group's reference in that run, and marks the runs whose
machine (`M`) or versions (`V`) differ from the first run's (their timings do not compare with it)
and those a verdict flagged (`!`: slower, confirmed by its fresh sample). `--out DIR` also draws
history.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_models.bench import comparability
from mnist_models.bench.baseline import BaselineError, benchmarks_by_key, load_baseline, row_key
from mnist_models.bench.table import ratio_cell

# Each group's reference and the main variant of each framework.
HISTORY_KEYS = (
  "train_step/jax-jit/b64",
  "train_step/nnx-jit/b64",
  "train_step/keras-graph/b64",
  "train_step/keras-jax/b64",
  "eval_step/jax-jit/b64",
  "epoch/jax-loop/b64",
  "epoch/keras-fit-graph/b64",
  "compile/jax-jit/b64",
)


def run_files(paths: list[str | Path]) -> list[Path]:
  """The saved runs named: a folder stands for its *.json files in name order (pytest-benchmark numbers them)."""
  files = []
  for path in map(Path, paths):
    files += sorted(path.glob("*.json")) if path.is_dir() else [path]
  if not files:
    raise BaselineError(
      f"no saved runs in {', '.join(map(str, paths))}; save some with: pytest --benchmark-only --benchmark-save=NAME"
    )
  return files


def history(docs: list[tuple[str, dict]], keys: tuple[str, ...] = HISTORY_KEYS) -> list[dict]:
  """One entry per saved run (name, doc), in order: its label, what differs from the first run, and per key
  (where the run has it) median, q1, q3 (seconds), ratio to its group's reference, and whether it was flagged."""
  first = docs[0][1].get("machine_info", {})
  out = []
  for name, doc in docs:
    info, commit = doc.get("machine_info", {}), doc.get("commit_info", {})
    rows = {row_key(r): r for r in doc["comparison"]["rows"]}
    benches = benchmarks_by_key(doc)
    points = {}
    for key in keys:
      if key in rows:
        stats, found = benches.get(key, {}).get("stats", {}), rows[key]
        v = benches.get(key, {}).get("extra_info", {}).get("verdict") or {}
        points[key] = {
          "median": found["median"],
          "q1": stats.get("q1", found["median"]),
          "q3": stats.get("q3", found["median"]),
          "ratio": found.get("ratio"),
          "flagged": v.get("verdict") == "slower"
          and v.get("judged", True)
          and v.get("recheck", {}).get("verdict") == "slower",
        }
    out.append(
      {
        "label": f"{name} {str(commit.get('id', '?'))[:7]} {str(doc.get('datetime', '?'))[:10]}",
        "machine_differs": bool(comparability.machine_differences(first, info)),
        "versions_differ": first.get("versions") != info.get("versions"),
        "points": points,
      }
    )
  return out


def format_history(entries: list[dict], keys: tuple[str, ...] = HISTORY_KEYS) -> str:
  """A text table: one block per benchmark, one line per run."""
  lines = []
  for key in keys:
    seen = [e for e in entries if key in e["points"]]
    if not seen:
      continue
    lines.append(f"{key}  (median ms [q1..q3], ratio to the group's reference)")
    for e in seen:
      p = e["points"][key]
      marks = (
        ("M" if e["machine_differs"] else " ") + ("V" if e["versions_differ"] else " ") + ("!" if p["flagged"] else " ")
      )
      ratio = ratio_cell(p)
      lines.append(
        f"  {marks} {e['label']:<40} {1e3 * p['median']:>10.2f} [{1e3 * p['q1']:.2f}..{1e3 * p['q3']:.2f}]  {ratio}"
      )
  lines.append("M: another machine or setup than the first run; V: other versions; !: flagged slower (confirmed)")
  return "\n".join(lines)


def plot_history(entries: list[dict], keys: tuple[str, ...], out: Path) -> Path:
  """history.png: per benchmark, the median (whiskers: quartiles) run by run; hollow markers for runs on another
  machine or versions, red for flagged ones."""
  from mnist_models.bench.results.figures import pyplot, save

  plt = pyplot()
  keys = [k for k in keys if any(k in e["points"] for e in entries)]
  fig, axes = plt.subplots(
    len(keys), 1, figsize=(max(6.0, 1.0 + 0.9 * len(entries)), 1.9 * len(keys)), squeeze=False, sharex=True
  )
  for ax, key in zip(axes[:, 0], keys, strict=True):
    for x, e in enumerate(entries):
      p = e["points"].get(key)
      if p is None:
        continue
      other = e["machine_differs"] or e["versions_differ"]
      color = "tab:red" if p["flagged"] else "tab:blue"
      ms = 1e3 * p["median"]
      ax.errorbar(
        x,
        ms,
        yerr=[[ms - 1e3 * p["q1"]], [1e3 * p["q3"] - ms]],
        fmt="o",
        capsize=3,
        color=color,
        markerfacecolor="white" if other else color,
      )
      if p["ratio"]:
        ax.annotate(ratio_cell(p), (x, ms), textcoords="offset points", xytext=(6, 2), fontsize=7)
    ax.set_ylabel("ms")
    ax.set_title(key, fontsize=9)
    ax.grid(alpha=0.3)
  axes[-1, 0].set_xticks(range(len(entries)), [e["label"] for e in entries], rotation=30, ha="right", fontsize=7)
  fig.text(
    0.01,
    0.005,
    "median, whiskers: quartiles of the timed rounds; label: ratio to the group's reference; "
    "hollow: another machine or versions than the first run; red: flagged slower",
    fontsize=7,
    color="dimgray",
  )
  fig.tight_layout(rect=(0, 0.02, 1, 1))
  return save(fig, out / "history.png")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m mnist_models.bench.results.history",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("runs", nargs="+", help="saved runs (JSON files) or folders of them, oldest first")
  parser.add_argument(
    "--bench",
    action="append",
    metavar="GROUP/VARIANT/bBATCH",
    help=f"a benchmark to follow (repeatable; default: {', '.join(HISTORY_KEYS)})",
  )
  parser.add_argument("--out", type=Path, help="also draw history.png in this folder (needs matplotlib)")
  args = parser.parse_args(argv)
  keys = tuple(args.bench or HISTORY_KEYS)
  try:
    docs = [(path.stem, load_baseline(path)) for path in run_files(args.runs)]
  except BaselineError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  entries = history(docs, keys)
  if not any(e["points"] for e in entries):
    print(
      f"error: none of {', '.join(keys)} is in these runs; name benchmarks as group/variant/bBATCH", file=sys.stderr
    )
    return 2
  print(format_history(entries, keys))
  if args.out:
    print(f"wrote {plot_history(entries, keys, args.out)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
