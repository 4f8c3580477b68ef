"""Worker processes: fresh Python processes for settings that are read once per process, and the session's pool.

XLA_FLAGS, TF_ENABLE_ONEDNN_OPTS and the number of (simulated) CPU devices are fixed when JAX or
TensorFlow start, so a configuration that changes them runs in its own process: a one-worker
`concurrent.futures.ProcessPoolExecutor` started with `spawn` (a new interpreter, not a fork of a
process whose frameworks have already started). The caller drives it with plain function calls (the
runs it holds: mnist_models.bench.runs); a timing taken around `proc.call(step)` includes one
inter-process round trip (`ping` measures it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

import mnist_models as mm


class FreshProcess:
  """A new Python process with extra environment variables and, optionally, N simulated CPU devices.

  Usage: `with FreshProcess(env={...}, cpu_devices=8) as proc: proc.call(fn, *args)`; `fn` must be
  importable (a module-level function); exceptions in it are raised here with its traceback.
  `start()` and `preload()` begin the same without waiting, so that several can start at once.
  `nice` lowers the child's scheduling priority (`os.nice`): for runs that time nothing, so that
  a starting worker takes only the CPU that this process leaves idle.
  """

  def __init__(self, env: dict[str, str] | None = None, cpu_devices: int | None = None, nice: int = 0):
    self.env, self.cpu_devices, self.nice = dict(env or {}), cpu_devices, nice
    self._pool: concurrent.futures.ProcessPoolExecutor | None = None
    self._pending: concurrent.futures.Future | None = None

  def start(self) -> FreshProcess:
    """Starts the child now, inside its environment, and returns without waiting for it."""
    with _environment(self.env):  # a spawned child inherits the environment as it is when it starts
      self._pool = concurrent.futures.ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),  # no initializer, no imports: a bare child starts fast
        initializer=_initialize if self.cpu_devices or self.nice else None,
        initargs=(self.cpu_devices, self.nice),
      )
      self._pending = self._pool.submit(os.getpid)  # the submit spawns the child, inside the environment above
    return self

  def preload(self, keras: bool = True) -> None:
    """Has the child import JAX, the library and, with `keras`, Keras on its backend now (seconds), without waiting."""
    self._pending = self._pool.submit(import_frameworks, keras)

  def wait(self) -> FreshProcess:
    """Waits until the child has done what start() and preload() asked of it."""
    self._result(self._pending, "start-up")
    return self

  def __enter__(self) -> FreshProcess:
    return self.start().wait()

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self, wait: bool = True) -> None:
    """Stops the child; with wait=False only asks it to stop (call again with wait=True to join it)."""
    self._pool.shutdown(wait=wait, cancel_futures=True)

  def call(self, fn: Callable, *args, **kwargs) -> Any:
    if self._pool is None:
      raise RuntimeError("FreshProcess is not started: use it as `with FreshProcess(...) as proc:`")
    return self._result(self._pool.submit(fn, *args, **kwargs), fn.__name__)

  def _result(self, future: concurrent.futures.Future, what: str) -> Any:
    try:
      return future.result()
    except BrokenProcessPool as e:
      raise RuntimeError(
        f"the worker process (environment {self.env}, cpu_devices={self.cpu_devices}) died "
        f"in {what}; its own error is in the output above"
      ) from e


class Workers:
  """The session's worker processes: one per setting, shared by every test and benchmark that asks for it.

  `start` begins a worker and its imports without waiting, so that several start at once (each is a
  new interpreter importing JAX and, unless it will run JAX only, Keras and TF: seconds); `get` waits
  for it, having first started every worker `plan` named (side by side). `close` stops them all at once.
  """

  def __init__(self, nice: int = 0):
    self._started: dict[tuple, FreshProcess] = {}
    self._planned: dict[tuple, bool] = {}
    self._nice = nice

  def plan(self, settings: list[tuple[dict | None, int | None, bool]]) -> None:
    """The (env, cpu_devices, keras) of the workers this session will ask for, `keras` False for those that run JAX
    only (they import no Keras or TF at start): started by start_planned or the first get."""
    self._planned = {}
    for env, cpu_devices, keras in settings:
      key = _key(env, cpu_devices)
      self._planned[key] = self._planned.get(key, False) or keras

  def start_planned(self) -> None:
    planned, self._planned = self._planned, {}
    for (env, cpu_devices), keras in planned.items():
      self.start(dict(env) or None, cpu_devices, keras)

  def start(
    self, env: dict[str, str] | None = None, cpu_devices: int | None = None, keras: bool = True
  ) -> FreshProcess:
    key = _key(env, cpu_devices)
    if key not in self._started:
      self._started[key] = FreshProcess(env, cpu_devices, self._nice).start()
      self._started[key].preload(keras)
    return self._started[key]

  def get(self, env: dict[str, str] | None = None, cpu_devices: int | None = None) -> FreshProcess:
    self.start_planned()
    return self.start(env, cpu_devices).wait()

  def wait_all(self) -> None:
    for process in self._started.values():
      process.wait()

  def close(self) -> None:
    for wait in (False, True):  # ask every child to stop, then join them: they exit side by side
      for process in self._started.values():
        process.close(wait=wait)
    self._started.clear()


def _key(env: dict[str, str] | None, cpu_devices: int | None) -> tuple:
  """One worker per (environment, simulated devices): a hashable key for them."""
  return tuple(sorted((env or {}).items())), cpu_devices


def _initialize(cpu_devices: int | None, nice: int) -> None:
  """In the child, before anything else: its priority, then its simulated devices."""
  if nice:
    os.nice(nice)
  if cpu_devices:
    mm.simulate_cpu_devices(cpu_devices)


@contextlib.contextmanager
def _environment(env: dict[str, str]):
  saved = {name: os.environ.get(name) for name in env}
  os.environ.update(env)
  try:
    yield
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name)
      else:
        os.environ[name] = value


def import_frameworks(keras: bool = True) -> None:
  """Imports the library's Keras side, and with it Keras on this process's backend (TF unless KERAS_BACKEND=jax),
  where it is installed: what a worker's first run would otherwise import. Without `keras`, nothing more than this
  module (JAX and the library's JAX side): a Keras run there would import it then."""
  if not keras:
    return
  try:
    mm.keras_train_step  # noqa: B018 - the lazy name imports the Keras side (lean: mnist_models._imports)
  except ImportError:
    pass


def ping() -> None:
  """Does nothing: time `proc.call(ping)` to know the round trip included in remote timings."""


def round_trip_s(process: FreshProcess, calls: int = 50) -> float:
  """Median seconds of one call to `process` that does nothing: the overhead included in its timings."""
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    process.call(ping)
    times.append(time.perf_counter() - start)
  return float(np.median(times))
