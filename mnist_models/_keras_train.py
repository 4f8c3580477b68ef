"""Keras training in three modes (eager, graph, XLA), on the same batches as the JAX side."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import keras
import numpy as np

from mnist_models import _compat
from mnist_models._batches import Batches, one_batch, one_hot, valid_examples
from mnist_models._spec import DEFAULT_TRAIN, KERAS_MODES, TrainConfig


class KerasBatch(NamedTuple):
  """One batch as Keras takes it: images [batch, 28, 28, 1] and one-hot labels [batch, 10], as the backend's
  tensors (TF tensors, or JAX arrays under KERAS_BACKEND=jax).

  Stacked batches ([num_batches, batch, ...]) are held the same way for the whole-epoch tape loop.
  """

  images: Any
  onehot: Any


def compile_keras_model(
  model: keras.Model, mode: str = "graph", *, config: TrainConfig = DEFAULT_TRAIN, build: bool = True
) -> keras.Model:
  """Compiles `model` with Adam and categorical cross-entropy in one of KERAS_MODES; returns it.

  Adam's epsilon is given as in optax, but Keras adds it to sqrt(v) before bias correction
  (the Adam paper's "epsilon hat"), optax after: the two differ where gradients are ~eps.

  With `build`, Adam's moments and the accuracy metric's variables are created here, as
  `create_train_state` creates optax's state: left to Keras on TensorFlow, they are created inside
  the first traced step, which tf.function then traces a second time (graph and XLA modes; Keras
  itself builds them up front only under a distribution strategy). `build=False` keeps Keras'
  defaults, first-step retrace included, as a user's first `fit` pays it.
  """
  if mode not in KERAS_MODES:
    raise ValueError(f"unknown Keras mode {mode!r}; choose one of {', '.join(KERAS_MODES)}")
  adam = keras.optimizers.Adam(config.learning_rate, beta_1=config.b1, beta_2=config.b2, epsilon=config.eps)
  model.compile(optimizer=adam, loss="categorical_crossentropy", metrics=["accuracy"], **KERAS_MODES[mode])
  if build:
    model.optimizer.build(model.trainable_variables)
    images = keras.ops.zeros((1, *model.input_shape[1:]))
    model.compute_metrics(images, keras.ops.zeros((1, *model.output_shape[1:])), model(images))  # creates its variables
    model.reset_metrics()
  return model


def keras_batch(batch: Batches) -> KerasBatch:
  """`batch` (every example real) as the backend's device-resident tensors: the Keras side's `jax.device_put(batch)`.

  Keras' steps have no mask, so a padded batch is refused rather than trained on its padding.
  """
  if not np.all(np.asarray(batch.mask) == 1):
    raise ValueError(
      "keras_batch needs a batch whose examples are all real (mask of ones); use one_batch(images, "
      "labels), or keras_train_epoch, which feeds a padded epoch's real examples to fit"
    )
  return KerasBatch(keras.ops.convert_to_tensor(batch.images), keras.ops.convert_to_tensor(one_hot(batch.labels)))


def keras_train_step(model: keras.Model, batch: KerasBatch) -> float:
  """One optimizer step on one batch; returns the batch's loss before the update, read back to the host."""
  _compat.reset_metrics_before_on_batch(model)
  return float(model.train_on_batch(batch.images, batch.onehot, return_dict=True)["loss"])


def keras_eval_step(model: keras.Model, batch: KerasBatch) -> dict[str, float]:
  """Loss and accuracy of one batch, read back to the host."""
  _compat.reset_metrics_before_on_batch(model)
  logs = model.test_on_batch(batch.images, batch.onehot, return_dict=True)
  return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}


def keras_train_steps(model: keras.Model, batches: Batches) -> np.ndarray:
  """`keras_train_step` over stacked batches [num_batches, batch, ...] in order; each step's loss [num_batches]."""
  return np.array([keras_train_step(model, keras_batch(Batches(*b))) for b in zip(*batches, strict=True)], np.float32)


def keras_train_epoch(model: keras.Model, batches: Batches) -> float:
  """One `fit` epoch over exactly the examples and batches of `batches`, in order; returns the mean loss.

  Keras gets the real examples unpadded: `fit` cuts them into the same batches, its last one
  partial, and weights each batch's loss by its size as the JAX epoch does.
  """
  images, labels = valid_examples(batches)
  history = model.fit(images, one_hot(labels), batch_size=batches.mask.shape[1], epochs=1, shuffle=False, verbose=0)
  return float(history.history["loss"][-1])


def keras_evaluate(model: keras.Model, batches: Batches) -> dict[str, float]:
  """Mean loss and accuracy over the real examples of `batches`."""
  images, labels = valid_examples(batches)
  logs = model.evaluate(images, one_hot(labels), batch_size=batches.mask.shape[1], verbose=0, return_dict=True)
  return {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}


@functools.cache
def keras_on_batch_retracing(mode: str, task: str = "train") -> str | None:
  """What this Keras traces again on each `train_on_batch` ('train') or `test_on_batch` ('eval') call after the
  first, in `mode`: None (nothing: today's Keras), 'the step' (its train or test step itself) or 'the function
  around the step' (Keras 3.3 on TF 2.16, tensorflow#67033). Measured once per process, on a model of its own."""
  from mnist_models._compile_count import count_compiles  # noqa: PLC0415 - it imports TF lazily
  from mnist_models._keras_model import build_keras_cnn  # noqa: PLC0415

  model = compile_keras_model(build_keras_cnn(), mode)
  batch = keras_batch(one_batch(np.zeros((2, 28, 28, 1), np.float32), np.arange(2, dtype=np.int32)))
  call = functools.partial(keras_train_step if task == "train" else keras_eval_step, model, batch)
  traces = lambda: model.train_step_traces if task == "train" else model.test_step_traces  # noqa: E731
  call()
  before = traces()
  with count_compiles(explain=False) as seen:
    call()
  if traces() != before:
    return "the step"
  return "the function around the step" if seen.tf_traced_any else None
