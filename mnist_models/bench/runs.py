"""Training runs held in a worker process (mnist_models.bench.processes), built there and driven from the parent.

A worker holds one run at a time (`make_run(factory, ...)`), so that its compile counts are its own;
the parent steps it (`step`, `steps`) and reads it (`weights`, `counts`, `program_fingerprint`).
`process_variants` names the benchmarks whose settings are read once per process, each with its worker's
environment and its run.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

import mnist_models as mm
from mnist_models.bench import fingerprint
from mnist_models.bench.machine import tf_onednn_enabled

# The Keras releases that trace again on every `train_on_batch` / `test_on_batch` call by their own design, on the
# TensorFlow they run on, and where that was reported: there the tracing is part of what each call costs (as in
# `fit`). Anywhere else a retrace on every call is what this suite exists to catch, and fails the timed round.
KNOWN_RETRACING = {
  ("3.3", "2.16"): "tensorflow#67033 (docs/upgrades.md)",
  ("3.5", "2.17"): "tensorflow#67033, still so on Keras 3.5 (docs/notebook/upgrades.md)",
}


def known_retracing(mode: str, task: str) -> str | None:
  """What the installed Keras traces again on every call (mm.keras_on_batch_retracing), where that is its known
  behaviour (KNOWN_RETRACING); None where it traces nothing again, or where it does and that is not known (a
  regression: the timed round's guard then fails it)."""
  retracing = mm.keras_on_batch_retracing(mode, task)
  return retracing if retracing and _keras_and_tf() in KNOWN_RETRACING else None


def _keras_and_tf() -> tuple[str, str]:
  """('3.3', '2.16'): the installed Keras' and TensorFlow's major.minor."""
  import keras  # noqa: PLC0415
  import tensorflow as tf  # noqa: PLC0415

  return tuple(".".join(v.split(".")[:2]) for v in (keras.__version__, tf.__version__))


class Run(NamedTuple):
  """A training run on one fixed batch, built in the child and driven from the parent.

  step() -> the loss of one more step, read back to the host (the device has finished).
  weights() -> the parameters as numpy arrays (the framework's own order).
  counts() -> what compiled since the run was made: JAX's {'compiles', 'traces'}, or Keras' {'traces'
    (of its step function), 'tf_graphs' (graphs traced and alive), 'tf_tracing_us' (time TF spent tracing)}.
  info: facts for extra_info (devices, per-device batch, ...).
  close: stops the run's compile counter.
  program() -> the compiled program the step runs, or its fingerprint, for `fingerprint.of` (None: none).
  """

  step: Callable[[], float]
  weights: Callable[[], list[np.ndarray]]
  counts: Callable[[], dict[str, int]]
  info: dict
  close: Callable[[], None] = lambda: None
  program: Callable[[], Any] = lambda: None


KERAS_ON_JAX = {"KERAS_BACKEND": "jax"}  # a worker's environment: Keras on its JAX backend (chosen once per process)

_HELD: list[Run] = []  # one run at a time, so that its compile count is its own


def release() -> None:
  """Closes the held run, if any: at the next make_run, and at the worker's exit (atexit runs before the interpreter
  clears its modules: a compile counter closed after that fails, and prints 'Exception ignored')."""
  while _HELD:
    _HELD.pop().close()


atexit.register(release)


def make_run(factory: Callable[..., Run], *args, **kwargs) -> dict:
  """In the child: replaces the held run with `factory(*args, **kwargs)`; returns its info."""
  release()
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


def program_fingerprint() -> dict | None:
  """The fingerprint of the held run's compiled step. Making it compiles or traces anew: ask after the last
  `counts()` of the run."""
  return fingerprint.of(made) if (made := _held().program()) is not None else None


def device_count(framework: str) -> int:
  """Devices `framework` would train on in this process: JAX's, or TF's GPUs or else its (logical) CPUs."""
  if framework == "jax":
    return jax.device_count()
  import tensorflow as tf

  return len(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))


def jax_run(
  batch: mm.Batches,
  *,
  num_devices: int = 1,
  seed: int = 0,
  tuned: bool = True,
  config: mm.TrainConfig = mm.DEFAULT_TRAIN,
) -> Run:
  """The JAX/Flax train step on `batch` (host arrays) over `num_devices` devices: data parallel when > 1.

  `tuned=False` compiles with plain `jax.jit` (no per-function compiler options), for processes whose
  XLA_FLAGS carry a configuration instead. `config`: the optimizer's hyper-parameters.
  """
  mesh = mm.data_mesh(num_devices)
  fn = mm.data_parallel_train_step(mesh, tuned=tuned)
  state = [mm.replicate(mm.create_train_state(rng=jax.random.key(seed), config=config), mesh)]
  sharded = mm.shard_batch(batch, mesh)
  counter = contextlib.ExitStack()  # from here on, only the step compiles
  seen = counter.enter_context(mm.count_compiles(explain=False))

  def one_step() -> float:
    state[0], loss = fn(state[0], sharded)
    return float(loss)

  return Run(
    one_step,
    lambda: [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state[0].params))],
    lambda: {"compiles": seen.compiles, "traces": seen.traces},
    _info("jax", mesh.size, len(sharded.mask), mesh.devices.flat[0]),
    counter.close,
    lambda: fn.lower(state[0], sharded).compile(),
  )


