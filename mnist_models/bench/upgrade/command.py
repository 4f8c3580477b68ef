"""Two sides measured side by side, in one time window, and B judged against A.

  python -m mnist_models.bench.upgrade --a "jax==0.4.31 jaxlib==0.4.31" --b "jax==0.4.33 jaxlib==0.4.33"
  python -m mnist_models.bench.upgrade --b "XLA_FLAGS=..." -- benchmarks/test_bench_steps.py -k jit

Each side (mnist_models.bench.upgrade.sides: pins, a git revision, environment settings) is built first; then the
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
runs. Exit status (the README's table):
  0  judged: every row same or faster (or, where programs and counts may change, changed), none slower;
  1  a regression: a row the change can touch confirmed slower by its recheck, its controls still and the machine
     quiet; or a changed program or compile count where they must hold (the same compiler-side versions);
  2  could not run: a side cannot be built, its suite fails, a bad option, an interrupt, a crash (nothing is kept);
  3  inconclusive: rows undecided, unconfirmed or busy, controls moved, rows timed on one side only, or nothing
     judged; the report lists which and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from mnist_models.bench import baseline, verdict
from mnist_models.bench.compile_counts import load_stored_counts
from mnist_models.bench.upgrade.environments import prepare_all
from mnist_models.bench.upgrade.judge import Rule, counts_changes, judge, one_side
from mnist_models.bench.upgrade.report import Report
from mnist_models.bench.upgrade.sides import CACHE, Place, Side, SideError, has_option, record_counts, visit

DEFAULT_ARGS = ("benchmarks", "-m", "not extended", "--ignore=benchmarks/test_bench_compile.py")
VISITS = 10
RECHECK_VISITS = VISITS  # a moved row's fresh visits a side: as many as it was first judged on
# A quarter of each benchmark's pairs a visit: runs (processes) differ by more than a run's pairs can tell apart
# (jax-jit at batch 64: sd 2.0% between runs, docs/upgrades.md), so many short runs beat a few long ones.
PAIRS_SCALE = 0.25


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
  """One comparison, as the command line asks for it: the sides, where it runs and keeps its files, how much it
  measures, and the rule it judges by."""

  a: Side
  b: Side
  root: Path  # the project's checkout the command runs in
  out: Path  # this comparison's folder (main makes a fresh one under --out): its runs, the recheck's, counts, report
  pytest_args: tuple[str, ...] = DEFAULT_ARGS
  visits: int = VISITS
  recheck_visits: int = RECHECK_VISITS  # 0: no recheck
  pairs_scale: float = PAIRS_SCALE
  counts: bool = True
  rule: Rule = Rule()
  summary: str | None = None  # also write the report as Markdown to this file


def order(visits: int) -> list[int]:
  """Which side goes each time, 0 for A and 1 for B: A B B A A B ... (each pair reversed, so that a steady drift
  of the machine falls on both sides alike)."""
  return [side for i in range(visits) for side in ((0, 1) if i % 2 == 0 else (1, 0))]


def run(plan: Plan) -> Report:
  """Builds both sides, then alternates their visits (`plan.pairs_scale` of each benchmark's pairs), records their
  counts (unless not `plan.counts`) and judges B against A by `plan.rule`; the rows that moved are timed again,
  alone, in `plan.recheck_visits` fresh visits a side (none if 0), and judged again."""
  start, sides = time.perf_counter(), (plan.a, plan.b)
  places = prepare_all(list(sides), plan.root)
  built_s = time.perf_counter() - start
  args = [*plan.pytest_args, *_scale_args(sides, places, plan.pairs_scale)]
  saved = alternate(sides, places, plan.out / "runs", args, plan.visits)
  docs = _read(saved)
  rows = judge(*docs, *sides, plan.rule)
  moved = [r.key for r in rows if r.read_to_move]
  rechecked: tuple[list[Path], list[Path]] = ([], [])
  if moved and plan.recheck_visits:
    print(f"recheck: {', '.join(moved)} moved; timed again, alone, {plan.recheck_visits} visits a side", flush=True)
    recheck_args = [*args, *only(docs[0][-1], moved)]
    rechecked = alternate(sides, places, plan.out / "recheck", recheck_args, plan.recheck_visits)
    again = {r.key: r for r in judge(*_read(rechecked), *sides, plan.rule)}
    rows = [r.rechecked(again.get(r.key)) if r.key in moved else r for r in rows]
  recorded = [
    load_stored_counts(record_counts(s, p, plan.out / f"counts_{s.name}.json")) if plan.counts else {}
    for s, p in zip(sides, places, strict=True)
  ]
  return Report(
    a=plan.a,
    b=plan.b,
    same_sides=plan.a.same_as(plan.b, plan.root),
    rows=rows,
    counts=counts_changes(*recorded),
    versions=tuple(d[-1].get("machine_info", {}) for d in docs),
    visits=plan.visits,
    wall_s=time.perf_counter() - start,
    runs=tuple([str(p) for p in paths] for paths in saved),
    rechecked=tuple([str(p) for p in paths] for paths in rechecked),
    built_s=built_s,
    one_side=one_side(*docs),
  )


def alternate(
  sides: tuple[Side, Side], places: list[Place], storage: Path, args: list[str], visits: int
) -> tuple[list, list]:
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


def _scale_args(sides: tuple[Side, Side], places: list[Place], pairs_scale: float) -> list[str]:
  """--bench-pairs-scale for both sides, or for neither where a side's suite does not declare it (both timed
  alike)."""
  if pairs_scale == 1 or all(has_option(s, p, "--bench-pairs-scale") for s, p in zip(sides, places, strict=True)):
    return [] if pairs_scale == 1 else [f"--bench-pairs-scale={pairs_scale}"]
  print("a side's revision has no --bench-pairs-scale: both sides take their full pairs", flush=True)
  return []


def parser() -> argparse.ArgumentParser:
  """The command line: the sides, how much to measure, the rule, and where the report goes."""
  p = argparse.ArgumentParser(prog="python -m mnist_models.bench.upgrade", description=__doc__.split("\n")[0])
  p.add_argument(
    "--a", default="", help="side A: pins, settings, @revision, -- pytest args (default: this environment)"
  )
  p.add_argument("--b", required=True, help="side B, written as side A")
  p.add_argument("--visits", type=int, default=VISITS, help=f"runs of each side (at least 3; default {VISITS})")
  p.add_argument(
    "--pairs-scale", type=float, default=PAIRS_SCALE, help=f"of each benchmark's pairs a run (default {PAIRS_SCALE})"
  )
  p.add_argument("--summary", help="also write the report as Markdown to this file")
  p.add_argument("--out", default=str(CACHE / "reports"), help="where the runs and the report are kept")
  p.add_argument(
    "--threshold",
    type=float,
    default=verdict.SIDE_BY_SIDE_THRESHOLD,
    help=f"changes within it are noise (default {verdict.SIDE_BY_SIDE_THRESHOLD})",
  )
  p.add_argument(
    "--busy-cpus", type=float, default=verdict.BUSY_CPUS, help="above this load of other processes: information only"
  )
  p.add_argument(
    "--recheck-visits",
    type=int,
    default=RECHECK_VISITS,
    help=f"fresh visits a side for the rows that moved, timed alone (0: none; default {RECHECK_VISITS})",
  )
  p.add_argument("--no-counts", action="store_true", help="skip the compile counts (tests/test_recompilation.py)")
  p.add_argument(
    "pytest_args", nargs="*", help=f"after --, what to run on both sides (default: {' '.join(DEFAULT_ARGS)})"
  )
  return p


def plan_of(argv: list[str] | None) -> Plan:
  """The plan the command line asks for; argparse's usage error (exit 2) for one that makes no sense, before anything
  is built or timed."""
  p = parser()
  args = p.parse_args(argv)
  if problem := _problem(args):
    p.error(problem)
  try:
    a, b = Side.parse("A", args.a), Side.parse("B", args.b)
  except ValueError as e:
    p.error(str(e))
  return Plan(
    a=a,
    b=b,
    root=Path.cwd(),
    out=Path(args.out).resolve(),  # a side runs in its own checkout: a relative folder would land there
    pytest_args=tuple(args.pytest_args) or DEFAULT_ARGS,
    visits=args.visits,
    recheck_visits=args.recheck_visits,
    pairs_scale=args.pairs_scale,
    counts=not args.no_counts,
    rule=Rule(args.threshold, args.busy_cpus),
    summary=args.summary,
  )


def _problem(args: argparse.Namespace) -> str | None:
  """What is wrong with the options, in one line naming the option; None if nothing."""
  if args.visits < 3:
    return f"--visits must be at least 3 (a side's visits are its samples of the machine's moments), got {args.visits}"
  if args.recheck_visits != 0 and args.recheck_visits < 3:
    return f"--recheck-visits must be 0 (no recheck) or at least 3, got {args.recheck_visits}"
  if not 0 < args.pairs_scale <= 10:
    return f"--pairs-scale must be a factor above 0 and at most 10 (0.25: a quarter), got {args.pairs_scale}"
  if not 0 < args.threshold < 1:
    return f"--threshold must be a fraction between 0 and 1 (0.03 is 3%), got {args.threshold}"
  if not 0 <= args.busy_cpus < math.inf:
    return f"--busy-cpus must be a number of CPUs, 0 or more, got {args.busy_cpus}"
  if args.summary and not _writable(Path(args.summary)):
    return f"--summary {args.summary}: cannot write there (its folder must exist and be writable)"
  return None


def _writable(path: Path) -> bool:
  folder = path.resolve().parent
  return folder.is_dir() and os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def main(argv: list[str] | None = None) -> int:
  """Runs the comparison the command line plans; its exit status (see the module's doc): 2 and nothing kept when it
  could not run (a side, a bad option, an interrupt, a crash)."""
  plan = plan_of(argv)
  plan.out.mkdir(parents=True, exist_ok=True)
  plan = dataclasses.replace(plan, out=Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=plan.out)))
  try:
    report = run(plan)
  except (SideError, baseline.BaselineError, KeyboardInterrupt) as e:
    return _nothing_judged(plan, str(e) or "interrupted")
  except Exception:  # noqa: BLE001 - whatever broke, no half-done comparison is kept, and 1 means "slower"
    return _nothing_judged(plan, f"the command failed: {traceback.format_exc(limit=-3).strip()}")
  print("\n".join(report.lines()))
  (plan.out / "report.json").write_text(json.dumps(report.record(), indent=1) + "\n")
  for target in filter(None, (plan.summary, os.environ.get("GITHUB_STEP_SUMMARY"))):
    with open(target, "a") as f:
      f.write(report.markdown())
  print(f"report: {plan.out / 'report.json'}")
  return report.exit_status


def _nothing_judged(plan: Plan, why: str) -> int:
  shutil.rmtree(plan.out, ignore_errors=True)  # no half-done comparison is kept, to be judged later
  print(f"nothing judged: {why}", file=sys.stderr)
  return 2
