"""Two sides measured side by side, in one time window, and B judged against A.

  python -m mnist_models.bench.side_by_side --a "jax==0.4.31 jaxlib==0.4.31" --b "jax==0.4.33 jaxlib==0.4.33"
  python -m mnist_models.bench.side_by_side --b "XLA_FLAGS=..." -- benchmarks/test_bench_steps.py -k jit

Each side (mnist_models.bench.sides: pins, a git revision, environment settings) is built first; then the
benchmarks run in visits that alternate A B B A A B ... (each a saved pytest run), so that the machine's slow
phases fall on both sides alike, as asv's interleaved rounds and duet benchmarking do. B's visits are judged
against A's with the suite's verdicts (pairs with the yardstick, visits, A's runs as a pooled baseline, the busy
meter); with them the fingerprints' differences and the compile counts' (tests/test_recompilation.py on each
side). Rows the change cannot touch (the Keras-on-TensorFlow rows of a jax-only change, the JAX rows of a
TensorFlow/Keras one) are the control: if one moves, the report says the machine moved, not the change. A row
read slower or faster is timed again, alone with the others that moved, in fresh alternating visits
(--recheck-visits), and its finding stands only where the recheck reads it the same way: one row's chance reading
among a suite's thirty neither fails the command nor, by seeming to move a control, hides a real slowdown. The
report goes to the terminal, to Markdown (--summary, and $GITHUB_STEP_SUMMARY when set) and to JSON beside the
runs. Exit status: 0, or 1 when a row the change can touch is confirmed slower, its controls held still and the
machine was quiet; 2 when a side cannot be built or its suite fails (nothing is judged).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from mnist_models.bench import baseline, comparability, fingerprint, verdict
from mnist_models.bench.compile_counts import count_changes, load_stored_counts
from mnist_models.bench.sides import CACHE, Side, SideError, knows, prepare_all, record_counts, visit

DEFAULT_ARGS = ("benchmarks", "-m", "not extended", "--ignore=benchmarks/test_bench_compile.py")
VISITS = 10
RECHECK_VISITS = VISITS  # a moved row's fresh visits a side: as many as it was first judged on
# A quarter of each benchmark's pairs a visit: runs (processes) differ by more than a run's pairs can tell apart
# (jax-jit at batch 64: sd 2.0% between runs, docs/upgrades.md), so many short runs beat a few long ones.
PAIRS_SCALE = 0.25
# What each kind of row runs on: a change of one of these packages or settings can touch it.
_USES = {
  "jax": {"jax", "jaxlib", "flax", "optax", "ml-dtypes", "XLA_FLAGS"},
  "keras-on-jax": {"jax", "jaxlib", "keras", "ml-dtypes", "XLA_FLAGS"},
  "keras-on-tf": {"tensorflow", "keras", "ml-dtypes", "XLA_FLAGS", "TF_*"},
  "torch": {"torch"},
}


SAME_SIDES = "A and B install, set and run the same: this is a control run (every verdict should be 'same')"


@dataclasses.dataclass(frozen=True)
class Row:
  """One benchmark judged: its verdict of B against A, whether it is a control, and what else changed."""

  key: str
  verdict: dict
  control: bool
  busy: bool
  medians: tuple[float, float]  # A's and B's median seconds per call (median over their visits)
  program: list[str]  # the fingerprint's changes, A -> B
  recheck: dict | None = None  # the verdict of its fresh visits, where it was read to move

  @property
  def moved(self) -> bool:
    """Read slower or faster, and read so again by its recheck where it had one."""
    first = self.verdict["verdict"]
    return first in ("slower", "faster") and (self.recheck is None or self.recheck["verdict"] == first)

  @property
  def held(self) -> str:
    """What its recheck made of the first reading: 'confirmed' or 'not confirmed' ('' where it had none)."""
    return "" if self.recheck is None else "confirmed" if self.moved else "not confirmed"

  def rechecked(self, again: Row) -> Row:
    """This row with `again`'s verdict as its recheck (busy if either reading was)."""
    return dataclasses.replace(self, recheck=again.verdict, busy=self.busy or again.busy)


