"""The `timed` fixture: one benchmark's warm-up, sizing, measuring, guards, correctness check and result.

`timed(fn, ...)` times a steady-state call (a train step, an epoch); `timed.first_call(fn, setup=...)`
times the first call of something `setup` makes anew each round (compile latency); `remote(timed, ...)`
times the steps of a run held in a worker process. Each returns the last result of `fn`. How to time a
model of one's own: docs/own-benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench import fingerprint, processes, runs, timing, verdict
from mnist_models.bench.baseline import row_key
from mnist_models.bench.machine import Neighbours
from mnist_models.bench.pairing import Pairing, pairs_per_visit, seconds_per_pair
from mnist_models.bench.session import BenchSession, Result
from mnist_models.bench.workload import BATCH, Workload

# The headline rows (the train step at batch 64, per framework) take PRECISE_S of pairs instead of TARGET_S.
PRECISE = {("train_step", "jax-jit", BATCH), ("train_step", "keras-graph", BATCH)}


class Guard(enum.Enum):
  """What fails a timed round, seen in this process by mm.count_compiles."""

  COMPILES_AND_TRACES = "compiles and traces"  # JAX compiled, or TF traced a graph (a tf.function, Keras' functions)
  COMPILES = "compiles"  # JAX compiled; TF's tracing is part of the call's cost (fit's tf.data pipeline): recorded
  NONE = "none"  # nothing here: compile latency, or a worker's run (whose own counts are checked instead)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Timing:
  """What one benchmark asks to be timed, and how.

  Args:
    fn: one call of what is timed; it must return its loss (or per-step losses) with the device finished.
    workload: what one call computes (batch size, images, FLOPs): `Workload.train(batch)`.
    framework, variant: the row's names (with the group and batch size: its key in baselines).
    expect: None for a call that trains (the loss after the timed rounds must be below the loss before
      them); else the loss every call must give (an eval step), within timing.LOSS_RTOL.
    rounds: how many timed rounds; None sizes them to the group's target of paired seconds.
    program: the compiled program `fn` runs (`jitted.lower(...).compile()`, a tf.function's concrete
      function, or `fingerprint.Later(make)` to make it after the timed rounds): its fingerprint is saved, and
      must equal the baseline's on the same machine and versions.
    counts: a callable whose result must not change while timing (a Keras model's train-step traces).
    extra: more facts for extra_info.
    rates: images/s, GFLOP/s and % of the matmul peak in extra_info.
    warmup: one untimed call first (it compiles there); False for a program compiled ahead of time.
    guard: what fails a timed round (Guard).
    setup: compile latency instead: makes each round's arguments anew, untimed, for `fn(*args, **kwargs)`; no pairs.
    remote: `fn` steps a run in a worker: judged at once (the worker may hold another run later).
  """

  fn: Callable[..., Any]
  workload: Workload
  framework: str
  variant: str
  expect: float | None = None
  rounds: int | None = None
  program: Any = None
  counts: Callable[[], dict] | None = None
  extra: dict | None = None
  rates: bool = True
  warmup: bool = True
  guard: Guard = Guard.COMPILES_AND_TRACES
  setup: Callable[[], tuple] | None = None
  remote: bool = False


@dataclasses.dataclass(frozen=True)
class _Plan:
  """How a benchmark is timed: its rounds, the yardstick they are paired with, and its pairs' sizes."""

  rounds: int
  yardstick: verdict.Yardstick | None
  per_pair: float | None  # seconds, measured before the rounds (None: not measured)
  per_visit: int  # pairs per revisit at the session's end; 0: judged at once
  target_s: float


@dataclasses.dataclass
class _Measured:
  """What timing the rounds saw: their result, what compiled meanwhile, the counts before and after, the pairs."""

  result: Any
  seen: mm.CompileCounts
  counts: tuple[dict, dict] | None
  calls: int
  pairing: Pairing | None


class Timed:
  """The `timed` fixture's object, one per benchmark: pytest-benchmark's `benchmark` with the suite's checks."""

  def __init__(self, benchmark: Any, session: BenchSession, data_source: str):
    self.benchmark, self.session, self.data_source = benchmark, session, data_source

  def __call__(self, fn: Callable[[], Any], *, workload: Workload, framework: str, variant: str, **how) -> Any:
    """Times `fn()` in its steady state; returns its last result. `how`: `Timing`'s other fields (expect, rounds,
    program, counts, extra, rates, warmup, guard), each documented there."""
    return self.run(Timing(fn=fn, workload=workload, framework=framework, variant=variant, **how))

  def first_call(
    self,
    fn: Callable[..., Any],
    *,
    setup: Callable[[], tuple],
    workload: Workload,
    framework: str,
    variant: str,
    expect: float,
    rounds: int,
    extra: dict | None = None,
  ) -> Any:
    """Times the first call of what `setup` makes anew each round (compile latency): `fn(*args, **kwargs)` for
    `setup()`'s `(args, kwargs)`, `rounds` times, each giving the loss `expect`. No warm-up, pairs or guard."""
    return self.run(
      Timing(
        fn=fn,
        setup=setup,
        workload=workload,
        framework=framework,
        variant=variant,
        expect=expect,
        rounds=rounds,
        extra=extra,
        rates=False,
        warmup=False,
        guard=Guard.NONE,
      )
    )

  def run(self, t: Timing) -> Any:
    """Warms up, sizes, measures, checks and records one benchmark; fails it if anything was wrong."""
    recorded = timing.Recorded(t.fn)
    if t.warmup:
      recorded()  # compilation happens here, outside the timed rounds
    info = {
      "framework": t.framework,
      "variant": t.variant,
      "batch_size": t.workload.batch_size,
      "data": self.data_source,
      **(t.extra or {}),
    }
    key = row_key({"group": self.group, **info})
    measured = self._measure(recorded, t, key, self._plan(recorded, t))
    broken = self._guard(t, measured) + self._check(recorded, t)
    problems = [*broken, *self._fingerprint(t, key, info)]
    if measured.seen.tf_traced_any:
      info["tf_tracing_ms_per_call"] = 1e3 * measured.seen.tf_tracing_s / (recorded.calls - measured.calls)
    result = self._result(t, info, bool(broken), measured.pairing)
    self.session.add(result)
    if verdict.confirmed(result.verdict):  # rechecked at once: a run in a worker
      problems.append(
        f"{key}: {verdict.describe(result.verdict)}, "
        f"and again in a fresh sample: {verdict.describe(result.verdict['recheck'])}"
      )
    if problems:
      pytest.fail("\n".join(problems), pytrace=False)
    return measured.result

  @property
  def group(self) -> str:
    return self.benchmark.group

  @property
  def on(self) -> bool:
    """Whether this run times anything (not --benchmark-disable)."""
    return not self.benchmark.disabled

  def _plan(self, recorded: Callable[[], Any], t: Timing) -> _Plan:
    """Its rounds: as asked, or as many pairs as fit in half its target (the other half in revisits), or all of it
    when it is judged at once; 1 when nothing is timed."""
    target_s = verdict.PRECISE_S if (self.group, t.variant, t.workload.batch_size) in PRECISE else verdict.TARGET_S
    target_s *= self.session.options.pairs_scale
    yardstick = verdict.Yardstick() if t.setup is None and self.on else None
    per_pair = seconds_per_pair(recorded, yardstick) if yardstick and t.rounds is None else None
    per_visit = 0 if t.remote else pairs_per_visit(per_pair, target_s)
    rounds = t.rounds
    if rounds is None:
      rounds = verdict.pairs_for(per_pair, target_s / (2 if per_visit else 1)) if self.on else 1
    return _Plan(rounds, yardstick, per_pair, per_visit, target_s)

  def _measure(self, recorded: timing.Recorded, t: Timing, key: str, plan: _Plan) -> _Measured:
    """The timed rounds under the compile counter, and their pairs (judged now unless revisited later)."""
    before, calls, neighbours = t.counts() if t.counts else None, recorded.calls, Neighbours()
    pairing = None
    with mm.count_compiles() as seen:
      with neighbours:
        result = self.benchmark.pedantic(recorded, setup=t.setup or plan.yardstick, rounds=plan.rounds, iterations=1)
      if plan.yardstick:
        pairing = self._pairing(recorded, key, plan, neighbours)
        if not plan.per_visit and pairing.base is not None:
          self.session.judge_now(pairing, t.remote)
    counts = (before, t.counts()) if t.counts else None
    return _Measured(result, seen, counts, calls, pairing)

  def _pairing(self, recorded: timing.Recorded, key: str, plan: _Plan, neighbours: Neighbours) -> Pairing:
    times = self.benchmark.stats.stats.data
    per_pair = plan.per_pair or float(np.median(times)) + float(np.median(plan.yardstick.times))
    return Pairing(
      key,
      recorded,
      yardstick=plan.yardstick,
      neighbours=neighbours,
      times=times,
      per_pair=per_pair,
      per_visit=plan.per_visit,
      cap_s=verdict.CAP_FACTOR * plan.target_s,
      base=self.session.base_samples(key),
    )

  def _guard(self, t: Timing, measured: _Measured) -> list[str]:
    """What makes the timing include compiling or tracing: a guard that saw it, or counts that moved."""
    seen, broken = measured.seen, []
    if t.guard is not Guard.NONE and (seen.compiles or (seen.tf_traced_any and t.guard is Guard.COMPILES_AND_TRACES)):
      broken.append(f"{t.variant}: a timed round compiled or traced: the timing includes it\n{seen.report()}")
    if measured.counts and measured.counts[0] != measured.counts[1]:
      broken.append(f"{t.variant}: a timed round compiled or traced: {measured.counts[0]} -> {measured.counts[1]}")
    return broken

  def _check(self, recorded: timing.Recorded, t: Timing) -> list[str]:
    """The correctness check beside the timing: the losses `fn` returned."""
    problem = timing.check_losses(recorded.first, recorded.last, t.expect)
    return [f"{self.group}/{t.variant}: {problem}"] if problem else []

  def _fingerprint(self, t: Timing, key: str, info: dict) -> list[str]:
    """The program's fingerprint into `info`; why the run fails if it differs from the baseline's."""
    if t.program is None:
      return []
    made = fingerprint.of(t.program)  # None: these versions cannot make one (nnx.jit on flax 0.10)
    if made is not None:
      info["fingerprint"] = made
    problem = self.session.check_program(key, made)
    return [problem] if problem else []

  def _result(self, t: Timing, info: dict, broken: bool, pairing: Pairing | None) -> Result:
    """The benchmark's result: its rates and times when timed."""
    result = Result(self.group, info, self.benchmark.extra_info, broken=broken, pairing=pairing)
    if self.on:
      stats = self.benchmark.stats.stats
      if t.rates:
        peak = timing.gemm_peak_gflops()
        info.update(timing.rates(stats.median, t.workload.images, t.workload.flops, peak), gemm_peak_gflops=peak)
      result.median, result.min = stats.median, stats.min
    return result


def remote(
  timed: Timed,
  process: processes.FreshProcess,
  factory: Callable[..., runs.Run],
  batch: mm.Batches,
  *,
  variant: str,
  workload: Callable[[mm.Batches], Workload] = Workload.train,
  expect: float | None = None,
  fresh_rounds: int | None = None,
  **factory_kwargs,
) -> dict:
  """Makes `factory`'s run of `batch` in `process` and times its steps from here; returns the run's extra_info facts.

  Each timed call is one step there, the loss read back, plus one round trip (recorded as ipc_round_trip_s).
  The worker's compile counts must not move while timing. `expect`: the loss every step must give (an eval
  run). `fresh_rounds`: compile latency instead: that many rounds, each the first step of a run made anew
  (untimed), after one such first step untimed (what compiles once per process, not per model, compiles there).
  """
  make = functools.partial(process.call, runs.make_run, factory, batch, **factory_kwargs)
  info = make()
  extra = {**{k: v for k, v in info.items() if k != "framework"}, "ipc_round_trip_s": processes.round_trip_s(process)}
  step, counts = functools.partial(process.call, runs.step), functools.partial(process.call, runs.counts)
  step()  # a second warm-up: some versions compile on the second call too (Keras 3.3 on jax 0.4.31: the state the
  # first step returned is placed anew); for compile latency, what compiles once per process, not per model
  row = {"workload": workload(batch), "framework": info["framework"], "variant": variant, "expect": expect}
  how = {"extra": extra, "guard": Guard.NONE, "remote": True}
  if fresh_rounds:
    setup = lambda: ((make(),), {})
    t = Timing(fn=lambda _: step(), rounds=fresh_rounds, warmup=False, rates=False, setup=setup, **row, **how)
  else:
    later = fingerprint.Later(functools.partial(process.call, runs.program_fingerprint))
    t = Timing(fn=step, counts=lambda: {"worker": counts()}, program=later, **row, **how)
  timed.run(t)
  return extra


def keras_guard(model, mode: str, task: str) -> dict:
  """timed()'s guard for a `train_on_batch` ('train') or `test_on_batch` ('eval') timing of a KerasCNN in `mode`.

  Where Keras reuses its graphs (today's), the default: any TF trace in a timed round fails it. Where it traces
  again on every call by its own known design (runs.known_retracing: Keras 3.3 on TF 2.16), that tracing is part
  of each call's cost, as in `fit`: the guard is JAX's, plus the step's own traces where they hold still, and
  extra_info says what was retraced. A retrace on every call anywhere else fails the round.
  """
  if not (retracing := runs.known_retracing(mode, task)):
    return {}
  attr = "train_step_traces" if task == "train" else "test_step_traces"
  counts = None if retracing == "the step" else (lambda: {attr: getattr(model, attr)})
  return {"guard": Guard.COMPILES, "counts": counts, "extra": {"tf_retraces_every_call": retracing}}
