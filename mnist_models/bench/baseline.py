"""Stored baselines: reading pytest-benchmark's saved runs safely, pooling a baseline's runs, and the samples
its verdicts need (`Baseline`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from mnist_models.bench import comparability
from mnist_models.bench.groups import SUITE_GROUPS, judged

SAVE_COMMAND = "pytest --benchmark-only --benchmark-save=baseline"


class BaselineError(ValueError):
  """A baseline is missing, malformed or does not match the suite; the message says what to run."""


def load_baseline(path: str | Path) -> dict:
  """Reads a saved pytest-benchmark run; checks it has the benchmarks and the ratio table we need."""
  path = Path(path)
  if not path.is_file():
    raise BaselineError(f"no baseline at {path}; make one on this machine with: {SAVE_COMMAND}")
  try:
    doc = json.loads(path.read_text())
  except OSError as e:
    raise BaselineError(f"cannot read the baseline {path}: {e.strerror or e}; check its permissions") from e
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise BaselineError(
      f"{path} is not valid JSON (truncated or corrupt?): {e}; restore it with "
      f"`git checkout -- {path}` or make a new one with: {SAVE_COMMAND}"
    ) from e
  rows = doc.get("comparison", {}).get("rows") if isinstance(doc, dict) else None
  if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) or not isinstance(rows, list):
    raise BaselineError(
      f"{path} is not a baseline saved by this suite (needs 'benchmarks' and 'comparison.rows'); "
      f"make one with: {SAVE_COMMAND}"
    )
  session = doc.get("session") or {}
  if session.get("complete") is False:
    raise BaselineError(
      f"{path} was saved by a run that did not finish cleanly (exit {session.get('exit_status')}: interrupted, or a "
      f"test failed): its timings are not a baseline; remove it and make a new one with: {SAVE_COMMAND}"
    )
  for row in rows:
    if (
      not isinstance(row, dict)
      or not {"group", "variant", "batch_size", "min", "median"} <= set(row)
      or not all(_positive(row[k]) for k in ("min", "median"))
    ):
      raise BaselineError(
        f"{path}: malformed comparison row {row} (needs group, variant, batch_size and positive "
        f"min and median times); make a new baseline with: {SAVE_COMMAND}"
      )
  return doc


def _positive(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def row_key(row: dict) -> str:
  """'train_step/keras-graph/b64': the name a benchmark's verdict is stored and looked up under."""
  return f"{row['group']}/{row['variant']}/b{row['batch_size']}"


def benchmarks_by_key(doc: dict) -> dict[str, dict]:
  """A saved run's benchmarks (pytest-benchmark's entries: stats, extra_info) by row_key; those the suite timed."""
  return {
    row_key({"group": b.get("group"), **b["extra_info"]}): b
    for b in doc.get("benchmarks", [])
    if {"variant", "batch_size"} <= b.get("extra_info", {}).keys()
  }


def paired_samples(
  doc: dict, path: str | Path = "the baseline", groups: tuple[str, ...] = judged(SUITE_GROUPS)
) -> dict[str, list[list[float]]]:
  """row key -> the baseline's per-pair log-ratios to the yardstick (mnist_models.bench.verdict), by visit; the
  judged `groups` only, never a timing saved as broken. A run saved before visits existed is one visit.

  Raises BaselineError if it has none (saved before verdicts existed, or untimed), if a sample is not
  a list of finite numbers or its visits do not add up to it, or if two benchmarks share a key.
  """
  found: dict[str, list[list[float]]] = {}
  for bench in doc["benchmarks"]:
    info = bench.get("extra_info") or {}
    paired = info.get("paired")
    if bench.get("group") not in groups or paired is None or info.get("broken"):  # broken: it compiled, or was wrong
      continue
    if not {"variant", "batch_size"} <= info.keys():
      raise BaselineError(
        f"{path}: a {bench.get('group')} benchmark ({bench.get('name')}) has paired samples but no variant or "
        f"batch_size; make a new baseline with: {SAVE_COMMAND}"
      )
    key = row_key({"group": bench["group"], **info})
    if key in found:
      raise BaselineError(f"{path}: two benchmarks are both {key}; make a new baseline with: {SAVE_COMMAND}")
    found[key] = _visits(paired, key, path)
  if not found:
    raise BaselineError(
      f"{path} has no paired timing samples of a judged group ({', '.join(groups)}): saved before "
      "this suite's verdicts, by a run that timed nothing, or of groups not declared in this run "
      f"(pytest_bench_groups: docs/own-benchmarks.md); make a new one with: {SAVE_COMMAND}"
    )
  return found


