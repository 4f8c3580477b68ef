"""Compile latency: the first call of a freshly built train step, caches emptied each round.

Every round starts from the same seed-0 weights, so each first call must give the loss of those
weights on the batch (the loss is taken before the update): checked beside the timing.
"""

import jax
import pytest

import mnist_models as mm
from mnist_models.bench import BATCH, Workload, host_batch

pytestmark = pytest.mark.benchmark(group="compile")
ROUNDS = 3  # each round compiles from scratch (~1-3 s here)


@pytest.fixture(scope="module")
def start(batches):
  """(seed-0 state, host batch, the loss of that state on that batch)."""
  state, batch = mm.create_train_state(rng=jax.random.key(0)), host_batch(batches, BATCH)
  sums = mm.jit_eval_step(state, jax.device_put(batch))
  return state, batch, float(sums["loss_sum"]) / float(sums["count"])


def test_compile_jax_jit(timed, start):
  state, host, reference = start
  batch = jax.device_put(host)

  def fresh():
    jax.clear_caches()  # no traced, lowered or compiled program survives from an earlier round
    return (mm.new_tuned_jit(mm.train_step),), {}

  def first_call(step):
    _, loss = jax.block_until_ready(step(state, batch))
    return float(loss)
  timed(first_call, workload=Workload.train(batch), framework="jax", variant="jax-jit", expect=reference,
        rounds=ROUNDS, guard=False, warmup=False, setup=fresh, rates=False)


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_compile_keras(timed, start, mode):
  state, host, reference = start
  batch = mm.keras_batch(host)

  def fresh():  # a new model has a new train function: nothing traced yet
    return (mm.copy_flax_params_to_keras(state.params, mm.compile_keras_model(mm.build_keras_cnn(), mode)),), {}
  timed(lambda model: mm.keras_train_step(model, batch), workload=Workload.train(batch), framework="keras",
        variant=f"keras-{mode}", expect=reference, rounds=ROUNDS, guard=False, warmup=False, setup=fresh, rates=False)
