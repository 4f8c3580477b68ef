"""Two sides measured side by side, in one time window, and B judged against A.

  python -m mnist_models.bench.upgrade --a "jax==0.4.31 jaxlib==0.4.31" --b "jax==0.4.33 jaxlib==0.4.33"
  python -m mnist_models.bench.upgrade --b "XLA_FLAGS=..." -- benchmarks/test_bench_steps.py -k jit

Each side (mnist_models.bench.upgrade.sides: pins, a git revision, environment settings) is built first; then the
benchmarks run in visits that alternate A B B A A B ... (each a saved pytest run), so that the machine's slow phases
fall on both sides alike, as asv's interleaved rounds and duet benchmarking do. B's visits are judged against A's
with the suite's verdicts (pairs with the yardstick, visits, A's runs as a pooled baseline, the busy meter) in two
stages within --minutes (mnist_models.bench.upgrade.budget): every row for --visits visits a side, then the rows
still open, each for the runs its spread plans, and no other row; with them the fingerprints' differences and the
compile counts' (tests/test_recompilation.py on each side). Rows the change cannot touch (the Keras-on-TensorFlow
rows of a jax-only change, the JAX rows of a TensorFlow/Keras one) are the control: if one moves, the report says
the machine moved, not the change. A row read slower or faster is timed again, alone with the others that moved, in
fresh alternating visits (--recheck-visits), and its finding stands only where the recheck reads it the same way:
one row's chance reading among a suite's thirty neither fails the command nor, by seeming to move a control, hides a
real slowdown. The report goes to the terminal, to Markdown (--summary, and $GITHUB_STEP_SUMMARY when set) and to
JSON beside the runs. Exit status (the README's table):
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnist_models.bench import baseline, verdict
from mnist_models.bench.compile_counts import load_stored_counts
from mnist_models.bench.upgrade import budget
from mnist_models.bench.upgrade.environments import prepare_all
from mnist_models.bench.upgrade.judge import Row, Rule, counts_changes, judge, one_side
from mnist_models.bench.upgrade.report import Report
from mnist_models.bench.upgrade.sides import CACHE, Place, Side, SideError, has_option, record_counts, visit

DEFAULT_ARGS = ("benchmarks", "-m", "not extended", "--ignore=benchmarks/test_bench_compile.py")
MINUTES = 15.0  # the default budget, counted once both sides are built
VISITS = 3  # the first stage's visits a side, every row (upgrade.budget: then the open rows, as the budget allows)
# A quarter of each benchmark's pairs a visit: runs (processes) differ by more than a run's pairs can tell apart
# (jax-jit at batch 64: sd 2.0% between runs, docs/upgrades.md), so many short runs beat a few long ones.
PAIRS_SCALE = 0.25


class BudgetError(ValueError):
  """The minutes given cannot hold the comparison's first stage: the message says how many would, as measured."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
  """One comparison, as the command line asks for it: the sides, where it runs and keeps its files, how much it
  measures, and the rule it judges by."""

  a: Side
  b: Side
  root: Path  # the project's checkout the command runs in
  out: Path  # this comparison's folder (main makes a fresh one under --out): its runs, the recheck's, counts, report
  pytest_args: tuple[str, ...] = DEFAULT_ARGS
  minutes: float = MINUTES
  visits: int = VISITS
  recheck_visits: int | None = None  # 0: no recheck; None: as many as the moved rows were judged on
  pairs_scale: float = PAIRS_SCALE
  counts: bool = True
  rule: Rule = Rule(confidence=budget.LOOK_CONFIDENCE)
  summary: str | None = None  # also write the report as Markdown to this file


@dataclasses.dataclass
class Visits:
  """A comparison's saved runs so far (A's and B's paths, each read once as it is added) and what each visit took."""

  saved: tuple[list[Path], list[Path]] = dataclasses.field(default_factory=lambda: ([], []))
  walls: tuple[list[float], list[float]] = dataclasses.field(default_factory=lambda: ([], []))
  loaded: tuple[list[dict], list[dict]] = dataclasses.field(default_factory=lambda: ([], []))

  def add(self, side: int, path: Path, wall: float) -> None:
    self.saved[side].append(path)
    self.walls[side].append(wall)
    self.loaded[side].append(json.loads(path.read_text()))

  def docs(self) -> list[list[dict]]:
    return [list(docs) for docs in self.loaded]

  @property
  def made(self) -> int:
    return len(self.saved[0]) + len(self.saved[1])


def order(visits: int, offset: int = 0) -> list[int]:
  """Which side goes each time, 0 for A and 1 for B: A B B A A B ... (each pair reversed, so that a steady drift
  of the machine falls on both sides alike); `offset` pairs already made."""
  return [side for i in range(offset, offset + visits) for side in ((0, 1) if i % 2 == 0 else (1, 0))]