def keras_run(
  batch: mm.Batches,
  *,
  num_devices: int | None = 1,
  seed: int = 0,
  mode: str = "graph",
  config: mm.TrainConfig = mm.DEFAULT_TRAIN,
  task: str = "train",
  build: bool = True,
) -> Run:
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
  model = _seeded_keras_model(seed, mode, config, build)
  step, program = _keras_task(model, batch, task), keras_program(model, batch, task)
  counter = contextlib.ExitStack()  # from here on, only the step compiles or traces
  seen, start = counter.enter_context(mm.count_compiles(explain=False)), model.train_step_traces
  # On TF, fit builds and traces its tf.data pipeline every epoch: its tracing is fit's cost, not a recompile; so is
  # train_on_batch's and test_on_batch's where this Keras traces again on every call (Keras 3.3).
  retracing = None if _on_jax() or task == "fit" else known_retracing(mode, task)
  tf_counts = not _on_jax() and task != "fit" and not retracing
  return Run(
    step,
    model.get_weights,
    lambda: {
      "traces": model.train_step_traces - start,
      "compiles": seen.compiles,
      **(_tf_counts(seen) if tf_counts else {}),
    },
    {
      **_info("keras", 1, int(np.shape(batch.mask)[-1]), jax.devices()[0] if _on_jax() else "default device"),
      **({"tf_retraces_every_call": retracing} if retracing else {}),
    },
    counter.close,
    program,
  )


def _keras_task(model, batch: mm.Batches, task: str) -> Callable[[], float]:
  """One call of `task` on `model`: a train_on_batch step, a test_on_batch step, or a `fit` epoch over `batch`."""
  if task == "fit":
    return lambda: mm.keras_train_epoch(model, batch)
  if task not in ("train", "eval"):
    raise ValueError(f"unknown task {task!r}: choose train, eval or fit")
  on_device = mm.keras_batch(batch)
  if task == "train":
    return lambda: mm.keras_train_step(model, on_device)
  return lambda: mm.keras_eval_step(model, on_device)["loss"]


def keras_program(model, batch: mm.Batches, task: str) -> Callable[[], dict | None]:
  """The fingerprint of the step `task` runs (fit's: its step on the first batch), made when asked."""
  first = mm.Batches(*(x[0] for x in batch)) if task == "fit" else batch
  return lambda: fingerprint.keras_step(model, mm.keras_batch(first), task)


def _keras_mirrored_run(batch: mm.Batches, num_devices: int, seed: int, mode: str, config: mm.TrainConfig) -> Run:
  strategy = mm.mirrored_strategy(num_devices)
  with strategy.scope():
    model = _seeded_keras_model(seed, mode, config)
  counter = contextlib.ExitStack()  # from here on, only the step traces
  seen = counter.enter_context(mm.count_compiles(explain=False))
  fn, args = mm.make_keras_data_parallel_step(model, strategy), mm.distribute_batch(strategy, batch)
  padded = len(mm.pad_batch(batch, strategy.num_replicas_in_sync).mask)
  return Run(
    lambda: float(fn(*args)),
    model.get_weights,
    lambda: {"traces": fn.experimental_get_tracing_count(), **_tf_counts(seen)},
    _info("keras", strategy.num_replicas_in_sync, padded, strategy.extended.worker_devices[0]),
    counter.close,
    lambda: fn.get_concrete_function(*args),
  )


def _seeded_keras_model(seed: int, mode: str, config: mm.TrainConfig, build: bool = True):
  """The Keras CNN compiled in `mode` with `config`, holding the Flax weights of `seed` (jax_run's initial weights)."""
  model = mm.compile_keras_model(mm.build_keras_cnn(), mode, config=config, build=build)
  return mm.copy_flax_params_to_keras(mm.init_params(rng=jax.random.key(seed)), model)


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
  return {
    "framework": framework,
    "devices": devices,
    "global_batch": global_batch,
    "per_device_batch": global_batch // devices,
    "device": str(getattr(device, "device_kind", device)),
    **setting,
  }


@dataclasses.dataclass(frozen=True)
class ProcessVariant:
  """A benchmark whose setting is read once per process: its worker's environment, and the run to make there."""

  env: dict[str, str]
  factory: Callable[..., Run]
  kwargs: dict
  needs_tuning: bool = False  # it gives the suite's tuning as process-wide flags: nothing to run without it

  @property
  def needs_keras(self) -> bool:
    """Whether its worker imports Keras at start (a JAX run's needs only JAX)."""
    return self.factory is not jax_run

  def unavailable(self) -> str | None:
    """Why it cannot run here (a reason to skip it), or None."""
    if self.needs_tuning and not mm.tuned_compiler_options():
      return "the tuning is off (MNIST_BENCH_TUNING=0) or this jaxlib/backend does not take it"
    return None


def process_variants() -> dict[str, ProcessVariant]:
  """Settings read once per process, by variant.

  jax-jit-xla-flags: the suite's JAX tuning as process-wide XLA_FLAGS given to plain jax.jit.
  keras-graph-onednn-on/off: graph-mode train_on_batch with TF's oneDNN kernels forced on or off
  (TF's default depends on the CPU: on with AVX-512 VNNI/BF16 or AMX, off otherwise).
  keras-jax: the same Keras model and train_on_batch on Keras' JAX backend (its step is a plain jax.jit).
  """
  xla_flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), *mm.TUNED_XLA_FLAGS]))  # the user's flags kept
  return {
    "jax-jit-xla-flags": ProcessVariant({"XLA_FLAGS": xla_flags}, jax_run, {"tuned": False}, needs_tuning=True),
    "keras-graph-onednn-on": ProcessVariant({"TF_ENABLE_ONEDNN_OPTS": "1"}, keras_run, {"num_devices": None}),
    "keras-graph-onednn-off": ProcessVariant({"TF_ENABLE_ONEDNN_OPTS": "0"}, keras_run, {"num_devices": None}),
    "keras-jax": ProcessVariant(KERAS_ON_JAX, keras_run, {"num_devices": None}),
  }
