"""Keras training in three modes (eager, graph, XLA), on the same batches as the JAX side."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from mnist_models._batches import Batches, valid_examples
from mnist_models._spec import DEFAULT_TRAIN, TrainConfig

KERAS_MODES = {
    "eager": {"run_eagerly": True},   # op by op in Python, like un-jitted JAX
    "graph": {},                      # Keras' default: the step traced into a tf.function
    "xla": {"jit_compile": True},     # that tf.function compiled by XLA
}


class KerasBatch(NamedTuple):
  """One batch as Keras takes it: images [batch, 28, 28, 1] and one-hot labels [batch, 10], as the backend's
  tensors (TF tensors, or JAX arrays under KERAS_BACKEND=jax).

  Stacked batches ([num_batches, batch, ...]) are held the same way for the whole-epoch tape loop.
  """

  images: Any
  onehot: Any


def compile_keras_model(model: keras.Model, mode: str = "graph", *, config: TrainConfig = DEFAULT_TRAIN) -> keras.Model:
  """Compiles `model` with Adam and categorical cross-entropy in one of KERAS_MODES; returns it.

  Adam's epsilon is given as in optax, but Keras adds it to sqrt(v) before bias correction
  (the Adam paper's "epsilon hat"), optax after: the two differ where gradients are ~eps.
  """
  if mode not in KERAS_MODES:
    raise ValueError(f"unknown Keras mode {mode!r}; choose one of {', '.join(KERAS_MODES)}")
  adam = keras.optimizers.Adam(config.learning_rate, beta_1=config.b1, beta_2=config.b2, epsilon=config.eps)
  model.compile(optimizer=adam, loss="categorical_crossentropy", metrics=["accuracy"], **KERAS_MODES[mode])
  return model


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
  """Integer labels [N] -> float32 one-hot [N, num_classes]."""
  return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def keras_batch(batch: Batches) -> KerasBatch:
  """`batch` (every example real) as the backend's device-resident tensors: the Keras side's `jax.device_put(batch)`.

  Keras' steps have no mask, so a padded batch is refused rather than trained on its padding.
  """
  if not np.all(np.asarray(batch.mask) == 1):
    raise ValueError("keras_batch needs a batch whose examples are all real (mask of ones); use one_batch(images, "
                     "labels), or keras_train_epoch, which feeds a padded epoch's real examples to fit")
  return KerasBatch(keras.ops.convert_to_tensor(batch.images), keras.ops.convert_to_tensor(one_hot(batch.labels)))


def keras_train_step(model: keras.Model, batch: KerasBatch) -> float:
  """One optimizer step on one batch; returns the batch's loss before the update, read back to the host."""
  return float(model.train_on_batch(batch.images, batch.onehot, return_dict=True)["loss"])


def keras_eval_step(model: keras.Model, batch: KerasBatch) -> dict[str, float]:
  """Loss and accuracy of one batch, read back to the host."""
  logs = model.test_on_batch(batch.images, batch.onehot, return_dict=True)
  return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}


def keras_train_steps(model: keras.Model, batches: Batches) -> np.ndarray:
  """`keras_train_step` over stacked batches [num_batches, batch, ...] in order; each step's loss [num_batches]."""
  return np.array([keras_train_step(model, keras_batch(Batches(*b))) for b in zip(*batches)], np.float32)


def keras_train_epoch(model: keras.Model, batches: Batches) -> float:
  """One `fit` epoch over exactly the examples and batches of `batches`, in order; returns the mean loss.

  Keras gets the real examples unpadded: `fit` cuts them into the same batches, its last one
  partial, and weights each batch's loss by its size as the JAX epoch does.
  """
  images, labels = valid_examples(batches)
  history = model.fit(images, one_hot(labels), batch_size=batches.mask.shape[1], epochs=1,
                      shuffle=False, verbose=0)
  return float(history.history["loss"][-1])


def keras_evaluate(model: keras.Model, batches: Batches) -> dict[str, float]:
  """Mean loss and accuracy over the real examples of `batches`."""
  images, labels = valid_examples(batches)
  logs = model.evaluate(images, one_hot(labels), batch_size=batches.mask.shape[1], verbose=0, return_dict=True)
  return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}


def make_keras_tape_step(model: keras.Model) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
  """A hand-written `tf.function` train step (GradientTape, the compiled model's Adam, the same loss).

  Does what `train_on_batch` does without Keras' per-call bookkeeping (metrics, logs, data
  adapters). `model` must come from `compile_keras_model`; returns step(images, onehot) -> loss.
  """
  optimizer, loss_fn = model.optimizer, keras.losses.CategoricalCrossentropy()
  if not optimizer.built:
    optimizer.build(model.trainable_variables)  # Adam's slots now, not inside the traced function

  @tf.function
  def step(images, onehot):
    with tf.GradientTape() as tape:
      loss = loss_fn(onehot, model(images, training=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss
  return step


def make_keras_tape_loop(model: keras.Model) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
  """A whole epoch in one `tf.function`: the tape step over stacked batches [num_batches, batch, ...]; losses [num_batches]."""
  step = make_keras_tape_step(model)

  @tf.function
  def loop(images, onehot):
    losses = tf.TensorArray(tf.float32, size=tf.shape(images)[0])
    for i in tf.range(tf.shape(images)[0]):
      losses = losses.write(i, step(images[i], onehot[i]))
    return losses.stack()
  return loop
