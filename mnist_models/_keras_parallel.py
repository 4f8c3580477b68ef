"""Data-parallel Keras training on TensorFlow's MirroredStrategy: the TF side of _parallel.

The global batch is split like the JAX side's (`pad_batch`), parameters mirrored, gradients summed
over the replicas by the Keras optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from mnist_models import _compat
from mnist_models._batches import Batches, one_hot
from mnist_models._parallel import first_devices, pad_batch


def mirrored_strategy(num_devices: int | None = None) -> tf.distribute.MirroredStrategy:
  """MirroredStrategy over the first `num_devices` GPUs, or logical CPUs where there is no GPU.

  On CPU it reduces through one device: TF's default collective all-reduce cannot have two
  strategies over different device sets in one process (a group-size error), and it has no
  speed to offer between logical CPUs. On GPUs TF's default (NCCL) is kept.
  """
  gpus = tf.config.list_logical_devices("GPU")
  devices = first_devices(gpus or tf.config.list_logical_devices("CPU"), num_devices, "TensorFlow")
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
      lambda context: tf.constant(shards[context.replica_id_in_sync_group])
    )

  return (split(batch.images), split(one_hot(batch.labels)), split(batch.mask), tf.constant(float(np.sum(batch.mask))))


def make_keras_data_parallel_step(model: keras.Model, strategy: tf.distribute.Strategy) -> Callable:
  """A `tf.function` step over `distribute_batch` output: step(images, onehot, mask, count) -> global loss.

  `model` must have been built and compiled (compile_keras_model) inside `strategy.scope()`. Each
  replica takes its share of the global mean loss (sum over its real examples / global count); the
  Keras optimizer sums the replicas' gradients (an all-reduce) before its update: TF's own custom-training-loop
  recipe for MirroredStrategy. Where the optimizer does not (Keras 3.3, keras#19308), the step sums them.
  """
  optimizer, loss_fn = model.optimizer, keras.losses.CategoricalCrossentropy(reduction=None)
  with strategy.scope():
    if not optimizer.built:
      optimizer.build(model.trainable_variables)

  def replica_step(images, onehot, mask, count):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(loss_fn(onehot, model(images, training=True)) * mask) / count
    grads = tape.gradient(loss, model.trainable_variables)
    if not _compat.keras_sums_replica_gradients(optimizer):
      grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return loss

  @tf.function
  def step(images, onehot, mask, count):
    losses = strategy.run(replica_step, args=(images, onehot, mask, count))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

  return step
