"""pytest plugin: the `max_compiles(n)` marker and the suite's options (compile counts, ratio gate).

Enable it with `pytest_plugins = ["mnist_models.pytest_plugin"]` or `-p mnist_models.pytest_plugin`.
"""

import pytest

from mnist_models._compile_count import count_compiles


def pytest_addoption(parser):
  parser.addoption("--update-compile-counts", action="store_true",
                   help="record measured compile/trace counts in tests/compile_counts.json instead of checking them")
  group = parser.getgroup("mnist-bench ratio gate")
  group.addoption("--ratio-baseline", metavar="PATH", default=None,
                  help="a saved run (pytest-benchmark JSON) whose in-run ratios to the JAX reference this run must match")
  group.addoption("--ratio-tolerance", metavar="FRACTION", type=float, default=1.0,
                  help="how far (as a factor 1+FRACTION, either way) a ratio may move before the run fails "
                       "(default 1.0, a factor 2: unchanged reruns on the reference machine moved ratios by up to 1.67x)")


def pytest_configure(config):
  config.addinivalue_line("markers", "max_compiles(n): fail if the test body triggers more than n XLA compilations")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  """Runs a test marked max_compiles(n) under count_compiles and fails it past its budget."""
  marker = item.get_closest_marker("max_compiles")
  if marker is None:
    return (yield)
  with count_compiles() as counts:
    result = yield
  if counts.compiles > marker.args[0]:
    pytest.fail(f"compile budget exceeded: {counts.compiles} > {marker.args[0]}\n{counts.report()}", pytrace=False)
  return result
