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
  state = [create_train_state(rng=jax.random.key(seed))]
  model = compile_keras_model(copy_flax_params_to_keras(state[0].params, build_keras_cnn()), keras_mode)
  test = make_batches(data.test_images, data.test_labels, batch_size)
  test_on_device = device_batches(test)

  def jax_epoch(on_device: Batches) -> float:
    state[0], loss = train_epoch(state[0], on_device, tuned_jit(train_step))
    return loss

  def jax_evaluate() -> dict:
    return evaluate(state[0], test_on_device, tuned_jit(eval_step))

  history = {"jax": [], "keras": [], "source": data.source, "batch_size": batch_size, "keras_mode": keras_mode}
  for epoch in range(1, epochs + 1):
    batches = make_batches(data.train_images, data.train_labels, batch_size, seed=seed + epoch)
    history["jax"].append(_epoch(epoch, functools.partial(jax_epoch, device_batches(batches)), jax_evaluate))
    keras_epoch = functools.partial(keras_train_epoch, model, batches)
    history["keras"].append(_epoch(epoch, keras_epoch, functools.partial(keras_evaluate, model, test)))
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
