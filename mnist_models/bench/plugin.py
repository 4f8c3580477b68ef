"""The suite's pytest plugin: its options, markers and hooks; it registers its fixtures (mnist_models.bench.fixtures).

The root conftest.py loads it (`pytest_plugins`); elsewhere, `pytest -p mnist_models.bench.plugin`. What
loading it changes in the process, and how to switch each off: mnist_models.bench.settings. A run's state
is one BenchSession (mnist_models.bench.session) in `config.stash`.
"""

from mnist_models.bench import settings

settings.set_env_defaults()  # before JAX or TF start
settings.import_torch_first()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import mnist_models as mm  # noqa: E402
from mnist_models.bench import (  # noqa: E402
  baseline,
  compile_counts,
  fixtures,  # noqa: E402
  hookspec,
  machine,
  processes,
  summary,
  verdict,
)
from mnist_models.bench.fixtures import planned_workers, uses_workers  # noqa: E402
from mnist_models.bench.groups import SUITE_GROUPS, judged, merge  # noqa: E402
from mnist_models.bench.session import SESSION, BenchSession, Options, session_of  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
  parser.addoption(
    "--update-compile-counts",
    action="store_true",
    help="record measured compile/trace counts in the --compile-counts file instead of checking them",
  )
  parser.addoption(
    "--compile-counts",
    metavar="PATH",
    help=f"the stored compile/trace counts to check (or record), relative to the suite's root; default "
    f"{compile_counts.COUNTS_FILE}, today's pins' (other pins' counts are in files of their own: tox.ini names them)",
  )
  _verdict_options(parser.getgroup("mnist-bench verdicts"))
  _run_options(parser.getgroup("mnist-bench runs"))


def _verdict_options(group: pytest.OptionGroup) -> None:
  group.addoption(
    "--verdict-baseline",
    metavar="PATH",
    default=None,
    help="a saved run (pytest-benchmark JSON) to judge this run's timings against: each benchmark is "
    "same, slower, faster or undecided, and a run with a slower one fails",
  )
  group.addoption(
    "--verdict-threshold",
    metavar="FRACTION",
    type=float,
    default=verdict.THRESHOLD,
    help=f"changes smaller than this fraction count as noise (default {verdict.THRESHOLD})",
  )
  group.addoption(
    "--verdict-busy-cpus",
    metavar="CPUS",
    type=float,
    default=verdict.BUSY_CPUS,
    help="timing verdicts are information only when other processes took more than this many CPUs "
    f"while this run or the baseline's timed the benchmark (default {verdict.BUSY_CPUS})",
  )
  group.addoption(
    "--bench-summary",
    metavar="PATH",
    default=None,
    help="also write the run's result as Markdown to PATH (regressions first, then the comparison "
    "table); where $GITHUB_STEP_SUMMARY is set, it is appended there too",
  )


def _run_options(group: pytest.OptionGroup) -> None:
  group.addoption(
    "--bench-all",
    action="store_true",
    help="under --benchmark-only, also time the benchmarks marked `extended` (batch-size sweep, "
    "per-process settings, 2 and 4 data-parallel devices, the plain lax.scan epoch, fit under "
    "XLA), which the default run leaves out to finish within 5 minutes",
  )
  group.addoption(
    "--bench-pin",
    choices=("auto", "off"),
    default="auto",
    help="auto: under --benchmark-only on a machine without GPU, run on one CPU with one BLAS thread "
    "(far less noise on small shared machines; docs/methodology.md); off: use every CPU",
  )
  group.addoption(
    "--bench-pairs-scale",
    metavar="FACTOR",
    type=float,
    default=1.0,
    help="multiplies every benchmark's seconds of pairs with the yardstick (default 1): side by side takes "
    "many short runs (0.25), since runs differ more than a run's pairs do (docs/upgrades.md)",
  )
  group.addoption(
    "--bench-jax-cache",
    choices=("auto", "off"),
    default="auto",
    help="auto: under --benchmark-disable, share what JAX compiles between the tests and processes "
    "through a temporary compilation cache (a load still counts as a compile); off: no cache",
  )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
  """The hooks the plugin adds (mnist_models.bench.hookspec), and its fixtures, registered with it."""
  pluginmanager.add_hookspecs(hookspec)
  if not pluginmanager.is_registered(fixtures):
    pluginmanager.register(fixtures, "mnist_models.bench.fixtures")


def pytest_bench_groups(config: pytest.Config) -> dict:
  return SUITE_GROUPS


