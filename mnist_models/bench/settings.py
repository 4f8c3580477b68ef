"""The process-wide settings the suite's plugin makes, each with its switch (the README lists them too).

- ENV_DEFAULTS (TF's log level, KERAS_BACKEND, GPU memory growth), at import: set a variable yourself to keep yours.
- PyTorch and triton imported before TensorFlow, at import, where installed: MNIST_BENCH_TORCH_FIRST=0.
- jax_numpy_rank_promotion = "raise", every run: set JAX_NUMPY_RANK_PROMOTION (e.g. allow).
- One CPU and one BLAS thread, in timed runs without a GPU: --bench-pin=off.
- A shared JAX compilation cache in a temporary folder, in untimed runs: --bench-jax-cache=off, or set your own
  JAX_COMPILATION_CACHE_DIR.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

# Before JAX or TF start, in this process and its workers (which inherit them): TF's C++ INFO/WARNING start-up
# lines hide pytest's output; the Keras rows run on TensorFlow (Keras on JAX runs in a worker of its own). On a GPU,
# JAX would take 75% of its memory at start and TF all the rest, leaving nothing for the other framework or the
# worker processes. No effect on CPU.
ENV_DEFAULTS = {
  "TF_CPP_MIN_LOG_LEVEL": "2",
  "KERAS_BACKEND": "tensorflow",
  "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
  "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}
_SHARING_DECIDED: list[bool] = []  # process-wide: pytester's in-process inner runs share the outermost run's process


def set_env_defaults() -> None:
  """ENV_DEFAULTS, where the variable is not set already."""
  for name, value in ENV_DEFAULTS.items():
    os.environ.setdefault(name, value)


def import_torch_first() -> None:
  """PyTorch, an optional extra, loads before TensorFlow does: triton's import crashes after TF's (measured)."""
  if os.environ.get("MNIST_BENCH_TORCH_FIRST", "1") == "0":
    return
  try:
    import torch  # noqa: F401
    import triton  # noqa: F401
  except ImportError:
    pass


def make_jax_strict() -> None:
  """Implicit rank promotion hides shape bugs (a [batch] mask broadcast against [batch, 10]): it raises, unless the
  user chose otherwise with JAX_NUMPY_RANK_PROMOTION."""
  if "JAX_NUMPY_RANK_PROMOTION" not in os.environ:
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")


def share_compiled_programs(untimed: bool, cleanup: Callable[[Callable[[], None]], None]) -> str | None:
  """In the process's first run, if it is untimed (--benchmark-disable: the tests, and every benchmark once), keeps
  what JAX compiles in a persistent compilation cache of its own (a fresh temporary folder, removed by `cleanup`
  at the end): a program that another test, or a worker process (which inherits the setting), compiles again is
  loaded instead. A load still counts as a compile (jax reports its backend-compile event around the cache
  lookup), so the compile guards keep their meaning. Timed runs never use it: compile latency is a benchmark.
  A cache folder the user set is kept; none is made on a jax whose cache is not safe (_compat). Returns the folder
  made, or None."""
  import jax

  first = not _SHARING_DECIDED
  _SHARING_DECIDED.append(True)
  if not (first and untimed) or os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
    return None
  from mnist_models import _compat  # noqa: PLC0415 - settings imports nothing of the library at its top

  if not _compat.PERSISTENT_CACHE_IS_SAFE:
    return None  # a wrong loss is worse than a slower run
  path = tempfile.mkdtemp(prefix="mnist-bench-jax-cache-")
  # A size limit turns on jax's file lock around each read and write: several processes (pytest-xdist's, the
  # worker processes) share the folder, and none may read an entry that another is still writing.
  values = {
    "jax_compilation_cache_dir": path,
    "jax_persistent_cache_min_compile_time_secs": 0,
    "jax_persistent_cache_min_entry_size_bytes": 0,
    "jax_compilation_cache_max_size": 8 << 30,
  }
  for name, value in values.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)  # for the worker processes
  cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
  return path
