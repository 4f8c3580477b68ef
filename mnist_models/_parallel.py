"""Data-parallel training: the global batch split over devices, parameters replicated, gradients
averaged by the framework itself (JAX: sharding annotations and jit; TF: MirroredStrategy).

On a machine with several GPUs both use them as they are. On CPU, `simulate_cpu_devices` splits
the host into N devices for both frameworks; it must run before either has started, so the suite
calls it in a fresh process (the harness's mnist_models.bench.processes), keeping its own process single-device.
This module holds the JAX side and what both share; the TF side is in _keras_parallel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mnist_models import _compat
from mnist_models._batches import Batches
from mnist_models._imports import optional_tensorflow
from mnist_models._jax_train import train_step
from mnist_models._tuning import tuned_compiler_options

DATA_AXIS = "data"


def simulate_cpu_devices(num_devices: int) -> None:
  """Splits the CPU into `num_devices` devices for JAX and logical devices for TensorFlow.

  Process-wide and read once: call it first thing in a fresh process, before any JAX or TF op.
  """
  try:
    _compat.set_cpu_device_count(num_devices)
    tf = optional_tensorflow()  # only where TensorFlow is installed
    if tf is None:
      return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise RuntimeError(
      f"cannot simulate {num_devices} CPU devices: JAX or TensorFlow has already started in "
      f"this process ({e}). Call simulate_cpu_devices first thing in a fresh process, e.g. "
      f"mnist_models.bench.processes.FreshProcess(cpu_devices={num_devices})."
    ) from e


def pad_batch(batch: Batches, multiple: int) -> Batches:
  """One batch padded with masked-out examples to a multiple of `multiple` rows (the device count).

  The losses are means over the mask, so the padded step computes exactly the unpadded one.
  """
  pad = -len(batch.mask) % multiple
  if not pad:
    return batch
  return Batches(
    *(np.concatenate([np.asarray(x), np.zeros((pad, *np.shape(x)[1:]), np.asarray(x).dtype)]) for x in batch)
  )


def first_devices(available: list, num_devices: int | None, framework: str) -> list:
  """The first `num_devices` of a framework's `available` devices (all for None); too many is a clear error."""
  if num_devices is None:
    return available
  if not 1 <= num_devices <= len(available):
    raise ValueError(
      f"asked for {num_devices} devices but {framework} has {len(available)} "
      f"({', '.join(str(d) for d in available)}); on CPU, simulate more with "
      f"simulate_cpu_devices(N) in a fresh process"
    )
  return available[:num_devices]


# --- JAX -----------------------------------------------------------------------------------------


def data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh (axis 'data') over the first `num_devices` devices, all of them by default."""
  devices = first_devices(jax.devices(), num_devices, "JAX")
  return _compat.make_mesh(devices, DATA_AXIS)


def shard_batch(batch: Batches, mesh: Mesh) -> Batches:
  """One host batch, padded to a multiple of the device count, split along its first axis over `mesh`."""
  return jax.device_put(pad_batch(batch, mesh.size), NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def replicate(tree, mesh: Mesh):
  """A full copy of `tree` (a TrainState, say) on every device of `mesh`."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


@functools.cache
def data_parallel_train_step(mesh: Mesh, tuned: bool = True) -> Callable:
  """`train_step` jitted for `mesh`: state replicated in and out, batch sharded over 'data'.

  The loss is a mean over the global batch, so XLA inserts the all-reduce of the gradients; the
  result equals one single-device step on the whole batch, up to float32 summation order. One
  program per mesh and batch shape (cached per mesh). `tuned=False`: plain jit, no compiler options.
  """
  replicated, sharded = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  return _compat.jit(
    train_step,
    in_shardings=(replicated, sharded),
    out_shardings=(replicated, replicated),
    compiler_options=(tuned and tuned_compiler_options()) or None,
  )