def pytest_configure(config: pytest.Config) -> None:
  """Registers the markers, checks the options, makes the process-wide settings, checks that the compile counter
  sees a compile (`blind_spots`) and loads the baselines named on the command line, before anything runs."""
  config.addinivalue_line("markers", "max_compiles(n): fail if the test body triggers more than n XLA compilations")
  config.addinivalue_line(
    "markers", "extended: a benchmark timed only with --bench-all (the test run still runs it once)"
  )
  config.addinivalue_line(
    "markers", "long: a test that takes minutes on its own (pytest runs in subprocesses): the test run starts it first"
  )
  options, untimed = _options(config), config.getoption("benchmark_disable", False)
  settings.share_compiled_programs(untimed and config.getoption("bench_jax_cache") == "auto", config.add_cleanup)
  settings.make_jax_strict()
  if config.getoption("benchmark_only", False) and config.getoption("bench_pin") == "auto" and not machine.has_gpu():
    machine.pin_to_one_cpu()  # before JAX and TF start their thread pools
  if problems := mm.blind_spots():  # a canary: a guard that counts nothing would pass every benchmark
    pytest.exit(
      "the compile guard is blind, so no timed round could fail for compiling: " + "; ".join(problems),
      returncode=pytest.ExitCode.INTERNAL_ERROR,
    )
  groups = merge(config.hook.pytest_bench_groups(config=config))
  workers = processes.Workers(nice=10 if untimed else 0)  # untimed runs' workers take only idle CPU
  config.stash[SESSION] = BenchSession(
    options, groups, _baseline(config, judged(groups)), lambda: _machine_info(config), workers
  )


def _options(config: pytest.Config) -> Options:
  """The options the session reads; a UsageError for one that makes no sense, saying what to give instead."""
  threshold, busy, path = (config.getoption(n) for n in ("verdict_threshold", "verdict_busy_cpus", "verdict_baseline"))
  if not 0 < threshold < 1:
    raise pytest.UsageError(f"--verdict-threshold must be a fraction between 0 and 1 (0.05 is 5%), got {threshold}")
  if not busy >= 0:
    raise pytest.UsageError(f"--verdict-busy-cpus must be a number of CPUs, 0 or more, got {busy}")
  update = config.getoption("update_compile_counts")
  if update and (config.getoption("numprocesses", None) or hasattr(config, "workerinput")):
    raise pytest.UsageError(
      "--update-compile-counts writes one file from every test's counts: run it in one process (without -n)"
    )
  if path and config.getoption("benchmark_disable", False):
    raise pytest.UsageError(
      "--verdict-baseline judges timings, but --benchmark-disable times nothing: "
      "run with --benchmark-only (or without --benchmark-disable)"
    )
  scale = config.getoption("bench_pairs_scale")
  if not 0 < scale <= 10:
    raise pytest.UsageError(
      f"--bench-pairs-scale must be a factor above 0 and at most 10 (0.25: a quarter), got {scale}"
    )
  counts_file = Path(config.getoption("compile_counts") or compile_counts.COUNTS_FILE)
  return Options(
    threshold=threshold,
    busy_cpus=busy,
    baseline_path=path,
    summary_path=config.getoption("bench_summary"),
    update_counts=update,
    counts_file=counts_file,
    pairs_scale=scale,
  )


def _baseline(config: pytest.Config, groups: tuple[str, ...]) -> baseline.Baseline | None:
  """The verdict baseline (its pooled runs with it), and pytest-benchmark's compare file checked too."""
  compare, path = config.getoption("benchmark_compare", None), config.getoption("verdict_baseline")
  try:
    if isinstance(compare, str) and compare.endswith(".json"):  # a file, not one of pytest-benchmark's run ids
      baseline.load_baseline(compare)
    return baseline.Baseline.load(path, groups) if path else None
  except baseline.BaselineError as e:
    raise pytest.UsageError(str(e)) from None


