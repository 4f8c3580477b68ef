"""Training both frameworks side by side for N epochs: per-epoch losses, accuracies and times."""

from __future__ import annotations

import time
from typing import Callable

import jax

from mnist_models import (MNIST, build_keras_cnn, compile_keras_model, copy_flax_params_to_keras, create_train_state,
                          device_batches, eval_step, evaluate, keras_evaluate, keras_train_epoch, make_batches,
                          train_epoch, train_step, tuned_jit)


def train_curves(data: MNIST, *, epochs: int, batch_size: int = 64, seed: int = 0,
                 keras_mode: str = "graph", progress: Callable[[str], None] = print) -> dict:
  """Trains JAX and Keras from the same initial weights on the same batches; one record per epoch.

  Each epoch reshuffles with seed + epoch, and both frameworks see that same order. JAX runs the
  suite's tuned jit (`tuned_jit`). Epoch times are wall-clock seconds of the training loop alone;
  the first epoch's include compilation for both.
  """
  if epochs < 1:
    raise ValueError(f"epochs must be >= 1, got {epochs}")
  state = create_train_state(rng=jax.random.key(seed))
  model = compile_keras_model(copy_flax_params_to_keras(state.params, build_keras_cnn()), keras_mode)
  test = make_batches(data.test_images, data.test_labels, batch_size)
  test_on_device = device_batches(test)
  history = {"jax": [], "keras": [], "source": data.source, "batch_size": batch_size, "keras_mode": keras_mode}
  for epoch in range(1, epochs + 1):
    batches = make_batches(data.train_images, data.train_labels, batch_size, seed=seed + epoch)
    on_device = device_batches(batches)
    start = time.perf_counter()
    state, loss = train_epoch(state, on_device, tuned_jit(train_step))
    history["jax"].append({"epoch": epoch, "train_loss": loss, "seconds": time.perf_counter() - start,
                           **_prefixed(evaluate(state, test_on_device, tuned_jit(eval_step)))})
    start = time.perf_counter()
    loss = keras_train_epoch(model, batches)
    history["keras"].append({"epoch": epoch, "train_loss": loss, "seconds": time.perf_counter() - start,
                             **_prefixed(keras_evaluate(model, test))})
    progress(f"epoch {epoch}/{epochs}  " + "  |  ".join(_summary(k, history[k][-1]) for k in ("jax", "keras")))
  return history


def _prefixed(metrics: dict[str, float]) -> dict[str, float]:
  return {"val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"]}


def _summary(name: str, r: dict) -> str:
  return (f"{name}: loss {r['train_loss']:.4f} val {r['val_loss']:.4f} acc {r['val_accuracy']:.3f} "
          f"({r['seconds']:.2f} s)")
