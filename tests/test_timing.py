"""The harness's workload arithmetic and the loss check that stands beside every timing."""

import os
import signal
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
    Workload.train(
      [mm.one_batch(np.zeros((4, 28, 28, 1)), np.zeros(4)), mm.one_batch(np.zeros((8, 28, 28, 1)), np.zeros(8))]
    )


@pytest.mark.parametrize(
  "first, last, expect, problem",
  [
    (2.3, 1.9, None, None),
    (np.array([2.3, 2.1]), np.array([1.2, 1.1]), None, None),
    (2.3, 2.3, None, "training did not lower the loss: 2.3 before the timed rounds, 2.3 after them (+0.00%)"),
    (2.0, 2.2, None, "(+10.00%)"),
    (2.3, float("nan"), None, "a loss is not finite"),
    (2.302585, 2.302590, 2.302585, None),
    (2.302585, 2.31, 2.302585, "loss 2.31 differs from the reference 2.302585 by 3.22e-03 (relative; tolerance 1e-05)"),
  ],
  ids=["lower", "per-step", "flat", "higher", "nan", "expected", "off-reference"],
)
def test_check_losses(first, last, expect, problem):
  got = timing.check_losses(first, last, expect)
  assert got is None if problem is None else problem in got


def test_recorded_keeps_the_first_and_last_results():
  recorded = timing.Recorded(iter([3.0, 2.0, 1.0]).__next__)
  for _ in range(3):
    recorded()
  assert (recorded.calls, recorded.first, recorded.last) == (3, 3.0, 1.0)


SPIN = "import time\nend = time.time() + 3\nwhile time.time() < end: pass"


def _load_while(start) -> float:
  """The meter's reading over a second while `start()`'s process spins (it is killed after)."""
  from mnist_models.bench.machine import Neighbours

  pid = start()
  try:  # under pytest-xdist (-n), the other test processes are the suite's own too: its controller's family
    meter = Neighbours(root=os.getppid() if "PYTEST_XDIST_WORKER" in os.environ else None)
    time.sleep(0.3)  # it is running
    with meter:
      time.sleep(1.0)
    return meter.load
  finally:
    os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the neighbour meter reads Linux's /proc")
def test_a_neighbour_keeping_a_cpu_busy_is_seen_and_this_process_own_workers_are_not_counted():
  from mnist_models.bench.verdict import BUSY_CPUS

  def neighbour() -> int:  # not this process's descendant: its shell parent exits at once
    shell = subprocess.run(
      ["sh", "-c", f"{sys.executable} -c '{SPIN}' >/dev/null 2>&1 & echo $!"],
      capture_output=True,
      text=True,
      check=True,
    )
    return int(shell.stdout)

  def worker() -> int:  # a child, as the suite's worker processes are
    child = subprocess.Popen([sys.executable, "-c", SPIN])
    workers.append(child)
    return child.pid

  workers = []
  busy, own = _load_while(neighbour), _load_while(worker)
  workers[0].wait()
  assert busy > BUSY_CPUS, f"a process spinning on one CPU read as {busy:.2f} CPUs"
  assert own < busy - 0.3, f"this process's own worker counted as a neighbour ({own:.2f} CPUs, a neighbour {busy:.2f})"