def uses(extra_info: dict) -> str:
  """What a row runs on (a key of _USES), from its extra_info."""
  framework = extra_info.get("framework")
  if framework == "keras":
    on_jax = extra_info.get("keras_backend") == "jax" or str(extra_info.get("variant", "")).endswith("-jax")
    return "keras-on-jax" if on_jax else "keras-on-tf"
  return framework if framework in _USES else "jax"


def changed(a_info: dict, b_info: dict, a: Side, b: Side) -> set[str] | None:
  """What differs between the sides: package names and setting names; None where everything may be touched (a
  revision of the project, a package or setting no row is known by)."""
  if a.rev != b.rev:
    return None
  versions = comparability.differences(a_info.get("versions") or {}, b_info.get("versions") or {})
  names = {d.key for d in versions}
  names |= {k for k, _ in set(a.settings) ^ set(b.settings)}
  names |= {"pytest arguments"} if a.pytest_args != b.pytest_args else set()
  known = set().union(*_USES.values())
  if any(n not in known and not n.startswith("TF_") for n in names):
    return None
  return names


def is_control(kind: str, names: set[str] | None) -> bool:
  """Whether nothing that changed can touch a row of `kind`."""
  if names is None:
    return False
  touched = _USES[kind]
  return not any(n in touched or (n.startswith("TF_") and "TF_*" in touched) for n in names)


def judge(
  a_docs: list[dict],
  b_docs: list[dict],
  a: Side,
  b: Side,
  threshold: float = verdict.SIDE_BY_SIDE_THRESHOLD,
  busy_cpus: float = verdict.BUSY_CPUS,
) -> list[Row]:
  """Every benchmark both sides timed: B's runs against A's (verdict.judge_runs), each side's runs read as one
  pooled baseline (`baseline.Baseline.of_runs`)."""
  sa, sb = (
    baseline.Baseline.of_runs(side.name, [(f"side {side.name}'s run {i + 1}", doc) for i, doc in enumerate(docs)])
    for side, docs in ((a, a_docs), (b, b_docs))
  )
  names = changed(sa.runs[-1][1].get("machine_info") or {}, sb.runs[-1][1].get("machine_info") or {}, a, b)
  rows = []
  for key in sorted(sa.samples.keys() & sb.samples.keys()):
    info_a, info_b = sa.extra_info(key), sb.extra_info(key)
    fp_a, fp_b = info_a.get("fingerprint"), info_b.get("fingerprint")
    rows.append(
      Row(
        key,
        verdict.judge_runs(sa.samples[key], sb.samples[key], threshold),
        is_control(uses(info_a), names),
        max(sa.others_cpu(key) or 0.0, sb.others_cpu(key) or 0.0) > busy_cpus,
        (_median(a_docs, key), _median(b_docs, key)),
        fingerprint.diff(fp_a, fp_b) if fp_a and fp_b else [],
      )
    )
  return rows


