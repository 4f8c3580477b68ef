"""NNX training with the same Adam, loss and batches as the Linen trainer, in flax's two documented forms.

- `nnx_train_step(model, optimizer, batch)`: the idiomatic `nnx.jit` step, which updates `model` and
  `optimizer` in place. Each call walks the Python object graph (split before, merge after the
  compiled program): per-call overhead that flax's docs warn about for small models.
- `nnx_split_train_step(graphdef, state, batch)`: the same step as a pure function of the split state
  (`nnx.split` once, `nnx.merge` inside a plain `jax.jit`), flax's lowest-overhead form; `state`
  in, `state` out, like the Linen TrainState. Unlike `nnx.jit`, which takes no per-function compiler
  options, it can be jitted with the suite's tuning (`tuned_jit`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np
from flax import nnx

from mnist_models import _compat
from mnist_models._batches import Batches
from mnist_models._flax_model import INIT_OPTIONS
from mnist_models._jax_train import adam, eval_sums, mean_nll
from mnist_models._nnx_model import NNXCNN
from mnist_models._spec import DEFAULT_SPEC, DEFAULT_TRAIN, CNNSpec, TrainConfig


def create_nnx_model(
  spec: CNNSpec = DEFAULT_SPEC, *, seed: int = 0, config: TrainConfig = DEFAULT_TRAIN
) -> tuple[NNXCNN, nnx.Optimizer]:
  """A fresh NNX model and its optimizer: the suite's shared Adam, hyper-parameters from `config` (data)."""
  model = _init_model(spec, seed)
  optimizer = nnx.Optimizer(model, adam(), wrt=nnx.Param)
  return model, set_nnx_hyperparams(optimizer, **dataclasses.asdict(config))


def _init_model(spec: CNNSpec, seed: int) -> NNXCNN:
  """NNXCNN(spec, rngs=nnx.Rngs(seed)) with its initialisers run as one jitted program, as Linen's init_params is:
  op by op, its ~20 random initialisers compiled one by one (5.5 s of CPU in every fresh process, and again after
  every jax.clear_caches(); measured)."""
  graphdef, jitted = _jit_init(spec, fast_compile=True)
  try:
    state = jitted(jax.random.key(seed))
  except _compat.JaxRuntimeError:  # a backend that does not take the option
    graphdef, jitted = _jit_init(spec, fast_compile=False)
    state = jitted(jax.random.key(seed))
  return nnx.merge(graphdef, state)


@functools.cache
def _jit_init(spec: CNNSpec, fast_compile: bool):
  """(the model's graphdef, key -> its initial state, jitted)."""
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: NNXCNN(spec, rngs=nnx.Rngs(0))))
  init = lambda key: nnx.state(NNXCNN(spec, rngs=nnx.Rngs(key)))  # noqa: E731
  return graphdef, _compat.jit(init, compiler_options=INIT_OPTIONS if fast_compile else None)


def set_nnx_hyperparams(optimizer: nnx.Optimizer, **values: float) -> nnx.Optimizer:
  """Sets Adam hyper-parameters (learning_rate, eps, b1, b2) in place, as values: no step recompiles; returns it."""
  hyperparams = optimizer.opt_state.hyperparams
  for name, value in values.items():
    if name not in hyperparams:
      raise ValueError(f"unknown Adam hyper-parameter {name!r}; known: {', '.join(hyperparams)}")
    _compat.set_variable(hyperparams[name], jax.numpy.asarray(value, hyperparams[name][...].dtype))
  return optimizer


def _loss(model: NNXCNN, batch: Batches) -> jax.Array:
  return mean_nll(model(batch.images), batch)


@nnx.jit
def nnx_train_step(model: NNXCNN, optimizer: nnx.Optimizer, batch: Batches) -> jax.Array:
  """One Adam step on one batch, in place; returns the batch's loss before the update."""
  loss, grads = nnx.value_and_grad(_loss)(model, batch)
  _compat.nnx_update(optimizer, model, grads)
  return loss


@nnx.jit
def nnx_eval_step(model: NNXCNN, batch: Batches) -> dict[str, jax.Array]:
  """Summed loss, correct predictions and example count of one batch, as `eval_step`."""
  return eval_sums(model(batch.images), batch)


def nnx_split_train_step(graphdef: Any, state: Any, batch: Batches) -> tuple[Any, jax.Array]:
  """`nnx_train_step` as a pure function of `graphdef, state = nnx.split((model, optimizer))`: (new state, loss).

  Jit it with `graphdef` static (`jit_nnx_split_train_step`, or `tuned_jit(nnx_split_train_step,
  static_argnums=0)`). Write the state back with `nnx.update((model, optimizer), state)` when the
  objects are needed again.
  """
  model, optimizer = nnx.merge(graphdef, state)
  loss, grads = nnx.value_and_grad(_loss)(model, batch)
  _compat.nnx_update(optimizer, model, grads)
  return nnx.state((model, optimizer)), loss


jit_nnx_split_train_step = jax.jit(nnx_split_train_step, static_argnums=0)


def compile_nnx_step(step, *args):
  """The compiled program of the `nnx.jit` step `step` (nnx_train_step, nnx_eval_step) on `args`, for its
  fingerprint; None where this flax cannot lower an nnx.jit function (0.10)."""
  lowered = _compat.nnx_lower(step, *args)
  return lowered.compile() if lowered is not None else None


def nnx_train_steps(model: NNXCNN, optimizer: nnx.Optimizer, batches) -> np.ndarray:
  """`nnx_train_step` over the batches in order, in place; each step's loss [num_batches], read back once."""
  losses = [nnx_train_step(model, optimizer, batch) for batch in batches]
  return np.asarray(jax.device_get(losses), np.float32)


__all__ = [
  "create_nnx_model",
  "jit_nnx_split_train_step",
  "nnx_eval_step",
  "nnx_split_train_step",
  "nnx_train_step",
  "nnx_train_steps",
  "set_nnx_hyperparams",
]
