"""Benchmark plumbing: data, the no-compile guard around timed rounds, extra_info, the comparison table."""

from __future__ import annotations

import json
import time

import jax
import numpy as np
import pytest
import tensorflow as tf

import mnist_models as mm
from mnist_models import _baseline, _bench, _process

BATCH = 64
EPOCH_BATCHES = 16  # fixed, so that runs on the bundled digits and on full MNIST stay comparable
REFERENCE = {"train_step": "jax-jit", "eval_step": "jax-jit", "epoch": "jax-loop", "compile": "jax-jit",
             "data_parallel": "jax-1dev"}
_ROWS = pytest.StashKey[list]()
_BASELINE = pytest.StashKey[list]()
_VERDICT = pytest.StashKey[tuple]()
_PEAK = pytest.StashKey[float]()


@pytest.fixture(scope="session")
def data() -> mm.MNIST:
  """Full MNIST if it is on disk, else the bundled digits (recorded in extra_info)."""
  return mm.load_mnist("auto")


@pytest.fixture(scope="session")
def batches(data) -> mm.Batches:
  """EPOCH_BATCHES full batches of BATCH training images, on the host."""
  return mm.make_batches(data.train_images, data.train_labels, BATCH, num_batches=EPOCH_BATCHES, seed=0)


def host_batch(batches: mm.Batches, batch_size: int) -> mm.Batches:
  """The first `batch_size` training examples of `batches`, on the host, every one real (mask of ones)."""
  images, labels = mm.valid_examples(batches)
  return mm.Batches(images[:batch_size], labels[:batch_size], np.ones(batch_size, np.float32))


def jax_batch(batches: mm.Batches, batch_size: int) -> mm.Batches:
  """That batch on the JAX device."""
  return jax.device_put(host_batch(batches, batch_size))


def keras_batch(batches: mm.Batches, batch_size: int) -> tuple[tf.Tensor, tf.Tensor]:
  """That batch as TF tensors, images and one-hot labels: device-resident, as on the JAX side."""
  batch = host_batch(batches, batch_size)
  return tf.constant(batch.images), tf.constant(mm.one_hot(batch.labels))


def round_trip_s(process: mm.FreshProcess, calls: int = 50) -> float:
  """Median seconds of one call to a worker process that does nothing: included in its timings."""
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    process.call(_process.ping)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


@pytest.fixture
def timed_remote(timed, batches):
  """timed_remote(process, factory, variant=, **factory_kwargs) -> the benchmark's extra_info.

  Makes `factory`'s run (mnist_models._process) of one BATCH-image batch in `process` and times
  its steps from here: each timed call is one step there, the loss read back, plus one round trip
  (recorded as ipc_round_trip_s). The worker's compile counts must not move while timing.
  """
  def run(process, factory, *, variant, **kwargs):
    info = process.call(_process.make_run, factory, host_batch(batches, BATCH), **kwargs)
    extra = {**{k: v for k, v in info.items() if k != "framework"}, "ipc_round_trip_s": round_trip_s(process)}
    timed(lambda: process.call(_process.step), framework=info["framework"], variant=variant, batch_size=BATCH,
          images=BATCH, flops=mm.train_flops(mm.DEFAULT_SPEC, BATCH), guard=False,
          remote_counts=lambda: process.call(_process.counts), extra=extra)
    return extra
  return run


@pytest.fixture
def timed(benchmark, request, data):
  """timed(fn, framework=, variant=, batch_size=, images=, flops=, rounds=, guard=True, warmup=True, setup=None,
  remote_counts=None, extra=None).

  `images` and `flops` are per call; None where rates mean nothing (compile latency).

  Calls `fn` once untimed (`warmup`: it compiles there), then times it; with `guard`, every timed
  round runs under count_compiles and the benchmark fails if anything compiled. When `fn` steps a
  run in another process, `remote_counts` (that process's compile counts) must not change while
  timing. `rounds` switches to pedantic mode (slow targets), with an optional untimed `setup` per
  round. Checks the result is a finite loss, then records extra_info (plus `extra`) and a table row.
  """
  def run(fn, *, framework, variant, batch_size, images, flops, rounds=None, guard=True, warmup=True, setup=None,
          remote_counts=None, extra=None):
    if warmup:
      fn()  # compilation happens here, outside the timed rounds
    before = remote_counts() if remote_counts else None
    with mm.count_compiles() as counts:
      if rounds is None:
        result = benchmark(fn)
      else:
        result = benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1)
    if guard and counts.compiles:
      pytest.fail(f"a timed round compiled: the timing includes compilation\n{counts.report()}", pytrace=False)
    if remote_counts and remote_counts() != before:
      pytest.fail(f"a timed round compiled in the worker process: {before} -> {remote_counts()}", pytrace=False)
    assert np.isfinite(result), f"{variant}: loss is {result}"
    info = {"framework": framework, "variant": variant, "batch_size": batch_size, "data": data.source, **(extra or {})}
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
      if images is not None:
        peak = _bench.gemm_peak_gflops()
        info.update(_bench.rates(benchmark.stats.stats.median, images, flops, peak), gemm_peak_gflops=peak)
      stats = benchmark.stats.stats
      request.config.stash.setdefault(_ROWS, []).append(
          {"group": benchmark.group, **info, "median": stats.median, "min": stats.min})
    benchmark.extra_info.update(info)
    return result
  return run


