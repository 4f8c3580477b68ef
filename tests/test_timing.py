"""The harness's workload arithmetic and the loss check that stands beside every timing."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench import Workload, timing

FORWARD = mm.forward_flops(mm.DEFAULT_SPEC)


def _batches(n, batch, num_batches=None):
  images, labels = np.zeros((n, 28, 28, 1), np.float32), np.zeros(n, np.int32)
  return mm.make_batches(images, labels, batch, num_batches=num_batches)


def test_workload_is_read_off_the_batches():
  one = mm.one_batch(np.zeros((64, 28, 28, 1), np.float32), np.zeros(64, np.int32))
  assert Workload.train(one) == Workload(steps=1, batch_size=64, images=64, flops=3 * FORWARD * 64)
  assert Workload.eval(one).flops == FORWARD * 64
  stacked = _batches(100, 64)  # two batches, the second padded: 128 computed, 100 real
  assert Workload.train(stacked) == Workload(steps=2, batch_size=64, images=100, flops=3 * FORWARD * 128)
  assert Workload.train(list(mm.device_batches(stacked))) == Workload.train(stacked)
  assert Workload.train(mm.keras_batch(_batches(64, 32, num_batches=2))) == Workload(2, 32, 64, 3 * FORWARD * 64)


def test_a_workload_of_mixed_batch_sizes_is_refused():
  with pytest.raises(ValueError, match="one batch size"):
    Workload.train([mm.one_batch(np.zeros((4, 28, 28, 1)), np.zeros(4)), mm.one_batch(np.zeros((8, 28, 28, 1)), np.zeros(8))])


@pytest.mark.parametrize("first, last, expect, problem", [
    (2.3, 1.9, None, None),
    (np.array([2.3, 2.1]), np.array([1.2, 1.1]), None, None),
    (2.3, 2.3, None, "training did not lower the loss: 2.3 before the timed rounds, 2.3 after them (+0.00%)"),
    (2.0, 2.2, None, "(+10.00%)"),
    (2.3, float("nan"), None, "a loss is not finite"),
    (2.302585, 2.302590, 2.302585, None),
    (2.302585, 2.31, 2.302585, "loss 2.31 differs from the reference 2.302585 by 3.22e-03 (relative; tolerance 1e-05)"),
], ids=["lower", "per-step", "flat", "higher", "nan", "expected", "off-reference"])
def test_check_losses(first, last, expect, problem):
  got = timing.check_losses(first, last, expect)
  assert got is None if problem is None else problem in got


def test_recorded_keeps_the_first_and_last_results():
  recorded = timing.Recorded(iter([3.0, 2.0, 1.0]).__next__)
  for _ in range(3):
    recorded()
  assert (recorded.calls, recorded.first, recorded.last) == (3, 3.0, 1.0)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the neighbour meter reads Linux's /proc")
def test_a_neighbour_keeping_a_cpu_busy_is_seen_and_this_process_own_work_is_not_counted():
  from mnist_models.bench.machine import Neighbours
  from mnist_models.bench.verdict import BUSY_CPUS
  neighbour = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
  try:
    meter = Neighbours()
    time.sleep(0.5)  # the neighbour is running
    with meter:
      time.sleep(1.0)
    busy = meter.load
  finally:
    neighbour.kill()
    neighbour.wait()
  own = Neighbours()
  with own:  # this process's work: one thread busy for a second; what else runs on the machine may add to it
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
      pass
  assert busy > BUSY_CPUS, f"a process spinning on one CPU read as {busy:.2f} CPUs"
  assert own.load < busy, f"this process's own work counted as a neighbour's ({own.load:.2f} >= {busy:.2f} CPUs)"
