"""Compile latency: the first call of a freshly built train step, caches emptied each round."""

import jax
import pytest

import mnist_models as mm
from benchmarks.conftest import BATCH, jax_batch, keras_batch

pytestmark = pytest.mark.benchmark(group="compile")
ROUNDS = 3  # each round compiles from scratch (~1-3 s here)


def test_compile_jax_jit(timed, batches):
  batch = jax_batch(batches, BATCH)
  state = mm.create_train_state(rng=jax.random.key(0))

  def fresh():
    jax.clear_caches()  # no traced, lowered or compiled program survives from an earlier round
    return (mm.new_tuned_jit(mm.train_step),), {}

  def first_call(step):
    _, loss = jax.block_until_ready(step(state, batch))
    return float(loss)
  timed(first_call, framework="jax", variant="jax-jit", batch_size=BATCH, images=None, flops=None,
        rounds=ROUNDS, guard=False, warmup=False, setup=fresh)


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_compile_keras(timed, batches, mode):
  x, y = keras_batch(batches, BATCH)

  def fresh():  # a new model has a new train function: nothing traced yet
    return (mm.compile_keras_model(mm.build_keras_cnn(), mode),), {}
  timed(lambda model: mm.keras_train_step(model, x, y), framework="keras", variant=f"keras-{mode}",
        batch_size=BATCH, images=None, flops=None, rounds=ROUNDS, guard=False, warmup=False, setup=fresh)
