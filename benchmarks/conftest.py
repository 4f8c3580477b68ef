"""Benchmark plumbing: data, the no-compile guard around timed rounds, extra_info, the comparison table."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mnist_models as mm
from mnist_models import _bench

BATCH = 64
EPOCH_BATCHES = 16  # fixed, so that runs on the bundled digits and on full MNIST stay comparable
REFERENCE = {"train_step": "jax-jit", "eval_step": "jax-jit", "epoch": "jax-loop", "compile": "jax-jit"}
_ROWS = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def data() -> mm.MNIST:
  """Full MNIST if it is on disk, else the bundled digits (recorded in extra_info)."""
  return mm.load_mnist("auto")


@pytest.fixture(scope="session")
def batches(data) -> mm.Batches:
  """EPOCH_BATCHES full batches of BATCH training images, on the host."""
  return mm.make_batches(data.train_images, data.train_labels, BATCH, num_batches=EPOCH_BATCHES, seed=0)


def host_batch(batches: mm.Batches, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """The first `batch_size` training images and labels of `batches`."""
  images, labels = mm.valid_examples(batches)
  return images[:batch_size], labels[:batch_size]


@pytest.fixture
def timed(benchmark, request, data):
  """timed(fn, framework=, variant=, batch_size=, images=, flops=, rounds=, guard=True, setup=None).

  `images` and `flops` are per call; None where rates mean nothing (compile latency).

  Warms `fn` up once (compiling it), then times it; with `guard`, every timed round runs under
  count_compiles and the benchmark fails if anything compiled. `rounds` switches to pedantic mode
  (for slow targets). Checks the result is a finite loss, then records extra_info and a table row.
  """
  def run(fn, *, framework, variant, batch_size, images, flops, rounds=None, guard=True, setup=None):
    if setup is None:
      fn()  # warm-up: compilation happens here, outside the timed rounds
    with mm.count_compiles() as counts:
      if rounds is None:
        result = benchmark(fn)
      else:
        result = benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1)
    if guard and counts.compiles:
      pytest.fail(f"a timed round compiled: the timing includes compilation\n{counts.report()}", pytrace=False)
    assert np.isfinite(result), f"{variant}: loss is {result}"
    info = {"framework": framework, "variant": variant, "batch_size": batch_size, "data": data.source}
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
      if images is not None:
        peak = _bench.gemm_peak_gflops()
        info.update(_bench.rates(benchmark.stats.stats.median, images, flops, peak), gemm_peak_gflops=peak)
      request.config.stash.setdefault(_ROWS, []).append(
          {"group": benchmark.group, **info, "median": benchmark.stats.stats.median})
    benchmark.extra_info.update(info)
    return result
  return run


def pytest_benchmark_update_machine_info(config, machine_info):
  machine_info.update(_bench.machine_info())


def _table(config) -> list[dict]:
  return _bench.comparison_table(config.stash.get(_ROWS, []), REFERENCE)


def pytest_benchmark_update_json(config, benchmarks, output_json):
  output_json["comparison"] = {"reference": REFERENCE, "rows": _table(config)}


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables, so it is the last thing shown
def pytest_terminal_summary(terminalreporter, config):
  rows = _table(config)
  if rows:
    terminalreporter.write_sep("-", "comparison: median per call, and its ratio to the group's JAX reference")
    terminalreporter.write_line(_bench.format_table(rows, REFERENCE))
    terminalreporter.write_line("ratio > 1: slower than the reference; GFLOP/s from the spec's FLOP count "
                                "(train = 3x forward); % peak of this machine's measured float32 matmul rate "
                                f"({json.dumps(round(_bench.gemm_peak_gflops(), 1))} GFLOP/s)")