def pytest_benchmark_update_machine_info(config, machine_info):
  machine_info.update(_bench.machine_info())


def _peak(config) -> float:
  """The session's matmul peak for the table: measured at the start and again at the end, the larger."""
  if _PEAK not in config.stash:
    config.stash[_PEAK] = _bench.final_peak_gflops()
  return config.stash[_PEAK]


def _table(config) -> list[dict]:
  rows = config.stash.get(_ROWS, [])
  if rows:  # per-benchmark extra_info used the first measurement; the table uses the final one
    peak = _peak(config)
    rows = [{**r, "peak_fraction": r["gflops"] / peak} if "gflops" in r else r for r in rows]
  return _bench.comparison_table(rows, REFERENCE)


def pytest_benchmark_update_json(config, benchmarks, output_json):
  output_json["comparison"] = {"reference": REFERENCE, "rows": _table(config),
                               "gemm_peak_gflops": _peak(config) if config.stash.get(_ROWS, None) else None}


def pytest_configure(config):
  """Checks the baselines named on the command line before anything runs, with errors that say what to do."""
  paths = [config.getoption("ratio_baseline")]
  compare = config.getoption("benchmark_compare")
  if isinstance(compare, str) and compare.endswith(".json"):  # a file, not one of pytest-benchmark's run ids
    paths.append(compare)
  try:
    config.stash[_BASELINE] = [_baseline.load_baseline(p) for p in paths if p]
  except _baseline.BaselineError as e:
    raise pytest.UsageError(str(e)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
  """The ratio gate: fail the run if an in-run ratio moved past --ratio-tolerance from the baseline's."""
  config = session.config
  if not config.getoption("ratio_baseline") or not config.stash.get(_ROWS, None):
    return
  stored = _baseline.ratios(config.stash[_BASELINE][0]["comparison"]["rows"], REFERENCE)
  current = _baseline.ratios(config.stash[_ROWS], REFERENCE)
  problems = _baseline.compare_ratios(stored, current, config.getoption("ratio_tolerance"))
  config.stash[_VERDICT] = (problems, stored, current)
  if problems:
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _write_verdict(terminalreporter, config):
  problems, stored, current = config.stash[_VERDICT]
  tolerance = config.getoption("ratio_tolerance")
  terminalreporter.write_sep("-", f"ratio gate: {len(current)} in-run ratios (min times) vs the baseline's, "
                                  f"tolerance x{1 + tolerance:.2f} either way")
  width = max(map(len, current), default=0)
  for key in sorted(current):
    was = f"{stored[key]:.3f}" if key in stored else "-"
    terminalreporter.write_line(f"  {key:<{width}} baseline {was:>6}  now {current[key]:.3f}")
  if problems:
    terminalreporter.write_line("RATIO GATE FAILED:", red=True, bold=True)
    for problem in problems:
      terminalreporter.write_line(f"  {problem}", red=True)
  else:
    terminalreporter.write_line("ratio gate passed", green=True)


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, config):
  """Prints the comparison table (and the ratio gate's verdict) after pytest-benchmark's own tables.

  A wrapper, so they still print when pytest-benchmark's --benchmark-compare-fail raises there.
  """
  try:
    return (yield)
  finally:
    _write_summary(terminalreporter, config)


def _write_summary(terminalreporter, config):
  rows = _table(config)
  if rows:
    terminalreporter.write_sep("-", "comparison: median per call, and its ratio to the group's JAX reference")
    terminalreporter.write_line(_bench.format_table(rows, REFERENCE))
    terminalreporter.write_line("ratio > 1: slower than the reference; GFLOP/s from the spec's FLOP count "
                                "(train = 3x forward); % peak of this machine's measured float32 matmul rate "
                                f"({json.dumps(round(_peak(config), 1))} GFLOP/s, the larger of a measurement "
                                "at the start and one at the end of the run)")
    roofline = _bench.roofline_line(rows, BATCH, mm.train_flops(mm.DEFAULT_SPEC, BATCH), _peak(config))
    if roofline:
      terminalreporter.write_line(roofline)
  if _VERDICT in config.stash:
    _write_verdict(terminalreporter, config)
