"""Training both frameworks side by side for N epochs: per-epoch losses, accuracies and times."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax

from mnist_models import (
  MNIST,
  Batches,
  build_keras_cnn,
  compile_keras_model,
  copy_flax_params_to_keras,
  create_train_state,
  device_batches,
  eval_step,
  evaluate,
  keras_evaluate,
  keras_train_epoch,
  make_batches,
  train_epoch,
  train_step,
  tuned_jit,
)

MODES = ("jax-jit", "keras-eager", "keras-graph", "keras-xla")  # the suite's tuned jit; Keras in each of KERAS_MODES


class Trainer:
  """One framework's training from seed `seed`'s initial weights (Keras gets Flax's, copied), in one of MODES:
  `feed(batches)` makes host batches ready (on the device for JAX), `train(fed)` runs one epoch over them and returns
  its mean loss, `evaluate()` gives the test images' loss and accuracy."""

  def __init__(self, mode: str, data: MNIST, seed: int = 0, batch_size: int = 64):
    if mode not in MODES:
      raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    self.mode, self._state = mode, create_train_state(rng=jax.random.key(seed))
    self._test = make_batches(data.test_images, data.test_labels, batch_size)
    if mode == "jax-jit":
      self._step, self._eval, self._test = tuned_jit(train_step), tuned_jit(eval_step), device_batches(self._test)
    else:
      keras = copy_flax_params_to_keras(self._state.params, build_keras_cnn())
      self._model = compile_keras_model(keras, mode.removeprefix("keras-"))

  def feed(self, batches: Batches):
    return device_batches(batches) if self.mode == "jax-jit" else batches

  def train(self, fed) -> float:
    if self.mode != "jax-jit":
      return keras_train_epoch(self._model, fed)
    self._state, loss = train_epoch(self._state, fed, self._step)
    return loss

  def evaluate(self) -> dict[str, float]:
    if self.mode == "jax-jit":
      return evaluate(self._state, self._test, self._eval)
    return keras_evaluate(self._model, self._test)


def train_curves(
  data: MNIST,
  *,
  epochs: int,
  batch_size: int = 64,
  seed: int = 0,
  keras_mode: str = "graph",
  progress: Callable[[str], None] = print,
) -> dict:
  """Trains JAX and Keras from the same initial weights on the same batches; one record per epoch.

  Each epoch reshuffles with seed + epoch, and both frameworks see that same order. JAX runs the
  suite's tuned jit (`tuned_jit`). Epoch times are wall-clock seconds of the training loop alone;
  the first epoch's include compilation for both.
  """
  if epochs < 1:
    raise ValueError(f"epochs must be >= 1, got {epochs}")
  trainers = {
    "jax": Trainer("jax-jit", data, seed, batch_size),
    "keras": Trainer(f"keras-{keras_mode}", data, seed, batch_size),
  }
  history = {"jax": [], "keras": [], "source": data.source, "batch_size": batch_size, "keras_mode": keras_mode}
  for epoch in range(1, epochs + 1):
    batches = make_batches(data.train_images, data.train_labels, batch_size, seed=seed + epoch)
    for name, t in trainers.items():
      history[name].append(_epoch(epoch, functools.partial(t.train, t.feed(batches)), t.evaluate))
    progress(f"epoch {epoch}/{epochs}  " + "  |  ".join(_summary(k, history[k][-1]) for k in ("jax", "keras")))
  return history


def _epoch(epoch: int, train: Callable[[], float], evaluate_: Callable[[], dict]) -> dict:
  """One epoch's record: `train()`'s loss and wall time (the training loop alone), then `evaluate_()`'s metrics."""
  start = time.perf_counter()
  loss = train()
  seconds = time.perf_counter() - start
  return {"epoch": epoch, "train_loss": loss, "seconds": seconds, **_prefixed(evaluate_())}


def _prefixed(metrics: dict[str, float]) -> dict[str, float]:
  return {"val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"]}


def _summary(name: str, r: dict) -> str:
  return (
    f"{name}: loss {r['train_loss']:.4f} val {r['val_loss']:.4f} acc {r['val_accuracy']:.3f} ({r['seconds']:.2f} s)"
  )
