"""Keras training in three modes (eager, graph, XLA), on the same batches as the JAX side."""

from __future__ import annotations

import keras
import numpy as np

from mnist_models._batches import Batches, valid_examples
from mnist_models._jax_train import ADAM_EPSILON, LEARNING_RATE

KERAS_MODES = {
    "eager": {"run_eagerly": True},   # op by op in Python, like un-jitted JAX
    "graph": {},                      # Keras' default: the step traced into a tf.function
    "xla": {"jit_compile": True},     # that tf.function compiled by XLA
}


def compile_keras_model(model: keras.Model, mode: str = "graph", *, learning_rate: float = LEARNING_RATE,
                        eps: float = ADAM_EPSILON) -> keras.Model:
  """Compiles `model` with Adam and categorical cross-entropy in one of KERAS_MODES; returns it.

  Adam's epsilon is given as in optax, but Keras adds it to sqrt(v) before bias correction
  (the Adam paper's "epsilon hat"), optax after: the two differ where gradients are ~eps.
  """
  if mode not in KERAS_MODES:
    raise ValueError(f"unknown Keras mode {mode!r}; choose one of {', '.join(KERAS_MODES)}")
  model.compile(optimizer=keras.optimizers.Adam(learning_rate, epsilon=eps), loss="categorical_crossentropy",
                metrics=["accuracy"], **KERAS_MODES[mode])
  return model


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
  """Integer labels [N] -> float32 one-hot [N, num_classes]."""
  return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def keras_train_step(model: keras.Model, images: np.ndarray, onehot: np.ndarray) -> float:
  """One optimizer step on one batch; returns the batch's loss, read back to the host."""
  return float(model.train_on_batch(images, onehot, return_dict=True)["loss"])


def keras_eval_step(model: keras.Model, images: np.ndarray, onehot: np.ndarray) -> dict[str, float]:
  """Loss and accuracy of one batch, read back to the host."""
  logs = model.test_on_batch(images, onehot, return_dict=True)
  return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}


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
