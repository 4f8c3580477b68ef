"""Compile latency: the first call of a freshly built train step, caches emptied each round.

Every round starts from the same seed-0 weights, so each first call must give the loss of those
weights on the batch (the loss is taken before the update): checked beside the timing.
"""

import jax
import pytest

import mnist_models as mm
from mnist_models.bench import Workload, runs

pytestmark = pytest.mark.benchmark(group="compile")
ROUNDS = 3  # each round compiles from scratch (~1-3 s here)


def _rounds(batch, reference: float) -> dict:
  """What every compile benchmark's rounds share: ROUNDS first train steps on `batch`, each giving `reference`."""
  return {"workload": Workload.train(batch), "expect": reference, "rounds": ROUNDS}


def test_compile_jax_jit(timed, seed_reference):
  state, host, reference = seed_reference
  batch = jax.device_put(host)

  def fresh():
    jax.clear_caches()  # no traced, lowered or compiled program survives from an earlier round
    return (mm.new_tuned_jit(mm.train_step),), {}

  def first_call(step):
    _, loss = jax.block_until_ready(step(state, batch))
    return float(loss)

  timed.first_call(first_call, setup=fresh, framework="jax", variant="jax-jit", **_rounds(batch, reference))


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_compile_keras(timed, seed_reference, mode):
  state, host, reference = seed_reference
  batch = mm.keras_batch(host)

  def fresh():  # a new model has a new train function: nothing traced yet; Keras' defaults, as a user's first fit
    model = mm.compile_keras_model(mm.build_keras_cnn(), mode, build=False)
    return (mm.copy_flax_params_to_keras(state.params, model),), {}

  step = lambda model: mm.keras_train_step(model, batch)
  timed.first_call(step, setup=fresh, framework="keras", variant=f"keras-{mode}", **_rounds(batch, reference))


def test_compile_nnx_jit(timed, seed_reference):
  """NNX's nnx.jit step, first call on a new model holding the seed-0 Linen weights."""
  state, host, reference = seed_reference
  batch = jax.device_put(host)
  models = [mm.create_nnx_model() for _ in range(ROUNDS)]  # made before any cache is emptied: their ops compiled once
  for model, _ in models:
    mm.copy_linen_params_to_nnx({"params": state.params}, model)

  def fresh():  # nnx_train_step is one nnx.jit function: a new model of the same structure would hit its cache
    jax.clear_caches()
    return models.pop(), {}

  step = lambda model, optimizer: float(mm.nnx_train_step(model, optimizer, batch))
  timed.first_call(step, setup=fresh, framework="jax", variant="nnx-jit", **_rounds(batch, reference))


def test_compile_keras_jax(timed_remote, keras_on_jax, seed_reference):
  """Keras on its JAX backend, in its own process: the first train_on_batch of a new model (one round trip included).

  As for Keras on TF, a new model has a new train function (here a new jax.jit of its step), compiled at its first call.
  """
  _, host, reference = seed_reference
  timed_remote(
    keras_on_jax,
    runs.keras_run,
    variant="keras-jax",
    batch=host,
    expect=reference,
    fresh_rounds=ROUNDS,
    num_devices=None,
    build=False,
  )  # Keras' defaults, as for Keras on TF