def _median(docs: list[dict], key: str) -> float:
  found = (baseline.benchmarks_by_key(doc).get(key) for doc in docs)
  values = sorted(b["stats"]["median"] for b in found if b)
  return values[len(values) // 2]


def counts_changes(a_counts: dict, b_counts: dict) -> list[str]:
  """Each scenario whose counts differ between the sides: 'name: compiles 2 -> 3'."""
  out = []
  for name in sorted(a_counts.keys() | b_counts.keys()):
    if name not in a_counts or name not in b_counts:
      out.append(f"{name}: only on side {'A' if name in a_counts else 'B'}")
    elif moves := count_changes(a_counts[name], b_counts[name]):
      out.append(f"{name}: " + ", ".join(f"{k} {x} -> {y}" for k, x, y in moves))
  return out


@dataclasses.dataclass
class Report:
  """What the comparison found, and how it was made."""

  a: Side
  b: Side
  same_sides: bool
  rows: list[Row]
  counts: list[str]
  versions: tuple[dict, dict]
  visits: int
  wall_s: float
  runs: tuple[list[str], list[str]]
  rechecked: tuple[list[str], list[str]] = ([], [])  # the moved rows' fresh visits
  built_s: float = 0.0  # of wall_s, building the sides' environments

  @property
  def controls_moved(self) -> list[str]:
    return [r.key for r in self.rows if r.control and r.moved]

  @property
  def regressions(self) -> list[str]:
    """Rows the change can touch, confirmed slower, on a quiet machine whose controls held still."""
    if self.controls_moved:
      return []
    return [r.key for r in self.rows if not r.control and not r.busy and r.moved and r.verdict["verdict"] == "slower"]

  def lines(self) -> list[str]:
    """The report as plain text, one line per finding."""
    out = [
      f"side by side: B judged against A, {self.visits} visits each, alternating; {self._took()}",
      f"  A: {self.a.describe()}  ({_versions(self.versions[0])})",
      f"  B: {self.b.describe()}  ({_versions(self.versions[1])})",
    ]
    out += [f"  {SAME_SIDES}"] if self.same_sides else []
    tally = {v: sum(r.verdict["verdict"] == v for r in self.rows) for v in ("slower", "faster", "same", "undecided")}
    out.append("verdicts: " + ", ".join(f"{n} {v}" for v, n in tally.items()) + f" of {len(self.rows)} judged")
    for r in self.rows:
      mark = " [control]" if r.control else ""
      mark += " [busy machine: information only]" if r.busy else ""
      out.append(f"  {r.key:<36} {verdict.describe(r.verdict)}{mark}")
      if r.recheck:
        stands = "" if r.moved else ": the finding does not stand"
        out.append(f"  {'':<36} recheck, alone: {verdict.describe(r.recheck)} ({r.held}{stands})")
    if self.controls_moved:
      out.append(
        f"the machine moved, not the change: controls {', '.join(self.controls_moved)} moved though nothing that "
        "changed can touch them; timing verdicts are information only: run again on a quiet machine"
      )
    programs = [r for r in self.rows if r.program]
    out.append(
      f"fingerprints: {len(programs)} of {len(self.rows)} programs differ (what the compiler does differently)"
    )
    out += [f"  {r.key}: {', '.join(r.program[:8])}{' ...' if len(r.program) > 8 else ''}" for r in programs]
    out.append(f"compile counts: {len(self.counts)} scenarios differ" + (":" if self.counts else ""))
    out += [f"  {c}" for c in self.counts]
    out.append(f"REGRESSIONS: {', '.join(self.regressions)}" if self.regressions else "no regression confirmed")
    return out

  def _took(self) -> str:
    """'47.7 min (4.5 of them building the sides; a recheck of 2 rows)'."""
    parts = [f"{self.built_s / 60:.1f} of them building the sides"] if self.built_s >= 30 else []
    moved = sum(r.recheck is not None for r in self.rows)
    parts += [f"a recheck of {moved} row{'s' * (moved > 1)}"] if moved else []
    return f"{self.wall_s / 60:.1f} min" + (f" ({'; '.join(parts)})" if parts else "")

  def markdown(self) -> str:
    """The report as Markdown: sides, a table of verdicts, the programs and counts that differ."""
    head = [
      "## Side by side: B judged against A",
      "",
      f"- A: {self.a.describe()} ({_versions(self.versions[0])})",
      f"- B: {self.b.describe()} ({_versions(self.versions[1])})",
      f"- {self.visits} visits each, alternating; {self._took()}",
      *([f"- {SAME_SIDES}"] if self.same_sides else []),
      "",
      "| benchmark | A median | B median | verdict | fingerprint changes |",
      "|---|---|---|---|---|",
    ]
    table = [
      f"| {r.key}{' (control)' if r.control else ''} | {r.medians[0] * 1e3:.2f} ms | {r.medians[1] * 1e3:.2f} ms "
      f"| {verdict.describe(r.verdict)}{_recheck_cell(r)} | {', '.join(r.program[:4]) or '-'} |"
      for r in self.rows
    ]
    programs = [f"- `{r.key}`: {', '.join(r.program)}" for r in self.rows if r.program]
    moved = self.controls_moved
    tail = [
      "",
      *([f"**The machine moved, not the change**: controls {', '.join(moved)} moved.", ""] if moved else []),
      f"Fingerprints that differ: {len(programs)} of {len(self.rows)}" + (":" if programs else "."),
      *programs,
      "",
      f"Compile counts that differ: {len(self.counts)}" + (":" if self.counts else "."),
      *[f"- {c}" for c in self.counts],
      "",
      f"**REGRESSIONS**: {', '.join(self.regressions)}" if self.regressions else "No regression confirmed.",
      "",
    ]
    return "\n".join([*head, *table, *tail])

  def record(self) -> dict:
    """The report as JSON."""
    return {
      "a": dataclasses.asdict(self.a),
      "b": dataclasses.asdict(self.b),
      "same_sides": self.same_sides,
      "versions": list(self.versions),
      "visits": self.visits,
      "wall_s": self.wall_s,
      "built_s": self.built_s,
      "runs": list(self.runs),
      "rechecked": list(self.rechecked),
      "rows": [dataclasses.asdict(r) for r in self.rows],
      "counts": self.counts,
      "controls_moved": self.controls_moved,
      "regressions": self.regressions,
    }


def _recheck_cell(r: Row) -> str:
  if not r.recheck:
    return ""
  return f"; recheck: {verdict.describe(r.recheck)}, {r.held}"


def _versions(machine_info: dict) -> str:
  v = machine_info.get("versions") or {}
  return ", ".join(f"{k} {v[k]}" for k in ("jax", "flax", "tensorflow", "keras") if k in v)


def order(visits: int) -> list[int]:
  """Which side goes each time, 0 for A and 1 for B: A B B A A B ... (each pair reversed, so that a steady drift
  of the machine falls on both sides alike)."""
  return [side for i in range(visits) for side in ((0, 1) if i % 2 == 0 else (1, 0))]


def run(
  a: Side,
  b: Side,
  root: Path,
  out: Path,
  visits: int,
  pytest_args: list[str],
  counts: bool = True,
  rule: tuple[float, float] = (verdict.SIDE_BY_SIDE_THRESHOLD, verdict.BUSY_CPUS),
  pairs_scale: float = PAIRS_SCALE,
  recheck_visits: int = RECHECK_VISITS,
) -> Report:
  """Builds both sides, then alternates their visits (`pairs_scale` of each benchmark's pairs), records their
  counts (unless not `counts`) and judges B against A by `rule`: (threshold, busy CPUs); the rows that moved are
  timed again, alone, in `recheck_visits` fresh visits a side (none if 0), and judged again."""
  start, sides = time.perf_counter(), (a, b)
  places = prepare_all(list(sides), root)
  built_s = time.perf_counter() - start
  args = [*pytest_args, *_scale_args(places, pairs_scale)]
  saved = alternate(sides, places, out / "runs", args, visits)
  docs = _read(saved)
  rows = judge(*docs, a, b, *rule)
  moved = [r.key for r in rows if r.moved]
  rechecked: tuple[list[Path], list[Path]] = ([], [])
  if moved and recheck_visits:
    print(f"recheck: {', '.join(moved)} moved; timed again, alone, {recheck_visits} visits a side", flush=True)
    rechecked = alternate(sides, places, out / "recheck", [*args, *only(docs[0][-1], moved)], recheck_visits)
    again = {r.key: r for r in judge(*_read(rechecked), a, b, *rule)}
    rows = [r.rechecked(again[r.key]) if r.key in again else r for r in rows]
  recorded = [
    load_stored_counts(record_counts(s, p, out / f"counts_{s.name}.json")) if counts else {}
    for s, p in zip(sides, places, strict=True)
  ]
  return Report(
    a,
    b,
    a.same_as(b, root),
    rows,
    counts_changes(*recorded),
    tuple(d[-1].get("machine_info", {}) for d in docs),
    visits,
    time.perf_counter() - start,
    tuple([str(p) for p in paths] for paths in saved),
    tuple([str(p) for p in paths] for paths in rechecked),
    built_s,
  )


def alternate(sides: tuple[Side, Side], places: list, storage: Path, args: list[str], visits: int) -> tuple[list, list]:
  """`visits` saved runs of each side, in the order `order` gives; their paths, A's and B's."""
  saved: tuple[list[Path], list[Path]] = ([], [])
  for i in order(visits):
    print(f"{storage.name}: visit {len(saved[0]) + len(saved[1]) + 1}/{2 * visits}: side {sides[i].name}", flush=True)
    saved[i].append(visit(sides[i], places[i], storage, args))
  return saved


def _read(saved: tuple[list[Path], list[Path]]) -> list[list[dict]]:
  return [[json.loads(p.read_text()) for p in paths] for paths in saved]


def only(doc: dict, keys: list[str]) -> list[str]:
  """pytest arguments that leave, of the benchmarks `doc` timed, those of `keys` alone: a --deselect for each other
  one's node id (pytest's own option, which every revision of the suite has)."""
  return [f"--deselect={b['fullname']}" for key, b in baseline.benchmarks_by_key(doc).items() if key not in keys]


def _scale_args(places: list, pairs_scale: float) -> list[str]:
  """--bench-pairs-scale for both sides, or for neither where a side's revision predates it (both timed alike)."""
  if pairs_scale == 1 or not all(knows(p, "--bench-pairs-scale") for p in places):
    if pairs_scale != 1:
      print("a side's revision has no --bench-pairs-scale: both sides take their full pairs", flush=True)
    return []
  return [f"--bench-pairs-scale={pairs_scale}"]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mnist_models.bench.side_by_side", description=__doc__.split("\n")[0])
  parser.add_argument(
    "--a", default="", help="side A: pins, settings, @revision, -- pytest args (default: this environment)"
  )
  parser.add_argument("--b", required=True, help="side B, written as side A")
  parser.add_argument("--visits", type=int, default=VISITS, help=f"runs of each side (at least 3; default {VISITS})")
  parser.add_argument(
    "--pairs-scale", type=float, default=PAIRS_SCALE, help=f"of each benchmark's pairs a run (default {PAIRS_SCALE})"
  )
  parser.add_argument("--summary", help="also write the report as Markdown to this file")
  parser.add_argument("--out", default=str(CACHE / "reports"), help="where the runs and the report are kept")
  parser.add_argument(
    "--threshold",
    type=float,
    default=verdict.SIDE_BY_SIDE_THRESHOLD,
    help=f"changes within it are noise (default {verdict.SIDE_BY_SIDE_THRESHOLD})",
  )
  parser.add_argument(
    "--busy-cpus", type=float, default=verdict.BUSY_CPUS, help="above this load of other processes: information only"
  )
  parser.add_argument(
    "--recheck-visits",
    type=int,
    default=RECHECK_VISITS,
    help=f"fresh visits a side for the rows that moved, timed alone (0: none; default {RECHECK_VISITS})",
  )
  parser.add_argument("--no-counts", action="store_true", help="skip the compile counts (tests/test_recompilation.py)")
  parser.add_argument(
    "pytest_args", nargs="*", help=f"after --, what to run on both sides (default: {' '.join(DEFAULT_ARGS)})"
  )
  args = parser.parse_args(argv)
  if args.visits < 3:
    parser.error(
      f"--visits must be at least 3 (a side's visits are its samples of the machine's moments), got {args.visits}"
    )
  if args.recheck_visits and args.recheck_visits < 3:
    parser.error(f"--recheck-visits must be 0 (no recheck) or at least 3, got {args.recheck_visits}")
  if not 0 < args.pairs_scale <= 10:
    parser.error(f"--pairs-scale must be a factor above 0 and at most 10 (0.25: a quarter), got {args.pairs_scale}")
  root = Path.cwd()
  try:
    a, b = Side.parse("A", args.a), Side.parse("B", args.b)
  except ValueError as e:
    parser.error(str(e))
  out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
  out.mkdir(parents=True)
  try:
    pytest_args = args.pytest_args or list(DEFAULT_ARGS)
    rule = (args.threshold, args.busy_cpus)
    report = run(
      a, b, root, out, args.visits, pytest_args, not args.no_counts, rule, args.pairs_scale, args.recheck_visits
    )
  except (SideError, baseline.BaselineError, KeyboardInterrupt) as e:
    shutil.rmtree(out, ignore_errors=True)  # no half-done comparison is kept, to be judged later
    print(f"nothing judged: {str(e) or 'interrupted'}", file=sys.stderr)
    return 2
  print("\n".join(report.lines()))
  (out / "report.json").write_text(json.dumps(report.record(), indent=1) + "\n")
  for target in filter(None, (args.summary, os.environ.get("GITHUB_STEP_SUMMARY"))):
    with open(target, "a") as f:
      f.write(report.markdown())
  print(f"report: {out / 'report.json'}")
  return 1 if report.regressions else 0


if __name__ == "__main__":
  sys.exit(main())
