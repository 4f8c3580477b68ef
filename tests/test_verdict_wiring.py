"""The verdicts wired into pytest: a benchmark made slower fails against its own baseline; unchanged, it does not.

Inner pytest runs (pytester, in this process, unpinned) time a spin loop of a chosen length, save a
baseline, then judge runs against it.
"""

import json

import pytest

BENCHMARK = """
import os, time
import numpy as np
import pytest
import mnist_models as mm
from mnist_models.bench import Workload

@pytest.mark.benchmark(group="train_step")
def test_spin(timed):
  batch = mm.one_batch(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32))
  seconds, losses = float(os.environ["SPIN_S"]), iter(np.linspace(2.0, 1.0, 100_000))

  def spin():
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
      pass
    return next(losses)
  timed(spin, workload=Workload.train(batch), framework="jax", variant="jax-jit", rates=False)
"""
ARGS = ("-p", "no:cacheprovider", "-p", "mnist_models.bench.plugin", "--benchmark-only", "--bench-pin=off")


@pytest.fixture
def spin_baseline(pytester, monkeypatch):
  """An inner run saved as a baseline: a 4 ms spin loop, paired with the yardstick."""
  pytester.makepyfile(test_spin=BENCHMARK)
  monkeypatch.setenv("SPIN_S", "0.004")
  result = pytester.runpytest_inprocess(*ARGS, "--benchmark-json=base.json")
  result.assert_outcomes(passed=1)
  doc = json.loads((pytester.path / "base.json").read_text())
  assert len(doc["benchmarks"][0]["extra_info"]["paired"]["log_ratios"]) >= 5
  return pytester.path / "base.json"


def test_a_benchmark_made_twice_as_slow_fails_naming_it(pytester, monkeypatch, spin_baseline):
  monkeypatch.setenv("SPIN_S", "0.008")
  result = pytester.runpytest_inprocess(*ARGS, f"--verdict-baseline={spin_baseline}")
  assert result.ret == pytest.ExitCode.TESTS_FAILED  # the test passed; the run fails on the confirmed regression
  result.stdout.fnmatch_lines(["*train_step/jax-jit/b2 * slower by*; fresh sample: slower by*",
                               "*REGRESSIONS: train_step/jax-jit/b2 (slower, confirmed)*"])


def test_the_same_benchmark_is_not_flagged(pytester, monkeypatch, spin_baseline):
  result = pytester.runpytest_inprocess(*ARGS, f"--verdict-baseline={spin_baseline}")
  result.assert_outcomes(passed=1)
  result.stdout.fnmatch_lines(["*no regression: no slower timing, no changed program*"])


@pytest.mark.parametrize("args, match", [
    (("--verdict-threshold=-0.1",), "*--verdict-threshold must be a fraction between 0 and 1*"),
    (("--benchmark-disable", "--verdict-baseline=base.json"), "*--benchmark-disable times nothing*"),
], ids=["negative-threshold", "verdict-without-timing"])
def test_options_that_would_judge_nothing_are_refused(pytester, args, match):
  pytester.makepyfile(test_spin=BENCHMARK)
  result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "mnist_models.bench.plugin", *args)
  assert result.ret == pytest.ExitCode.USAGE_ERROR
  result.stderr.fnmatch_lines([match])