def run(plan: Plan) -> Report:
  """Builds both sides and records their counts (unless not `plan.counts`); then the first stage, `plan.visits`
  alternating visits a side of every row (`plan.pairs_scale` of each benchmark's pairs), judged; then the rows still
  open, as `plan.minutes` allow (upgrade.budget), judged again on all their runs; the rows that moved are timed
  again, alone, in fresh visits, and judged again."""
  start, sides = time.perf_counter(), (plan.a, plan.b)
  places = prepare_all(list(sides), plan.root)
  built_s = time.perf_counter() - start
  deadline = time.perf_counter() + 60 * plan.minutes
  recorded = [
    load_stored_counts(record_counts(s, p, plan.out / f"counts_{s.name}.json")) if plan.counts else {}
    for s, p in zip(sides, places, strict=True)
  ]
  args = [*plan.pytest_args, *_scale_args(sides, places, plan.pairs_scale)]
  runs = Visits()
  alternate(sides, places, plan.out / "runs", args, plan.visits, runs, check=_first_stage_fits(plan, deadline))
  docs = runs.docs()
  first = judge(*docs, *sides, plan.rule)
  open_rows = [r for r in first if r.verdict["verdict"] == "undecided"]
  planned, target = _second_stage(plan, open_rows, runs, deadline)
  for k in range(plan.visits + 1, max(planned.values(), default=plan.visits) + 1):
    due = [key for key, n in planned.items() if n >= k]
    if time.perf_counter() + 2 * _visit_s(runs, due) > deadline - _reserve(plan):
      print(f"runs: the budget is spent; {len(due)} rows stop at {k - 1} runs a side", flush=True)
      break
    alternate(sides, places, plan.out / "runs", [*args, *only(docs[0][-1], due)], 1, runs, offset=k - 1)
  rows = judge(*runs.docs(), *sides, plan.rule) if planned else first
  rows, rechecked = _recheck(plan, sides, places, args, rows, runs=runs, deadline=deadline)
  return Report(
    a=plan.a,
    b=plan.b,
    same_sides=plan.a.same_as(plan.b, plan.root),
    rows=rows,
    counts=counts_changes(*recorded),
    versions=tuple(d[-1].get("machine_info", {}) for d in docs),
    visits=plan.visits,
    wall_s=time.perf_counter() - start,
    runs=tuple([str(p) for p in paths] for paths in runs.saved),
    rechecked=tuple([str(p) for p in paths] for paths in rechecked.saved),
    built_s=built_s,
    one_side=one_side(*docs),
    minutes=plan.minutes,
    target=target,
  )


def alternate(
  sides: tuple[Side, Side],
  places: list[Place],
  storage: Path,
  args: list[str],
  visits: int,
  into: Visits,
  *,
  check: Callable[[Visits], None] = lambda _: None,
  offset: int = 0,
) -> Visits:
  """`visits` saved runs of each side, in the order `order` gives (after `offset` pairs), added to `into`; `check`
  is called after each visit."""
  for i in order(visits, offset):
    print(f"{storage.name}: visit {into.made + 1}: side {sides[i].name}", flush=True)
    began = time.perf_counter()
    path = visit(sides[i], places[i], storage, args)
    into.add(i, path, time.perf_counter() - began)
    check(into)
  return into


def _first_stage_fits(plan: Plan, deadline: float) -> Callable[[Visits], None]:
  """A check for the first stage: after its first visit, BudgetError if the rest cannot end within `plan.minutes`
  (the smallest budget that would, from that visit's measured time)."""

  def check(runs: Visits) -> None:
    if runs.made != 1:
      return
    wall, left = runs.walls[0][0], 2 * plan.visits - 1
    if time.perf_counter() + left * wall > deadline:
      spent = 60 * plan.minutes - (deadline - time.perf_counter())
      raise BudgetError(
        f"--minutes {plan.minutes:g} cannot hold the first stage ({plan.visits} visits a side of every row, "
        f"{wall:.0f} s a visit here, measured): give --minutes {math.ceil((spent + left * wall) / 60)} or more, "
        "or fewer rows (-- pytest args)"
      )

  return check


def _reserve(plan: Plan) -> float:
  """Seconds of the budget kept for rechecking the rows that move (none without a recheck)."""
  return 0.0 if plan.recheck_visits == 0 else budget.RECHECK_SHARE * 60 * plan.minutes


def _costs(runs: Visits) -> tuple[dict[str, float], float]:
  """(each row's seconds in a visit: its test's, set-up included; a visit's seconds besides its tests), from the
  visits made so far (the tests' times each saved run recorded). A suite that records none: a visit's time spread
  evenly over its rows."""
  costs: dict[str, list[float]] = {}
  besides = []
  for docs, walls in zip(runs.docs(), runs.walls, strict=True):
    for doc, wall in zip(docs, walls, strict=True):
      seconds = doc.get("session", {}).get("test_seconds") or {}
      rows = baseline.benchmarks_by_key(doc)
      for key, bench in rows.items():
        costs.setdefault(key, []).append(seconds.get(bench["fullname"], wall / max(len(rows), 1)))
      besides.append(wall - sum(seconds.values()) if seconds else 0.0)
  return {k: float(np.mean(v)) for k, v in costs.items()}, float(np.mean(besides))


