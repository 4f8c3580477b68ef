"""A whole epoch of EPOCH_BATCHES batches through each framework's natural loop."""

import jax
import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench import Workload, fingerprint, runs
from mnist_models.bench.timed import Guard

pytestmark = pytest.mark.benchmark(group="epoch")
# On CPU, inside lax.scan XLA leaves the conv weight gradient un-canonicalised and falls back to a
# naive loop (jax-ml/jax#12868): ~10x slower per step here, so the scan epochs get few rounds. The
# canonical-conv variant (mnist_models/_conv.py) writes that gradient in canonical form.
SCAN_ROUNDS = 2
SMOKE_BATCHES = (
  2  # under --benchmark-disable the plain scan (~7 s an epoch) runs this many steps: enough to prove it works
)


def test_epoch_jax_loop(timed, batches):
  on_device, step = mm.device_batches(batches), mm.tuned_jit(mm.train_step)
  state = [mm.create_train_state(rng=jax.random.key(0))]

  def epoch():
    state[0], losses = mm.train_steps(state[0], on_device, step)  # reads every loss back: the device has finished
    return losses

  timed(
    epoch,
    workload=Workload.train(on_device),
    framework="jax",
    variant="jax-loop",
    program=step.lower(state[0], on_device[0]).compile(),
  )


def test_epoch_nnx_loop(timed, batches):
  """The idiomatic NNX loop: nnx.jit steps in place, the losses read back once at the end."""
  on_device, (model, optimizer) = mm.device_batches(batches), mm.create_nnx_model()
  timed(
    lambda: mm.nnx_train_steps(model, optimizer, on_device),
    workload=Workload.train(on_device),
    framework="jax",
    variant="nnx-loop",
    program=fingerprint.Later(lambda: mm.compile_nnx_step(mm.nnx_train_step, model, optimizer, on_device[0])),
  )


def _scan_epoch(timed, batches, spec, variant, smoke=False):
  stacked = jax.device_put(mm.Batches(*(x[:SMOKE_BATCHES] for x in batches)) if smoke else batches)
  state = [mm.create_train_state(spec, rng=jax.random.key(0))]
  compiled = mm.tuned_jit(mm.scan_epoch).lower(state[0], stacked).compile()  # compiled, not run: 16 steps

  def epoch():
    state[0], losses = jax.block_until_ready(compiled(state[0], stacked))
    return np.asarray(losses)

  timed(
    epoch,
    workload=Workload.train(stacked),
    framework="jax",
    variant=variant,
    rounds=SCAN_ROUNDS,
    warmup=False,
    program=compiled,
  )  # compiled above


@pytest.mark.extended  # ~25 s: a known XLA CPU slowdown, shown beside its fix (jax-scan-canonical)
def test_epoch_jax_scan(timed, benchmark, batches):
  _scan_epoch(timed, batches, mm.DEFAULT_SPEC, "jax-scan", smoke=benchmark.disabled)


def test_epoch_jax_scan_canonical(timed, batches):
  """The same scan with the canonical-layout convolution (CANONICAL_SPEC): the while-loop slowdown avoided."""
  _scan_epoch(timed, batches, mm.CANONICAL_SPEC, "jax-scan-canonical")


def test_epoch_keras_tape_loop(timed, batches):
  """The whole epoch inside one tf.function: the hand-written tape step in a tf.range loop."""
  loop = mm.make_keras_tape_loop(mm.compile_keras_model(mm.build_keras_cnn(), "graph"))
  stacked = mm.keras_batch(batches)
  timed(
    lambda: loop(*stacked).numpy(),
    workload=Workload.train(stacked),
    framework="keras",
    variant="keras-tape-loop",
    program=loop.get_concrete_function(*stacked),
  )


@pytest.mark.parametrize("mode", ["graph", pytest.param("xla", marks=pytest.mark.extended)])
def test_epoch_keras_fit(timed, batches, mode):
  """`fit` builds its tf.data input pipeline every call, tracing its functions (a cost of fit's, recorded as
  tf_tracing_ms_per_call): the guard here is JAX's, and the train function's own traces, which must not move."""
  model = mm.compile_keras_model(mm.build_keras_cnn(), mode)
  timed(
    lambda: mm.keras_train_epoch(model, batches),
    workload=Workload.train(batches),
    framework="keras",
    variant=f"keras-fit-{mode}",
    guard=Guard.COMPILES,
    counts=lambda: {"train_step traces": model.train_step_traces},
    program=fingerprint.Later(runs.keras_program(model, batches, "fit")),
  )


def test_epoch_keras_fit_jax(timed_remote, keras_on_jax, batches):
  """The same `fit` epoch on Keras' JAX backend, in its own process (no tf.data there: Keras iterates the arrays)."""
  timed_remote(keras_on_jax, runs.keras_run, variant="keras-fit-jax", batch=batches, num_devices=None, task="fit")