def _machine_info(config: pytest.Config) -> dict:
  """This run's machine_info, as pytest-benchmark saves it."""
  info = config.hook.pytest_benchmark_generate_machine_info(config=config)
  config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=info)
  return info


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: every test collected, for the stored counts' update
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
  """Under --benchmark-only, deselects the tests that are not benchmarks (rather than list them as skipped), and
  the `extended` benchmarks unless --bench-all.

  Otherwise orders the run (stable, nothing dropped): first the tests marked `long`, so that under pytest-xdist the
  other process's tests run beside them rather than after them; then the tests that need no worker process,
  so that the workers started side by side at the first test are ready when asked for; then those that
  do; then the benchmarks, in their own order; last the tests that empty JAX's caches (`cold_jax`,
  and the compile group's benchmarks, which empty them every round), so that every other test and
  benchmark shares the programs compiled before them.
  """
  session_of(config).counts.collected = {item.nodeid for item in items}
  for item in filter(uses_workers, items):  # with pytest-xdist (-n 2 --dist loadgroup), one process runs them all
    item.add_marker(pytest.mark.xdist_group("workers"))
  if config.getoption("benchmark_only", False):
    every = config.getoption("bench_all")
    keep = [
      item
      for item in items
      if "benchmark" in _fixtures(item) and (every or item.get_closest_marker("extended") is None)
    ]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep
    return
  items.sort(key=_run_order)


def _fixtures(item: pytest.Item) -> tuple[str, ...]:
  return tuple(getattr(item, "fixturenames", ()))


def _run_order(item: pytest.Item) -> int:
  if item.get_closest_marker("long"):
    return -1
  names, marker = _fixtures(item), item.get_closest_marker("benchmark")
  if "cold_jax" in names or (marker and marker.kwargs.get("group") == "compile"):
    return 3
  if "benchmark" in names:
    return 2
  return 1 if uses_workers(item) else 0


def pytest_collection_finish(session: pytest.Session) -> None:
  """Plans the worker processes that the selected tests will ask for (started at the first test)."""
  session_of(session.config).workers.plan(planned_workers(session.items))


def pytest_unconfigure(config: pytest.Config) -> None:
  if SESSION in config.stash:
    session_of(config).workers.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
  """Runs a test marked max_compiles(n) under count_compiles and fails it past its budget."""
  marker = item.get_closest_marker("max_compiles")
  if marker is None:
    return (yield)
  with mm.count_compiles() as counts:
    result = yield
  if counts.compiles > marker.args[0]:
    pytest.fail(f"compile budget exceeded: {counts.compiles} > {marker.args[0]}\n{counts.report()}", pytrace=False)
  return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
  """Adds each phase's seconds to its test's cost (what a side-by-side visit that runs it pays); notes the tests that
  passed, for the stored counts' update (only when updating)."""
  bench = session_of(item.config)
  bench.test_seconds[item.nodeid] = bench.test_seconds.get(item.nodeid, 0.0) + call.duration
  counts = bench.counts
  if call.when == "call" and call.excinfo is None and counts.update:
    counts.passed.add(item.nodeid)


# The exit status of a run judged against a verdict baseline that does not know whether it is slower (nothing judged,
# rows undecided or information only: the summary says which); pytest's own are 0-5.
INCONCLUSIVE = 6


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session):
  """Finishes the run's benchmarks (revisits, rechecks; nothing more after an interrupt), writes updated compile
  counts, and fails the run on a confirmed slower benchmark (exit 1); a run that passed but does not know exits
  INCONCLUSIVE.

  A wrapper, outermost: before pytest-benchmark's own (a wrapper that saves the JSON before it yields),
  so that the saved extra_info is final, and the saved run says whether the suite passed (`session` in its JSON).
  """
  bench = session_of(session.config)
  bench.finish(session.exitstatus)
  if bench.counts.update and session.exitstatus != pytest.ExitCode.INTERRUPTED:
    bench.counts.write(session.config.rootpath)
  if bench.confirmed_slower():
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
  elif bench.inconclusive() and session.exitstatus == pytest.ExitCode.OK:
    session.exitstatus = INCONCLUSIVE  # the summary says why
  return (yield)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
  machine_info.update(machine.machine_info())


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
  bench = session_of(config)
  rows = bench.table_rows()
  output_json["session"] = {
    "exit_status": int(bench.exit_status),
    "complete": bench.complete,
    "test_seconds": {k: round(v, 3) for k, v in bench.test_seconds.items()},
  }
  output_json["comparison"] = {
    "reference": bench.references,
    "rows": rows,
    "gemm_peak_gflops": bench.peak() if rows else None,
  }


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, config: pytest.Config):
  """Prints the comparison table (and the verdicts) after pytest-benchmark's own tables.

  A wrapper, so they still print when pytest-benchmark's --benchmark-compare-fail raises there.
  """
  try:
    return (yield)
  finally:
    bench = session_of(config)
    summary.write_terminal(terminalreporter, bench)
    summary.write_markdown(terminalreporter, bench)
    summary.write_counts(terminalreporter, bench)
