"""JAX/Flax/Optax training: one train step and one eval step, used jitted or not, and epochs."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from mnist_models._batches import Batches
from mnist_models._flax_model import CNN, init_params
from mnist_models._spec import DEFAULT_SPEC, DEFAULT_TRAIN, CNNSpec, TrainConfig


class TrainState(train_state.TrainState):
  """Flax's TrainState: step, apply_fn, params, tx and opt_state."""


@functools.cache
def adam() -> optax.GradientTransformation:
  """Adam whose hyper-parameters live in its state as data (set from a TrainConfig per state).

  One shared instance: a TrainState carries its optimizer as static pytree metadata, so a
  new optax object per state would make every fresh state recompile the jitted step.
  """
  return optax.inject_hyperparams(optax.adam)(**dataclasses.asdict(DEFAULT_TRAIN))


@functools.cache
def apply_fn(spec: CNNSpec) -> Callable:
  """`CNN(spec).apply`, one per spec: bound methods compare by identity, and a new one per state would recompile."""
  return CNN(spec).apply


def create_train_state(
  spec: CNNSpec = DEFAULT_SPEC, *, rng: jax.Array, config: TrainConfig = DEFAULT_TRAIN
) -> TrainState:
  """Fresh parameters and Adam state; the hyper-parameters are data, so changing them never recompiles."""
  state = TrainState.create(apply_fn=apply_fn(spec), params=init_params(spec, rng=rng)["params"], tx=adam())
  return set_hyperparams(state, **dataclasses.asdict(config))


def set_hyperparams(state: TrainState, **values: float) -> TrainState:
  """The same state with new Adam hyper-parameters (learning_rate, eps, b1, b2): values, not a new program."""
  hyperparams = dict(state.opt_state.hyperparams)
  for name, value in values.items():
    if name not in hyperparams:
      raise ValueError(f"unknown Adam hyper-parameter {name!r}; known: {', '.join(hyperparams)}")
    hyperparams[name] = jnp.asarray(value, hyperparams[name].dtype)
  return state.replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


def set_learning_rate(state: TrainState, learning_rate: float) -> TrainState:
  """The same state with a new learning rate; the jitted step does not recompile."""
  return set_hyperparams(state, learning_rate=learning_rate)


def _masked_nll(logprobs: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-example negative log-likelihood [batch], zero where mask is 0."""
  return -jnp.take_along_axis(logprobs, labels[:, None], axis=-1)[:, 0] * mask


def mean_nll(logprobs: jax.Array, batch: Batches) -> jax.Array:
  """Mean cross-entropy of log-probabilities [batch, classes] over the batch's real examples."""
  return _masked_nll(logprobs, batch.labels, batch.mask).sum() / jnp.maximum(batch.mask.sum(), 1.0)


def eval_sums(logprobs: jax.Array, batch: Batches) -> dict[str, jax.Array]:
  """Summed loss, correct predictions and example count of one batch (sums, so batches add up)."""
  correct = (jnp.argmax(logprobs, -1) == batch.labels) * batch.mask
  return {
    "loss_sum": _masked_nll(logprobs, batch.labels, batch.mask).sum(),
    "correct": correct.sum(),
    "count": batch.mask.sum(),
  }


def loss_fn(params, apply_fn: Callable, batch: Batches) -> jax.Array:
  """Mean cross-entropy over the batch's real examples."""
  return mean_nll(apply_fn({"params": params}, batch.images), batch)


def train_step(state: TrainState, batch: Batches) -> tuple[TrainState, jax.Array]:
  """One Adam step on one batch; returns the new state and the batch's loss before the update."""
  loss, grads = jax.value_and_grad(loss_fn)(state.params, state.apply_fn, batch)
  return state.apply_gradients(grads=grads), loss


def eval_step(state: TrainState, batch: Batches) -> dict[str, jax.Array]:
  """Summed loss, correct predictions and example count of one batch (sums, so batches add up)."""
  return eval_sums(state.apply_fn({"params": state.params}, batch.images), batch)


jit_train_step = jax.jit(train_step)
jit_eval_step = jax.jit(eval_step)


def train_steps(
  state: TrainState, batches: Sequence[Batches], step: Callable = jit_train_step
) -> tuple[TrainState, np.ndarray]:
  """Runs `step` over the batches in order; returns the state and each step's loss [num_batches].

  The losses are read back once, at the end, so the loop never waits for the device in between.
  """
  losses = []
  for batch in batches:
    state, loss = step(state, batch)
    losses.append(loss)
  return state, np.asarray(jax.device_get(losses), np.float32)


def train_epoch(
  state: TrainState, batches: Sequence[Batches], step: Callable = jit_train_step
) -> tuple[TrainState, float]:
  """Runs `step` over device-resident batches; returns the state and the epoch's mean loss over real examples."""
  state, losses = train_steps(state, batches, step)
  return state, _weighted_mean(losses, [b.mask for b in batches])


def evaluate(state: TrainState, batches: list[Batches], step: Callable = jit_eval_step) -> dict[str, float]:
  """Mean loss and accuracy over every real example of the batches."""
  sums = jax.device_get([step(state, batch) for batch in batches])
  count = sum(float(s["count"]) for s in sums)
  return {
    "loss": sum(float(s["loss_sum"]) for s in sums) / count,
    "accuracy": sum(float(s["correct"]) for s in sums) / count,
  }


def scan_epoch(state: TrainState, batches: Batches) -> tuple[TrainState, jax.Array]:
  """A whole epoch as one program (jit it): `lax.scan` of `train_step` over stacked batches; losses [num_batches]."""
  return jax.lax.scan(train_step, state, batches)


jit_scan_epoch = jax.jit(scan_epoch)


def _weighted_mean(losses, masks) -> float:
  counts = np.array([float(np.asarray(m).sum()) for m in masks])
  return float(np.dot(np.asarray(losses, np.float64), counts) / counts.sum())
