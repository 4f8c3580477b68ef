"""One train step and one eval step: jitted vs op-by-op JAX, Flax NNX, and Keras eager, graph and XLA (on
TensorFlow) and on Keras' JAX backend."""

import jax
import pytest
from flax import nnx

import mnist_models as mm
from mnist_models.bench import BATCH, Workload, fingerprint, host_batch, runs
from mnist_models.bench.timed import keras_guard

SWEEP = (32, 64, 128, 256)
SLOW_ROUNDS = 5  # op-by-op variants take ~0.1 s a call: a few rounds suffice
EXTENDED = pytest.mark.extended  # timed with --bench-all only


def _sweep(sizes):
  """Batch sizes as parameters: BATCH (and 1, the per-call overhead) in the default run, the rest extended."""
  return [pytest.param(b, id=f"b{b}", marks=() if b in (1, BATCH) else EXTENDED) for b in sizes]


def _jax_train(timed, step, batches, variant, batch_size=BATCH, **kwargs):
  batch = jax.device_put(host_batch(batches, batch_size))
  state = [mm.create_train_state(rng=jax.random.key(0))]

  def call():
    state[0], loss = jax.block_until_ready(step(state[0], batch))
    return float(loss)

  program = step.lower(state[0], batch).compile() if hasattr(step, "lower") else None  # op by op: no one program
  timed(call, workload=Workload.train(batch), framework="jax", variant=variant, program=program, **kwargs)


def _keras_train(timed, model, batches, variant, batch_size=BATCH, **kwargs):
  batch = mm.keras_batch(host_batch(batches, batch_size))
  timed(
    lambda: mm.keras_train_step(model, batch),
    workload=Workload.train(batch),
    framework="keras",
    variant=variant,
    program=fingerprint.Later(lambda: fingerprint.keras_step(model, batch, "train")),
    **keras_guard(model, variant.removeprefix("keras-"), "train"),
    **kwargs,
  )


def _keras_model(mode):
  return mm.compile_keras_model(mm.build_keras_cnn(), mode)


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("batch_size", _sweep((1, *SWEEP)))
def test_train_step_jax_jit(timed, batches, batch_size):
  _jax_train(timed, mm.tuned_jit(mm.train_step), batches, "jax-jit", batch_size)


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("batch_size", (1, BATCH), ids=lambda b: f"b{b}")
@pytest.mark.parametrize("form", ["nnx-jit", "nnx-split"])
def test_train_step_nnx(timed, batches, form, batch_size):
  """Flax NNX: the idiomatic nnx.jit step (walks the object graph every call) and flax's split/merge form.

  nnx.jit takes no per-function compiler options, so nnx-jit runs XLA's defaults: compare it with
  jax-jit-plain; nnx-split is jitted with the suite's tuning, as jax-jit. At batch 1 a step's compute
  is small and the time mostly per-call overhead (jax-jit b1 beside it).
  """
  batch, (model, optimizer) = jax.device_put(host_batch(batches, batch_size)), mm.create_nnx_model()
  graphdef, state = nnx.split((model, optimizer))
  split, split_step = [state], mm.tuned_jit(mm.nnx_split_train_step, static_argnums=0)

  def call():
    if form == "nnx-jit":
      return float(mm.nnx_train_step(model, optimizer, batch))
    split[0], loss = split_step(graphdef, split[0], batch)
    return float(loss)

  program = (
    split_step.lower(graphdef, state, batch).compile()
    if form == "nnx-split"
    else fingerprint.Later(lambda: mm.compile_nnx_step(mm.nnx_train_step, model, optimizer, batch))
  )
  timed(call, workload=Workload.train(batch), framework="jax", variant=form, program=program)


@pytest.mark.benchmark(group="train_step")
def test_train_step_jax_jit_plain(timed, batches):
  """Plain `jax.jit`, XLA's default CPU kernels: what the suite's tuned jax-jit is compared with."""
  _jax_train(timed, mm.jit_train_step, batches, "jax-jit-plain")


@pytest.mark.benchmark(group="train_step")
@EXTENDED
def test_train_step_jax_jit_donate(timed, batches):
  """The tuned step with its input state donated: XLA may update parameters and Adam state in place."""
  _jax_train(timed, mm.tuned_jit(mm.train_step, donate_argnums=0), batches, "jax-jit-donate")


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize(
  "variant", [pytest.param(v, marks=() if v == "keras-jax" else EXTENDED) for v in runs.process_variants()]
)
def test_train_step_in_own_process(timed_remote, fresh_process, variant):
  """jax-jit's tuning given as process-wide XLA_FLAGS to plain jax.jit; graph Keras with oneDNN forced on / off;
  Keras on its JAX backend (a plain jax.jit of Keras' step: compare it with jax-jit-plain)."""
  process_variant = runs.process_variants()[variant]
  if reason := process_variant.unavailable():
    pytest.skip(reason)
  timed_remote(
    fresh_process(env=process_variant.env), process_variant.factory, variant=variant, **process_variant.kwargs
  )