def _visit_s(runs: Visits, keys: list[str]) -> float:
  """What one visit of the rows `keys` takes, by the costs measured so far."""
  costs, besides = _costs(runs)
  return besides + sum(costs.get(k, 0.0) for k in keys)


def _second_stage(
  plan: Plan, open_rows: list[Row], runs: Visits, deadline: float
) -> tuple[dict[str, int], float | None]:
  """The open rows' runs a side, planned to fit the minutes left (upgrade.budget.plan), and their target."""
  if not open_rows:
    return {}, None
  costs, besides = _costs(runs)
  spreads = {r.key: r.verdict["spread"] for r in open_rows}
  left = deadline - _reserve(plan) - time.perf_counter()
  planned, target = budget.plan(spreads, costs, besides, left, plan.visits, plan.rule.threshold)
  if planned:
    print(
      f"runs: {len(planned)} of {len(open_rows)} open rows visited again, up to {max(planned.values())} runs a side, "
      f"planned to within +-{target:.1%}",
      flush=True,
    )
  return planned, target


def _recheck_runs(row: Row, plan: Plan) -> int:
  """A moved row's fresh runs a side: as many as it was judged on, or as its spread plans for the threshold
  (upgrade.budget.runs_for), whichever is more."""
  planned = budget.runs_for(row.verdict["spread"], plan.rule.threshold, plan.visits) or budget.MAX_RUNS
  return max(row.verdict["runs"], planned)


def _recheck(
  plan: Plan,
  sides: tuple[Side, Side],
  places: list[Place],
  args: list[str],
  rows: list[Row],
  *,
  runs: Visits,
  deadline: float,
) -> tuple[list[Row], Visits]:
  """The rows read to move timed again, alone, in fresh visits (`_recheck_runs`, or `plan.recheck_visits`; at least
  3, and no more than the budget holds), and judged again."""
  moved = [r for r in rows if r.read_to_move]
  rechecked = Visits()
  if not moved or plan.recheck_visits == 0:
    return rows, rechecked
  keys = [r.key for r in moved]
  wanted = plan.recheck_visits or max(_recheck_runs(r, plan) for r in moved)
  fits = int((deadline - time.perf_counter()) // (2 * _visit_s(runs, keys)))
  visits = max(3, min(wanted, fits))
  print(f"recheck: {', '.join(keys)} moved; timed again, alone, {visits} visits a side", flush=True)
  alternate(sides, places, plan.out / "recheck", [*args, *only(runs.loaded[0][0], keys)], visits, rechecked)
  again = {r.key: r for r in judge(*rechecked.docs(), *sides, plan.rule)}
  return [r.rechecked(again.get(r.key)) if r.read_to_move else r for r in rows], rechecked


def only(doc: dict, keys: list[str]) -> list[str]:
  """pytest arguments that leave, of the benchmarks `doc` timed, those of `keys` alone: a --deselect for each other
  one's node id (pytest's own option, which every revision of the suite has)."""
  rows = baseline.benchmarks_by_key(doc)
  kept = {b["fullname"] for key, b in rows.items() if key in keys}  # a test of several rows runs if one is kept
  return sorted({f"--deselect={b['fullname']}" for key, b in rows.items() if b["fullname"] not in kept})


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
  p.add_argument(
    "--minutes",
    type=float,
    default=MINUTES,
    help=f"the budget once the sides are built: the open rows get what the first stage leaves (default {MINUTES:g})",
  )
  p.add_argument(
    "--visits", type=int, default=VISITS, help=f"the first stage's runs of each side (at least 3; default {VISITS})"
  )
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
    default=None,
    help="fresh visits a side for the rows that moved, timed alone (0: none; default: as many as they were judged "
    "on, as the budget holds, at least 3)",
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
    minutes=args.minutes,
    visits=args.visits,
    recheck_visits=args.recheck_visits,
    pairs_scale=args.pairs_scale,
    counts=not args.no_counts,
    rule=Rule(args.threshold, args.busy_cpus, budget.LOOK_CONFIDENCE),
    summary=args.summary,
  )


def _problem(args: argparse.Namespace) -> str | None:
  """What is wrong with the options, in one line naming the option; None if nothing."""
  if args.visits < 3:
    return f"--visits must be at least 3 (a side's visits are its samples of the machine's moments), got {args.visits}"
  if not 0 < args.minutes < math.inf:
    return f"--minutes must be a number of minutes above 0, got {args.minutes}"
  if args.recheck_visits is not None and args.recheck_visits != 0 and args.recheck_visits < 3:
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
  except (SideError, BudgetError, baseline.BaselineError, KeyboardInterrupt) as e:
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
