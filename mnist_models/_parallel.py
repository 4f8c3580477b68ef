"""Data-parallel training: the global batch split over devices, parameters replicated, gradients
averaged by the framework itself (JAX: sharding annotations and jit; TF: MirroredStrategy).

On a machine with several GPUs both use them as they are. On CPU, `simulate_cpu_devices` splits
the host into N devices for both frameworks; it must run before either has started, so the suite
calls it in a fresh process (the harness's mnist_models.bench.workers), keeping its own process single-device.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import keras
import numpy as np
import tensorflow as tf
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mnist_models._batches import Batches
from mnist_models._jax_train import train_step
from mnist_models._keras_train import one_hot
from mnist_models._tuning import tuned_compiler_options

DATA_AXIS = "data"


def simulate_cpu_devices(num_devices: int) -> None:
  """Splits the CPU into `num_devices` devices for JAX and logical devices for TensorFlow.

  Process-wide and read once: call it first thing in a fresh process, before any JAX or TF op.
  """
  try:
    jax.config.update("jax_num_cpu_devices", num_devices)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise RuntimeError(f"cannot simulate {num_devices} CPU devices: JAX or TensorFlow has already started in "
                       f"this process ({e}). Call simulate_cpu_devices first thing in a fresh process, e.g. "
                       f"mnist_models.bench.workers.FreshProcess(cpu_devices={num_devices}).") from e


def pad_batch(batch: Batches, multiple: int) -> Batches:
  """One batch padded with masked-out examples to a multiple of `multiple` rows (the device count).

  The losses are means over the mask, so the padded step computes exactly the unpadded one.
  """
  pad = -len(batch.mask) % multiple
  if not pad:
    return batch
  return Batches(*(np.concatenate([np.asarray(x), np.zeros((pad, *np.shape(x)[1:]), np.asarray(x).dtype)])
                   for x in batch))


def _devices(available: list, num_devices: int | None, framework: str) -> list:
  if num_devices is None:
    return available
  if not 1 <= num_devices <= len(available):
    raise ValueError(f"asked for {num_devices} devices but {framework} has {len(available)} "
                     f"({', '.join(str(d) for d in available)}); on CPU, simulate more with "
                     f"simulate_cpu_devices(N) in a fresh process")
  return available[:num_devices]


# --- JAX -----------------------------------------------------------------------------------------

def data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh (axis 'data') over the first `num_devices` devices, all of them by default."""
  devices = _devices(jax.devices(), num_devices, "JAX")
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices)


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
  return jax.jit(train_step, in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                 compiler_options=(tuned and tuned_compiler_options()) or None)


# --- TensorFlow / Keras --------------------------------------------------------------------------

def mirrored_strategy(num_devices: int | None = None) -> tf.distribute.MirroredStrategy:
  """MirroredStrategy over the first `num_devices` GPUs, or logical CPUs where there is no GPU.

  On CPU it reduces through one device: TF's default collective all-reduce cannot have two
  strategies over different device sets in one process (a group-size error), and it has no
  speed to offer between logical CPUs. On GPUs TF's default (NCCL) is kept.
  """
  gpus = tf.config.list_logical_devices("GPU")
  devices = _devices(gpus or tf.config.list_logical_devices("CPU"), num_devices, "TensorFlow")
  cross_device_ops = None if gpus else tf.distribute.ReductionToOneDevice()
  return tf.distribute.MirroredStrategy([d.name for d in devices], cross_device_ops=cross_device_ops)


def distribute_batch(strategy: tf.distribute.Strategy, batch: Batches) -> tuple:
  """(images, one-hot labels, mask) split over the strategy's replicas, and the global example count.

  Pads like `pad_batch`, so every replica gets an equal share; the count (a tensor) is of real examples.
  """
  batch = pad_batch(batch, strategy.num_replicas_in_sync)

  def split(array):
    shards = np.split(np.asarray(array), strategy.num_replicas_in_sync)
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(shards[context.replica_id_in_sync_group]))
  return (split(batch.images), split(one_hot(batch.labels)), split(batch.mask),
          tf.constant(float(np.sum(batch.mask))))


def make_keras_data_parallel_step(model: keras.Model, strategy: tf.distribute.Strategy) -> Callable:
  """A `tf.function` step over `distribute_batch` output: step(images, onehot, mask, count) -> global loss.

  `model` must have been built and compiled (compile_keras_model) inside `strategy.scope()`. Each
  replica takes its share of the global mean loss (sum over its real examples / global count); the
  Keras optimizer sums the replicas' gradients (an all-reduce) before its update: TF's own
  custom-training-loop recipe for MirroredStrategy.
  """
  optimizer, loss_fn = model.optimizer, keras.losses.CategoricalCrossentropy(reduction=None)
  with strategy.scope():
    if not optimizer.built:
      optimizer.build(model.trainable_variables)

  def replica_step(images, onehot, mask, count):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(loss_fn(onehot, model(images, training=True)) * mask) / count
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss

  @tf.function
  def step(images, onehot, mask, count):
    losses = strategy.run(replica_step, args=(images, onehot, mask, count))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
  return step