@pytest.mark.benchmark(group="train_step")
def test_train_step_jax_nojit(timed, batches):
  _jax_train(timed, mm.train_step, batches, "jax-nojit", rounds=SLOW_ROUNDS)  # ops compiled in warm-up: none after


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("batch_size", _sweep(SWEEP))
def test_train_step_keras_graph(timed, batches, batch_size):
  _keras_train(timed, _keras_model("graph"), batches, "keras-graph", batch_size)


@pytest.mark.benchmark(group="train_step")
def test_train_step_keras_tape(timed, batches):
  """A hand-written tf.function step (GradientTape): train_on_batch without Keras' per-call bookkeeping."""
  step = mm.make_keras_tape_step(_keras_model("graph"))
  batch = mm.keras_batch(host_batch(batches, BATCH))
  timed(
    lambda: float(step(*batch)),
    workload=Workload.train(batch),
    framework="keras",
    variant="keras-tape",
    program=step.get_concrete_function(*batch),
  )


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_train_step_keras(timed, batches, mode):
  _keras_train(timed, _keras_model(mode), batches, f"keras-{mode}", rounds=SLOW_ROUNDS if mode == "eager" else None)


# Every eval variant holds the same weights (the JAX seed-0 initialisation), so each must give the
# reference loss of those weights on the batch (fixture seed_reference): a parity check beside every eval timing.


@pytest.mark.benchmark(group="eval_step")
@pytest.mark.parametrize("jit", [True, False], ids=["jax-jit", "jax-nojit"])
def test_eval_step_jax(timed, seed_reference, jit):
  state, host, reference = seed_reference
  batch = jax.device_put(host)
  step = mm.tuned_jit(mm.eval_step) if jit else mm.eval_step

  def call():
    sums = jax.block_until_ready(step(state, batch))
    return float(sums["loss_sum"]) / float(sums["count"])

  timed(
    call,
    workload=Workload.eval(batch),
    framework="jax",
    variant="jax-jit" if jit else "jax-nojit",
    expect=reference,
    rounds=None if jit else SLOW_ROUNDS,
    program=step.lower(state, batch).compile() if jit else None,
  )


@pytest.mark.benchmark(group="eval_step")
def test_eval_step_nnx(timed, seed_reference):
  state, host, reference = seed_reference
  model, batch = mm.copy_linen_params_to_nnx({"params": state.params}, mm.create_nnx_model()[0]), jax.device_put(host)

  def call():
    sums = mm.nnx_eval_step(model, batch)
    return float(sums["loss_sum"]) / float(sums["count"])

  timed(
    call,
    workload=Workload.eval(batch),
    framework="jax",
    variant="nnx-jit",
    expect=reference,
    program=fingerprint.Later(lambda: mm.compile_nnx_step(mm.nnx_eval_step, model, batch)),
  )


@pytest.mark.benchmark(group="eval_step")
def test_eval_step_keras_jax(timed_remote, keras_on_jax, seed_reference):
  """The same Keras eval step on Keras' JAX backend, in its own process (each call one round trip to it)."""
  _, host, reference = seed_reference
  timed_remote(
    keras_on_jax,
    runs.keras_run,
    variant="keras-jax",
    batch=host,
    workload=Workload.eval,
    expect=reference,
    num_devices=None,
    task="eval",
  )


@pytest.mark.benchmark(group="eval_step")
@pytest.mark.parametrize("mode", list(mm.KERAS_MODES))
def test_eval_step_keras(timed, seed_reference, mode):
  state, host, reference = seed_reference
  model = mm.copy_flax_params_to_keras(state.params, _keras_model(mode))
  keras_batch = mm.keras_batch(host)
  timed(
    lambda: mm.keras_eval_step(model, keras_batch)["loss"],
    workload=Workload.eval(keras_batch),
    framework="keras",
    variant=f"keras-{mode}",
    expect=reference,
    rounds=SLOW_ROUNDS if mode == "eager" else None,
    program=fingerprint.Later(lambda: fingerprint.keras_step(model, keras_batch, "eval")),
    **keras_guard(model, mode, "eval"),
  )
