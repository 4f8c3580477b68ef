"""A whole epoch of EPOCH_BATCHES batches through each framework's natural loop."""

import jax
import numpy as np
import pytest
import tensorflow as tf

import mnist_models as mm
from benchmarks.conftest import BATCH, EPOCH_BATCHES

pytestmark = pytest.mark.benchmark(group="epoch")
IMAGES = EPOCH_BATCHES * BATCH
FLOPS = mm.train_flops(mm.DEFAULT_SPEC, IMAGES)
# On CPU, inside lax.scan XLA leaves the conv weight gradient un-canonicalised and falls back to a
# naive loop (jax-ml/jax#12868): ~10x slower per step here, so the scan epochs get few rounds. The
# canonical-conv variant (mnist_models/_conv.py) writes that gradient in canonical form.
SCAN_ROUNDS = 2


def test_epoch_jax_loop(timed, batches):
  on_device, step = mm.device_batches(batches), mm.tuned_jit(mm.train_step)
  state = [mm.create_train_state(rng=jax.random.key(0))]

  def epoch():
    state[0], loss = mm.train_epoch(state[0], on_device, step)  # reads every loss back: the device has finished
    return loss
  timed(epoch, framework="jax", variant="jax-loop", batch_size=BATCH, images=IMAGES, flops=FLOPS)


def _scan_epoch(timed, batches, spec, variant):
  stacked = jax.device_put(batches)
  state = [mm.create_train_state(spec, rng=jax.random.key(0))]
  compiled = mm.tuned_jit(mm.scan_epoch).lower(state[0], stacked).compile()  # compiled, not run: 16 steps

  def epoch():
    state[0], losses = jax.block_until_ready(compiled(state[0], stacked))
    return float(np.mean(jax.device_get(losses)))  # on the host: a jnp mean would compile
  timed(epoch, framework="jax", variant=variant, batch_size=BATCH, images=IMAGES, flops=FLOPS, rounds=SCAN_ROUNDS,
        warmup=False)  # compiled above


def test_epoch_jax_scan(timed, batches):
  _scan_epoch(timed, batches, mm.DEFAULT_SPEC, "jax-scan")


def test_epoch_jax_scan_canonical(timed, batches):
  """The same scan with the canonical-layout convolution (CANONICAL_SPEC): the while-loop slowdown avoided."""
  _scan_epoch(timed, batches, mm.CANONICAL_SPEC, "jax-scan-canonical")


def test_epoch_keras_tape_loop(timed, batches):
  """The whole epoch inside one tf.function: the hand-written tape step in a tf.range loop."""
  loop = mm.make_keras_tape_loop(mm.compile_keras_model(mm.build_keras_cnn(), "graph"))
  images, onehot = tf.constant(batches.images), tf.constant(mm.one_hot(batches.labels))
  timed(lambda: float(tf.reduce_mean(loop(images, onehot))), framework="keras", variant="keras-tape-loop",
        batch_size=BATCH, images=IMAGES, flops=FLOPS)


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_epoch_keras_fit(timed, batches, mode):
  model = mm.compile_keras_model(mm.build_keras_cnn(), mode)
  timed(lambda: mm.keras_train_epoch(model, batches), framework="keras", variant=f"keras-fit-{mode}",
        batch_size=BATCH, images=IMAGES, flops=FLOPS)
