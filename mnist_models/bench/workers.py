"""Training runs held in a fresh Python process, for settings that are read once per process.

XLA_FLAGS, TF_ENABLE_ONEDNN_OPTS and the number of (simulated) CPU devices are fixed when JAX or
TensorFlow start, so a configuration that changes them runs in its own process: a one-worker
`concurrent.futures.ProcessPoolExecutor` started with `spawn` (a new interpreter, not a fork of a
process whose frameworks have already started). The caller drives it with plain function calls;
a timing taken around `proc.call(step)` includes one inter-process round trip (`ping` measures it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from mnist_models import _flax_model, _jax_train, _parallel
from mnist_models._batches import Batches
from mnist_models._compile_count import count_compiles
from mnist_models._imports import lean_import
from mnist_models._spec import DEFAULT_TRAIN, TrainConfig
from mnist_models._tuning import TUNED_XLA_FLAGS, tuned_compiler_options
from mnist_models.bench.machine import tf_onednn_enabled


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
          1, mp_context=multiprocessing.get_context("spawn"),  # no initializer, no imports: a bare child starts fast
          initializer=_initialize if self.cpu_devices or self.nice else None, initargs=(self.cpu_devices, self.nice))
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
      raise RuntimeError(f"the worker process (environment {self.env}, cpu_devices={self.cpu_devices}) died "
                         f"in {what}; its own error is in the output above") from e


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

  def start(self, env: dict[str, str] | None = None, cpu_devices: int | None = None, keras: bool = True) -> FreshProcess:
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
    _parallel.simulate_cpu_devices(cpu_devices)


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


def device_count(framework: str) -> int:
  """Devices `framework` would train on in this process: JAX's, or TF's GPUs or else its (logical) CPUs."""
  if framework == "jax":
    return jax.device_count()
  import tensorflow as tf
  return len(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))


def import_frameworks(keras: bool = True) -> None:
  """Imports the library's Keras side, and with it Keras on this process's backend (TF unless KERAS_BACKEND=jax),
  where it is installed: what a worker's first run would otherwise import. Without `keras`, nothing more than this
  module (JAX and the library's JAX side): a Keras run there would import it then."""
  if not keras:
    return
  try:
    lean_import("mnist_models._keras_train")
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


# --- the run held in the child ------------------------------------------------------------------

class Run(NamedTuple):
  """A training run on one fixed batch, built in the child and driven from the parent.

  step() -> the loss of one more step, read back to the host (the device has finished).
  weights() -> the parameters as numpy arrays (the framework's own order).
  counts() -> what compiled since the run was made: JAX's {'compiles', 'traces'}, or Keras' {'traces'
    (of its step function), 'tf_graphs' (graphs traced and alive), 'tf_tracing_us' (time TF spent tracing)}.
  info: facts for extra_info (devices, per-device batch, ...).
  close: stops the run's compile counter.
  """

  step: Callable[[], float]
  weights: Callable[[], list[np.ndarray]]
  counts: Callable[[], dict[str, int]]
  info: dict
  close: Callable[[], None] = lambda: None


KERAS_ON_JAX = {"KERAS_BACKEND": "jax"}  # a worker's environment: Keras on its JAX backend (chosen once per process)

_HELD: list[Run] = []  # one run at a time, so that its compile count is its own


def make_run(factory: Callable[..., Run], *args, **kwargs) -> dict:
  """In the child: replaces the held run with `factory(*args, **kwargs)`; returns its info."""
  while _HELD:
    _HELD.pop().close()
  _HELD.append(factory(*args, **kwargs))
  return _HELD[0].info


def _held() -> Run:
  if not _HELD:
    raise RuntimeError("no run is held in this process: call make_run(factory, ...) first")
  return _HELD[0]


def step() -> float:
  return _held().step()


def weights() -> list[np.ndarray]:
  return _held().weights()


def steps(n: int) -> list[float]:
  """n more steps of the held run: their losses."""
  return [_held().step() for _ in range(n)]


def counts() -> dict[str, int]:
  return _held().counts()


def jax_run(batch: Batches, *, num_devices: int = 1, seed: int = 0, tuned: bool = True,
            config: TrainConfig = DEFAULT_TRAIN) -> Run:
  """The JAX/Flax train step on `batch` (host arrays) over `num_devices` devices: data parallel when > 1.

  `tuned=False` compiles with plain `jax.jit` (no per-function compiler options), for processes whose
  XLA_FLAGS carry a configuration instead. `config`: the optimizer's hyper-parameters.
  """
  mesh = _parallel.data_mesh(num_devices)
  fn = _parallel.data_parallel_train_step(mesh, tuned=tuned)
  state = [_parallel.replicate(_jax_train.create_train_state(rng=jax.random.key(seed), config=config), mesh)]
  sharded = _parallel.shard_batch(batch, mesh)
  counter = contextlib.ExitStack()  # from here on, only the step compiles
  seen = counter.enter_context(count_compiles(explain=False))

  def one_step() -> float:
    state[0], loss = fn(state[0], sharded)
    return float(loss)
  return Run(one_step, lambda: [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state[0].params))],
             lambda: {"compiles": seen.compiles, "traces": seen.traces},
             _info("jax", mesh.size, len(sharded.mask), mesh.devices.flat[0]), counter.close)


