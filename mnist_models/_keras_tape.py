"""Hand-written TensorFlow train steps for the Keras model: `train_on_batch` without Keras' per-call bookkeeping.

TensorFlow only (tf.function, GradientTape); the rest of the Keras side also runs on Keras' JAX backend.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf


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
    optimizer.apply_gradients(
      zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
    )
    return loss

  return step


def make_keras_tape_loop(model: keras.Model) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
  """A whole epoch in one `tf.function`: the tape step over stacked batches [num_batches, batch, ...].

  Returns the losses [num_batches].
  """
  step = make_keras_tape_step(model)

  @tf.function
  def loop(images, onehot):
    losses = tf.TensorArray(tf.float32, size=tf.shape(images)[0])
    for i in tf.range(tf.shape(images)[0]):
      losses = losses.write(i, step(images[i], onehot[i]))
    return losses.stack()

  return loop
