"""A run's state, in one object: its results, the baseline they are judged against, and everything judged.

The plugin keeps one `BenchSession` under one stash key. A benchmark's timing (mnist_models.bench.timed)
hands it a `Result`; the session decides what becomes of its pairs (judged now, held for revisits at the
session's end, or rechecked there when slower), and writes the result into the benchmark's extra_info once,
when nothing about it can change any more. The comparison table, the verdicts and the regressions are read
off its results at the end, never patched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

import mnist_models as mm
from mnist_models.bench import comparability, fingerprint, table, timing, verdict
from mnist_models.bench.baseline import Baseline, row_key
from mnist_models.bench.compile_counts import COUNTS_FILE, CountsRecorder
from mnist_models.bench.groups import Group, judged, references
from mnist_models.bench.pairing import Pairing
from mnist_models.bench.processes import Workers

# Two VMs of one kind differ by up to 30% with no change (docs/methodology.md), and nothing but the host tells them
# apart: a baseline from another host is one moment of another machine.
OTHER_HOST = (
  "baseline made on another machine or before a reboot: "
  "time both sides here (python -m mnist_models.bench.upgrade, or baselines saved since boot)"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
  """The command-line options the session reads (mnist_models.bench.plugin defines them)."""

  threshold: float = verdict.THRESHOLD
  busy_cpus: float = verdict.BUSY_CPUS
  baseline_path: str | None = None
  summary_path: str | None = None
  update_counts: bool = False
  counts_file: Path = COUNTS_FILE
  pairs_scale: float = 1.0  # of every benchmark's seconds of pairs


@dataclasses.dataclass
class Result:
  """One benchmark's result, as its timing made it; its pairs may still grow until the session finishes it.

  `info` is what extra_info saves beside the pairs and the verdict; `target` is the benchmark's extra_info,
  written once (`BenchSession._publish`).
  """

  group: str
  info: dict
  target: dict
  median: float | None = None
  min: float | None = None
  broken: bool = False  # the timing itself is wrong (it compiled, or computed the wrong thing): kept out of the table
  pairing: Pairing | None = None

  @property
  def key(self) -> str:
    return row_key({"group": self.group, **self.info})

  @property
  def verdict(self) -> dict | None:
    """Its verdict against the baseline, the fresh sample's with it; None if not judged (or broken)."""
    p = self.pairing
    if self.broken or p is None or p.verdict is None:
      return None
    return {**p.verdict, "recheck": p.recheck} if p.recheck is not None else p.verdict

  def saved(self) -> dict:
    """Its extra_info: `info`, then its pairs and its verdict; a broken timing says so (a baseline never pools it)."""
    paired = {"paired": self.pairing.record()} if self.pairing else {}
    broken = {"broken": True} if self.broken else {}
    return {**self.info, **paired, **broken, **({"verdict": self.verdict} if self.verdict else {})}

  def row(self) -> dict:
    """Its row of the comparison table."""
    return {"group": self.group, **self.saved(), "median": self.median, "min": self.min}


@dataclasses.dataclass(frozen=True)
class ProgramCheck:
  """A compiled program's fingerprint against the baseline's: what changed, and whether that fails the run."""

  key: str
  changes: list[str]
  exact: bool  # same machine and compiler-side versions: any change is a regression


