"""One train step and one eval step: jitted vs op-by-op JAX, and Keras eager, graph and XLA."""

import jax
import pytest

import mnist_models as mm
from benchmarks.conftest import BATCH, jax_batch, keras_batch
from mnist_models import _process

SWEEP = (32, 64, 128, 256)
SLOW_ROUNDS = 5  # op-by-op variants take ~0.1 s a call: a few rounds suffice


def _jax_train(step, batches, batch_size):
  batch = jax_batch(batches, batch_size)
  state = [mm.create_train_state(rng=jax.random.key(0))]

  def call():
    state[0], loss = jax.block_until_ready(step(state[0], batch))
    return float(loss)
  return call


def _keras_train(mode, batches, batch_size):
  model = mm.compile_keras_model(mm.build_keras_cnn(), mode)
  x, y = keras_batch(batches, batch_size)
  return lambda: mm.keras_train_step(model, x, y)


def _train_flops(batch_size):
  return mm.train_flops(mm.DEFAULT_SPEC, batch_size)


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("batch_size", SWEEP, ids=lambda b: f"b{b}")
def test_train_step_jax_jit(timed, batches, batch_size):
  timed(_jax_train(mm.tuned_jit(mm.train_step), batches, batch_size), framework="jax", variant="jax-jit",
        batch_size=batch_size, images=batch_size, flops=_train_flops(batch_size))


@pytest.mark.benchmark(group="train_step")
def test_train_step_jax_jit_plain(timed, batches):
  """Plain `jax.jit`, XLA's default CPU kernels: what the suite's tuned jax-jit is compared with."""
  timed(_jax_train(mm.jit_train_step, batches, BATCH), framework="jax", variant="jax-jit-plain",
        batch_size=BATCH, images=BATCH, flops=_train_flops(BATCH))


@pytest.mark.benchmark(group="train_step")
def test_train_step_jax_jit_donate(timed, batches):
  """The tuned step with its input state donated: XLA may update parameters and Adam state in place."""
  timed(_jax_train(mm.tuned_jit(mm.train_step, donate_argnums=0), batches, BATCH), framework="jax",
        variant="jax-jit-donate", batch_size=BATCH, images=BATCH, flops=_train_flops(BATCH))


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("variant", list(_process.process_variants()))
def test_train_step_in_own_process(timed_remote, fresh_process, variant):
  """jax-jit's tuning given as process-wide XLA_FLAGS to plain jax.jit; graph Keras with oneDNN forced on / off."""
  env, factory, kwargs = _process.process_variants()[variant]
  if reason := _process.unavailable(variant):
    pytest.skip(reason)
  timed_remote(fresh_process(env=env), factory, variant=variant, **kwargs)


@pytest.mark.benchmark(group="train_step")
def test_train_step_jax_nojit(timed, batches):
  timed(_jax_train(mm.train_step, batches, BATCH), framework="jax", variant="jax-nojit", batch_size=BATCH,
        images=BATCH, flops=_train_flops(BATCH), rounds=SLOW_ROUNDS, guard=False)  # op-by-op: ops compile on first use


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("batch_size", SWEEP, ids=lambda b: f"b{b}")
def test_train_step_keras_graph(timed, batches, batch_size):
  timed(_keras_train("graph", batches, batch_size), framework="keras", variant="keras-graph",
        batch_size=batch_size, images=batch_size, flops=_train_flops(batch_size))


@pytest.mark.benchmark(group="train_step")
def test_train_step_keras_tape(timed, batches):
  """A hand-written tf.function step (GradientTape): train_on_batch without Keras' per-call bookkeeping."""
  step = mm.make_keras_tape_step(mm.compile_keras_model(mm.build_keras_cnn(), "graph"))
  x, y = keras_batch(batches, BATCH)
  timed(lambda: float(step(x, y)), framework="keras", variant="keras-tape", batch_size=BATCH, images=BATCH,
        flops=_train_flops(BATCH))


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_train_step_keras(timed, batches, mode):
  timed(_keras_train(mode, batches, BATCH), framework="keras", variant=f"keras-{mode}", batch_size=BATCH,
        images=BATCH, flops=_train_flops(BATCH), rounds=SLOW_ROUNDS if mode == "eager" else None)


def _jax_eval(step, batches):
  batch = jax_batch(batches, BATCH)
  state = mm.create_train_state(rng=jax.random.key(0))

  def call():
    sums = jax.block_until_ready(step(state, batch))
    return float(sums["loss_sum"]) / float(sums["count"])
  return call


def _keras_eval(mode, batches):
  model = mm.compile_keras_model(mm.build_keras_cnn(), mode)
  x, y = keras_batch(batches, BATCH)
  return lambda: mm.keras_eval_step(model, x, y)["loss"]


@pytest.mark.benchmark(group="eval_step")
@pytest.mark.parametrize("jit", [True, False], ids=["jax-jit", "jax-nojit"])
def test_eval_step_jax(timed, batches, jit):
  timed(_jax_eval(mm.tuned_jit(mm.eval_step) if jit else mm.eval_step, batches), framework="jax",
        variant="jax-jit" if jit else "jax-nojit", batch_size=BATCH, images=BATCH,
        flops=mm.forward_flops(mm.DEFAULT_SPEC) * BATCH, rounds=None if jit else SLOW_ROUNDS, guard=jit)


@pytest.mark.benchmark(group="eval_step")
@pytest.mark.parametrize("mode", list(mm.KERAS_MODES))
def test_eval_step_keras(timed, batches, mode):
  timed(_keras_eval(mode, batches), framework="keras", variant=f"keras-{mode}", batch_size=BATCH, images=BATCH,
        flops=mm.forward_flops(mm.DEFAULT_SPEC) * BATCH, rounds=SLOW_ROUNDS if mode == "eager" else None)