def _visits(paired: object, key: str, path: str | Path) -> list[list[float]]:
  """One saved benchmark's `paired` record as its visits' log-ratios; BaselineError if it is malformed."""
  values = paired.get("log_ratios") if isinstance(paired, dict) else None
  if (
    not isinstance(values, list)
    or len(values) < 2
    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
  ):
    raise BaselineError(
      f"{path}: {key} has malformed paired samples (need a list of at least 2 finite numbers); "
      f"make a new baseline with: {SAVE_COMMAND}"
    )
  sizes = paired.get("visits", [len(values)])
  if (
    not isinstance(sizes, list)
    or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)
    or sum(sizes) != len(values)
  ):
    raise BaselineError(
      f"{path}: {key} has malformed visits {str(sizes)[:40]} (need positive counts adding up to its "
      f"{len(values)} samples); make a new baseline with: {SAVE_COMMAND}"
    )
  starts = [sum(sizes[:i]) for i in range(len(sizes))]
  return [values[start : start + n] for start, n in zip(starts, sizes, strict=True)]


def _run_name(path: Path) -> str | None:
  """'baseline' for pytest-benchmark's '0003_baseline.json' (NNNN_name.json); None for a file named otherwise."""
  number, _, name = path.stem.partition("_")
  return name if number.isdigit() and name else None


def _same_code_and_machine(doc: dict, other: dict) -> bool:
  """Whether two saved runs timed the same clean commit with the same versions, machine and setup."""
  commit, other_commit = doc.get("commit_info") or {}, other.get("commit_info") or {}
  info, other_info = doc.get("machine_info") or {}, other.get("machine_info") or {}
  return (
    commit.get("id") is not None
    and commit.get("id") == other_commit.get("id")
    and not commit.get("dirty")
    and not other_commit.get("dirty")
    and comparability.same_setup(info, other_info)
  )


def pooled_runs(path: str | Path, doc: dict) -> list[tuple[Path, dict]]:
  """The baseline at `path` and the runs saved beside it under the same name ('0001_baseline.json',
  '0002_baseline.json', ...) of the same clean commit, versions and machine: the same code measured at other
  moments, pooled by the verdicts. `path` first; just `path` if it is not named as pytest-benchmark saves runs.

  Raises BaselineError if such a sibling is malformed.
  """
  path = Path(path)
  name = _run_name(path)
  runs = [(path, doc)]
  if name is None:
    return runs
  for sibling in sorted(path.parent.glob(f"[0-9]*_{name}.json")):
    if sibling.resolve() != path.resolve() and _run_name(sibling) == name:
      other = load_baseline(sibling)
      if _same_code_and_machine(doc, other):
        runs.append((sibling, other))
  return runs


@dataclasses.dataclass(frozen=True)
class Baseline:
  """A loaded verdict baseline: the run named, the runs pooled with it (`pooled_runs`, the named one first),
  their paired samples by benchmark (row key -> one list of visits per run that timed it) and each run's
  extra_info by benchmark."""

  path: Path
  runs: tuple[tuple[Path, dict], ...]
  samples: dict[str, list[list[list[float]]]]
  extras: tuple[dict[str, dict], ...]  # per run, row key -> extra_info

  @classmethod
  def load(cls, path: str | Path, groups: tuple[str, ...] = judged(SUITE_GROUPS)) -> Baseline:
    """Reads the baseline at `path` and its pooled siblings; only the judged `groups` have samples.

    Raises BaselineError if any of them is malformed.
    """
    return cls.of_runs(path, pooled_runs(path, load_baseline(path)), groups)

  @classmethod
  def of_runs(cls, path: str | Path, runs, groups: tuple[str, ...] = judged(SUITE_GROUPS)) -> Baseline:
    """The runs `runs` ((path, loaded run) pairs, already read) as one baseline named `path`: a pooled baseline's
    runs, or one side's visits of a side-by-side comparison."""
    runs = tuple(runs)
    samples: dict[str, list] = {}
    for run_path, doc in runs:
      for key, visits in paired_samples(doc, run_path, groups).items():
        samples.setdefault(key, []).append(visits)
    extras = tuple({k: b.get("extra_info", {}) for k, b in benchmarks_by_key(doc).items()} for _, doc in runs)
    return cls(Path(path), runs, samples, extras)

  @property
  def machine_info(self) -> dict:
    return self.runs[0][1].get("machine_info") or {}

  def extra_info(self, key: str) -> dict:
    """The named run's extra_info of benchmark `key`; {} if it did not time it."""
    return self.extras[0].get(key, {})

  def others_cpu(self, key: str) -> float | None:
    """The most CPU other processes took while any pooled run timed `key`'s pairs (None where none measured it)."""
    loads = [extras.get(key, {}).get("paired", {}).get("others_cpu") for extras in self.extras]
    return max((x for x in loads if x is not None), default=None)