class BenchSession:
  """A run's state: results, baseline, held and rechecked benchmarks, verdicts, programs, the matmul peak, counts.

  Args:
    options: the options read.
    groups: the declared groups (mnist_models.bench.groups): their references and which are judged.
    baseline: the verdict baseline, or None.
    machine_info: this run's machine_info, as pytest-benchmark saves it (asked once, when first needed).
    workers: the session's worker processes.
  """

  def __init__(
    self,
    options: Options,
    groups: dict[str, Group],
    baseline: Baseline | None,
    machine_info: Callable[[], dict],
    workers: Workers,
  ):
    self.options, self.groups, self.baseline, self.workers = options, groups, baseline, workers
    self._machine_info, self._comparison, self._peak = machine_info, None, None
    self.results: list[Result] = []
    self.judged: list[Result] = []  # in the order their verdicts were recorded
    self.programs: list[ProgramCheck] = []
    self.counts = CountsRecorder(update=options.update_counts, stored_file=options.counts_file)
    self._held: list[Result] = []  # revisited at the session's end, then judged
    self._suspects: list[Result] = []  # judged slower: a fresh sample at the session's end
    self.exit_status: int | None = None  # the suite's own, before any verdict changes it (set at the session's end)
    self.test_seconds: dict[str, float] = {}  # each test's wall time, set-up and teardown included: what it costs

  @property
  def references(self) -> dict[str, str]:
    return references(self.groups)

  @property
  def comparison(self) -> comparability.Comparison:
    """How the verdict baseline's machine and versions differ from this run's (computed once)."""
    if self._comparison is None:
      self._comparison = comparability.compare(self.baseline.machine_info, self._machine_info())
    return self._comparison

  def peak(self) -> float:
    """The session's matmul peak for the table: measured at the start and again at the end, the larger."""
    if self._peak is None:
      self._peak = timing.final_peak_gflops()
    return self._peak

  # --- judging --------------------------------------------------------------------------------

  def base_samples(self, key: str) -> list | None:
    """The baseline's samples of `key` (it holds those of the judged groups only); None: nothing to judge against."""
    return self.baseline.samples.get(key) if self.baseline is not None else None

  def judge_now(self, pairing: Pairing, remote: bool) -> None:
    """Judges a benchmark that is not revisited, with more pairs in its visit while undecided; a worker's slower
    verdict is rechecked at once (the worker may hold another run by the session's end)."""
    more = pairing.more if self.comparison.timings_comparable else None
    pairing.verdict = self._standing(pairing, self._sampled(pairing, pairing.visits[-1], more))
    if remote and self._suspect(pairing):
      self._recheck(pairing)

  def _sampled(self, pairing: Pairing, sample: list[float], more: Callable[[int], None] | None) -> dict:
    """The verdict of `sample` (one visit), `more(n)` pairs added to it while undecided and the cap allows (none
    where `more` is None)."""
    if more is None:
      return verdict.judge(pairing.base, sample, self.options.threshold)
    return verdict.sample_until_decided(
      lambda: verdict.judge(pairing.base, sample, self.options.threshold),
      more,
      len(sample),
      pairing.per_pair,
      pairing.cap_s,
    )

  def _recheck(self, pairing: Pairing) -> None:
    """A fresh sample of a slower benchmark, as many pairs as its visits hold, judged once on its own at the
    family's level (`verdict.confirm`): a regression only if it is slower too."""
    sample = pairing.fresh(max(sum(len(v) for v in pairing.visits), 2 * verdict.MIN_PAIRS))
    pairing.recheck = verdict.confirm(pairing.base, sample, len(self.baseline.samples), self.options.threshold)

  def _standing(self, pairing: Pairing, judged: dict) -> dict:
    """`judged`, and whether it counts: it is information only on another machine or setup, or when other
    processes took more than --verdict-busy-cpus while this run's pairs or the baseline's were timed."""
    why = (
      []
      if self.comparison.timings_comparable
      else [OTHER_HOST if self.comparison.other_host else "other machine or setup"]
    )
    loads = ((pairing.neighbours.load, "this run"), (self.baseline.others_cpu(pairing.key), "the baseline's runs"))
    busy = [
      f"busy machine: other processes took {load:.2f} CPUs while {run} timed it"
      for load, run in loads
      if load is not None and load > self.options.busy_cpus
    ]
    why += busy
    return {
      **judged,
      "judged": not why,
      "busy": bool(busy),
      "others_cpu": pairing.neighbours.load,
      **({"not_judged": "; ".join(why)} if why else {}),
    }

  def _suspect(self, pairing: Pairing) -> bool:
    return pairing.verdict["verdict"] == "slower" and pairing.verdict["judged"]

  def check_program(self, key: str, now: dict | None) -> str | None:
    """Why the run fails if the baseline's fingerprint of `key` differs while machine and versions match; else
    None (a difference is then noted for the summary). `now` None: this run could make none for it."""
    base = self.baseline.extra_info(key).get("fingerprint") if self.baseline is not None else None
    if base is None:
      return None
    changes = fingerprint.diff(base, now) if now is not None else ["none made in this run (these versions cannot)"]
    check = ProgramCheck(key, changes, self.comparison.programs_comparable)
    self.programs.append(check)
    if check.changes and check.exact:
      more = f", ... ({len(check.changes)} in all)" if len(check.changes) > 12 else ""
      return (
        f"{key}: the compiled program changed (same machine and versions as the baseline): "
        + ", ".join(check.changes[:12])
        + more
      )
    return None

  # --- results ---------------------------------------------------------------------------------

  def add(self, result: Result) -> None:
    """Takes a benchmark's result: published now, or once its revisits or its recheck are done."""
    self.results.append(result)
    p = result.pairing
    if p is not None and not result.broken and p.per_visit:
      self._held.append(result)
      return
    if result.verdict is not None:
      self._record(result)
      if self._suspect(p) and p.recheck is None:
        self._suspects.append(result)
        return
    self._publish(result)

  def finish(self, exit_status: int) -> None:
    """At the session's end (`exit_status` the suite's own): revisits the held benchmarks and judges them, rechecks
    every benchmark judged slower on a fresh sample, publishes all. After an interrupt it times nothing more and
    judges nothing: its results are published unjudged, and the saved run says it is incomplete."""
    self.exit_status = exit_status
    if exit_status != pytest.ExitCode.INTERRUPTED:
      self._judge_held()
    for result in [*self._held, *self._suspects]:
      self._publish(result)
    self._held, self._suspects = [], []

  @property
  def complete(self) -> bool:
    """Whether the run finished with every test passed: only such a run's timings may serve as a baseline."""
    return self.exit_status == pytest.ExitCode.OK

  def _judge_held(self) -> None:
    """Revisits the held benchmarks and judges them; then the fresh sample of each one judged slower."""
    self._revisit()
    for result in self._held:
      if result.pairing.base is not None:
        p = result.pairing
        p.verdict = self._standing(p, verdict.judge(p.base, p.visits, self.options.threshold))
        self._record(result)
        if self._suspect(p):
          self._suspects.append(result)
    with mm.count_compiles():  # the rechecked programs are warm; anything compiled here is not timed
      for result in self._suspects:
        if result.pairing.recheck is None:
          self._recheck(result.pairing)

  def _revisit(self) -> None:
    """REVISITS rounds over every held benchmark in turn (asv's interleaved rounds), then more rounds over the
    undecided ones while their cap allows: not against a baseline whose timings are information only here (another
    machine or boot), which more pairs cannot change."""
    held = [result.pairing for result in self._held]
    for _ in range(verdict.REVISITS):
      for pairing in held:
        pairing.visit()
    pending = [p for p in held if p.base is not None]
    if pending and not self.comparison.timings_comparable:
      pending = []
    while pending:
      pending = [
        p
        for p in pending
        if verdict.judge(p.base, p.visits, self.options.threshold)["verdict"] == "undecided" and p.can_visit()
      ]
      for pairing in pending:
        pairing.visit()

  def _record(self, result: Result) -> None:
    """The one path a verdict takes into the run's verdicts (the summary's, the regressions', the exit status')."""
    self.judged.append(result)

  def _publish(self, result: Result) -> None:
    """Writes a finished result into its benchmark's extra_info: once, when nothing about it can change."""
    result.target.update(result.saved())

  def table_rows(self) -> list[dict]:
    """The comparison table: every timing that is not broken, its `% peak` of the session's final peak."""
    rows = [r.row() for r in self.results if r.median is not None and not r.broken]
    if rows:
      peak = self.peak()
      rows = [{**r, "peak_fraction": r["gflops"] / peak} if "gflops" in r else r for r in rows]
    return table.comparison_table(rows, self.references)

  def regressions(self) -> list[str]:
    """What fails the run against the verdict baseline: confirmed slower verdicts, then changed programs."""
    return [f"{r.key} (slower, confirmed)" for r in self.judged if verdict.confirmed(r.verdict)] + [
      f"{p.key} (program changed)" for p in self.programs if p.changes and p.exact
    ]

  def confirmed_slower(self) -> bool:
    """Whether a benchmark is slower than the baseline, confirmed: the run fails."""
    return any(verdict.confirmed(r.verdict) for r in self.judged)

  def inconclusive(self) -> list[str]:
    """Why a run judged against a baseline does not know whether it is slower ([] when it knows, or has no baseline):
    nothing judged; rows information only (another host, a busy machine), undecided, or slower and not read so
    again by their fresh sample; rows of a judged group that the baseline has no samples of."""
    if self.baseline is None:
      return []
    why: dict[str, list[str]] = {}
    for r in self.judged:
      v = r.verdict
      if not v["judged"]:
        why.setdefault(f"information only ({v['not_judged']})", []).append(r.key)
      elif v["verdict"] == "undecided":
        why.setdefault("undecided", []).append(r.key)
      elif v["verdict"] == "slower" and v.get("recheck", {}).get("verdict") not in ("slower", "same"):
        why.setdefault("slower, not read so again by a fresh sample", []).append(r.key)
    unknown = [
      r.key
      for r in self.results
      if r.group in judged(self.groups) and r.pairing and r.pairing.base is None and not r.broken
    ]
    why.update({"not in the baseline (no samples to judge against)": unknown} if unknown else {})
    nothing = [] if self.judged else ["nothing judged: no benchmark of the baseline was timed in this run"]
    return nothing + [f"{reason}: {', '.join(keys)}" for reason, keys in why.items()]


SESSION = pytest.StashKey["BenchSession"]()  # the run's one session, in config.stash


def session_of(config: pytest.Config) -> BenchSession:
  """The session of the run `config` configures (made by the plugin's pytest_configure)."""
  return config.stash[SESSION]