def keras_run(batch: Batches, *, num_devices: int | None = 1, seed: int = 0, mode: str = "graph",
              config: TrainConfig = DEFAULT_TRAIN, task: str = "train", build: bool = True) -> Run:
  """The Keras train step on `batch`, from the same initial weights (and `config`) as `jax_run` with the same seed.

  With `num_devices`: the MirroredStrategy tape step (make_keras_data_parallel_step) over that many
  devices. With None: plain Keras compiled in `mode` (the suite's Keras reference; every example of
  `batch` counts: its mask is not used), on this process's backend, stepping `task`: 'train'
  (train_on_batch), 'eval' (test_on_batch: the loss of the seed's weights, every call) or 'fit'
  (one `fit` epoch over the stacked batches `batch`). `build`: compile_keras_model's (False: Keras' defaults, for
  the compile benchmark).
  """
  if num_devices is not None:
    return _keras_mirrored_run(batch, num_devices, seed, mode, config)
  from mnist_models import _keras_train  # Keras (and its backend) at the first Keras run
  model = _seeded_keras_model(seed, mode, config, build)
  if task == "fit":
    step = lambda: _keras_train.keras_train_epoch(model, batch)  # noqa: E731
  elif task in ("train", "eval"):
    on_device = _keras_train.keras_batch(batch)
    step = ((lambda: _keras_train.keras_train_step(model, on_device)) if task == "train" else
            (lambda: _keras_train.keras_eval_step(model, on_device)["loss"]))
  else:
    raise ValueError(f"unknown task {task!r}: choose train, eval or fit")
  counter = contextlib.ExitStack()  # from here on, only the step compiles or traces
  seen, start = counter.enter_context(count_compiles(explain=False)), model.train_step_traces
  # On TF, fit builds and traces its tf.data pipeline every epoch: its tracing is fit's cost, not a recompile.
  tf_counts = not _on_jax() and task != "fit"
  return Run(step, model.get_weights,
             lambda: {"traces": model.train_step_traces - start, "compiles": seen.compiles,
                      **(_tf_counts(seen) if tf_counts else {})},
             _info("keras", 1, int(np.shape(batch.mask)[-1]), jax.devices()[0] if _on_jax() else "default device"),
             counter.close)


def _keras_mirrored_run(batch: Batches, num_devices: int, seed: int, mode: str, config: TrainConfig) -> Run:
  from mnist_models import _keras_parallel
  strategy = _keras_parallel.mirrored_strategy(num_devices)
  with strategy.scope():
    model = _seeded_keras_model(seed, mode, config)
  counter = contextlib.ExitStack()  # from here on, only the step traces
  seen = counter.enter_context(count_compiles(explain=False))
  fn, args = _keras_parallel.make_keras_data_parallel_step(model, strategy), _keras_parallel.distribute_batch(strategy, batch)
  padded = len(_parallel.pad_batch(batch, strategy.num_replicas_in_sync).mask)
  return Run(lambda: float(fn(*args)), model.get_weights,
             lambda: {"traces": fn.experimental_get_tracing_count(), **_tf_counts(seen)},
             _info("keras", strategy.num_replicas_in_sync, padded, strategy.extended.worker_devices[0]), counter.close)


def _seeded_keras_model(seed: int, mode: str, config: TrainConfig, build: bool = True):
  """The Keras CNN compiled in `mode` with `config`, holding the Flax weights of `seed` (jax_run's initial weights)."""
  from mnist_models import _keras_model, _keras_train
  model = _keras_train.compile_keras_model(_keras_model.build_keras_cnn(), mode, config=config, build=build)
  return _keras_model.copy_flax_params_to_keras(_flax_model.init_params(rng=jax.random.key(seed)), model)


def _on_jax() -> bool:
  """Whether this process's Keras runs on its JAX backend (call once Keras is imported)."""
  import keras
  return keras.backend.backend() == "jax"


def _tf_counts(seen) -> dict[str, int]:
  return {"tf_graphs": sum(seen.tf_traced.values()), "tf_tracing_us": round(seen.tf_tracing_s * 1e6)}


def _info(framework: str, devices: int, global_batch: int, device) -> dict:
  """`global_batch` as stepped: padded to a multiple of `devices` where it had to be."""
  if framework == "jax" or _on_jax():
    setting = {"xla_flags": os.environ.get("XLA_FLAGS")}
  else:
    setting = {"tf_onednn_enabled": tf_onednn_enabled()}
  if framework == "keras":
    setting["keras_backend"] = "jax" if _on_jax() else "tensorflow"
  return {"framework": framework, "devices": devices, "global_batch": global_batch,
          "per_device_batch": global_batch // devices, "device": str(getattr(device, "device_kind", device)), **setting}


def process_variants() -> dict[str, tuple[dict[str, str], Callable[..., Run], dict]]:
  """Settings read once per process: variant -> (its process's environment, the run to make, its arguments).

  jax-jit-xla-flags: the suite's JAX tuning as process-wide XLA_FLAGS given to plain jax.jit.
  keras-graph-onednn-on/off: graph-mode train_on_batch with TF's oneDNN kernels forced on or off
  (TF's default depends on the CPU: on with AVX-512 VNNI/BF16 or AMX, off otherwise).
  keras-jax: the same Keras model and train_on_batch on Keras' JAX backend (its step is a plain jax.jit).
  """
  xla_flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), *TUNED_XLA_FLAGS]))  # the user's flags kept
  return {
      "jax-jit-xla-flags": ({"XLA_FLAGS": xla_flags}, jax_run, {"tuned": False}),
      "keras-graph-onednn-on": ({"TF_ENABLE_ONEDNN_OPTS": "1"}, keras_run, {"num_devices": None}),
      "keras-graph-onednn-off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, keras_run, {"num_devices": None}),
      "keras-jax": (KERAS_ON_JAX, keras_run, {"num_devices": None}),
  }


def unavailable(variant: str) -> str | None:
  """Why `variant` of process_variants() cannot run here (a reason to skip it), or None."""
  if variant == "jax-jit-xla-flags" and not tuned_compiler_options():
    return "the tuning is off (MNIST_BENCH_TUNING=0) or this jaxlib/backend does not take it"
  return None
