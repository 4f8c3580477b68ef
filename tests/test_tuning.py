"""The tuned variants compute the same function as the defaults."""

import os

import jax
import numpy as np
import pytest

import mnist_models as mm
from mnist_models import _compat, _tuning
from mnist_models.bench import runs

STEPS = 5
# Both JAX variants and both Keras variants run the same float32 math; only kernels differ.
# Measured: identical losses to 6 decimals over 8 steps. 1e-5 is float32 level for a loss ~2.3.
PARITY_ATOL = 1e-5


@pytest.fixture(scope="module")
def batches(bundled):
  return mm.make_batches(bundled.train_images, bundled.train_labels, 64, num_batches=STEPS, seed=0)


def _jax_losses(step, batches):
  """Per-step losses of `step` from the seed-0 state over the stacked `batches`."""
  return mm.train_steps(mm.create_train_state(rng=jax.random.key(0)), mm.device_batches(batches), step)[1]


def test_tuned_jax_step_matches_plain_jit(batches):
  np.testing.assert_allclose(
    _jax_losses(mm.tuned_jit(mm.train_step), batches), _jax_losses(mm.jit_train_step, batches), atol=PARITY_ATOL
  )


def test_donating_the_state_changes_nothing_but_memory(batches):
  np.testing.assert_array_equal(
    _jax_losses(mm.tuned_jit(mm.train_step, donate_argnums=0), batches),
    _jax_losses(mm.tuned_jit(mm.train_step), batches),
  )


@pytest.fixture(scope="module")
def variant_batch(bundled) -> mm.Batches:
  """The one batch every process variant steps STEPS times."""
  return mm.one_batch(bundled.train_images[:64], bundled.train_labels[:64])


def _repeated(batch: mm.Batches) -> mm.Batches:
  """`batch` stacked STEPS times, for this process's reference runs."""
  return mm.make_batches(batch.images, batch.labels, 64, num_batches=STEPS)


@pytest.fixture(scope="module")
def keras_default_losses(variant_batch):
  """STEPS losses of this process's default graph-mode Keras on the variants' batch: every Keras variant's reference."""
  return mm.keras_train_steps(_keras_model(), _repeated(variant_batch))


@pytest.mark.parametrize("variant", list(runs.process_variants()))
def test_process_wide_variant_matches_the_default(variant_batch, fresh_process, variant, request):
  """Each setting, in a process of its own, is in force there and trains like this process's default (Keras on
  JAX like Keras on TF: measured within 2.4e-7 over 6 steps). A Keras step is traced once, by tf.function or by
  jax.jit (compile_keras_model created its variables first): KerasCNN counts it."""
  process_variant = runs.process_variants()[variant]
  if reason := process_variant.unavailable():
    pytest.skip(reason)
  env = process_variant.env
  process = fresh_process(env=env)
  info = process.call(runs.make_run, process_variant.factory, variant_batch, **process_variant.kwargs)
  losses = process.call(runs.steps, STEPS)
  if info["framework"] == "jax":
    assert info["xla_flags"] == env["XLA_FLAGS"]
    expected = _jax_losses(mm.jit_train_step, _repeated(variant_batch))
  else:
    assert info["keras_backend"] == env.get("KERAS_BACKEND", "tensorflow")
    if "TF_ENABLE_ONEDNN_OPTS" in env:
      assert info["tf_onednn_enabled"] == (env["TF_ENABLE_ONEDNN_OPTS"] == "1")
    assert process.call(runs.counts)["traces"] == 1
    expected = request.getfixturevalue("keras_default_losses")
  np.testing.assert_allclose(losses, expected, atol=PARITY_ATOL)


def _keras_model():
  """Graph-mode Keras from the same initial weights as `_jax_losses`' state."""
  return mm.compile_keras_model(
    mm.copy_flax_params_to_keras(mm.init_params(rng=jax.random.key(0)), mm.build_keras_cnn()), "graph"
  )


def test_keras_tape_step_and_loop_match_train_on_batch(batches):
  reference, taped = _keras_model(), _keras_model()
  expected = mm.keras_train_steps(reference, batches)
  step = mm.make_keras_tape_step(taped)
  got = [float(step(*mm.keras_batch(mm.Batches(*b)))) for b in zip(*batches, strict=True)]
  np.testing.assert_allclose(got, expected, atol=PARITY_ATOL)
  losses = mm.make_keras_tape_loop(_keras_model())(*mm.keras_batch(batches))
  np.testing.assert_allclose(losses.numpy(), expected, atol=PARITY_ATOL)


def test_tuning_can_be_turned_off(monkeypatch):
  monkeypatch.setenv(_tuning.TUNING_ENV, "0")
  _tuning.tuned_compiler_options.cache_clear()
  try:
    assert mm.tuned_compiler_options() == {}
  finally:
    _tuning.tuned_compiler_options.cache_clear()


def test_unknown_options_fall_back_to_plain_jit(monkeypatch):
  monkeypatch.setattr(_tuning, "TUNED_CPU_OPTIONS", {"xla_cpu_experimental_ynn_fusion_type": "NO_SUCH_TYPE"})
  _tuning.tuned_compiler_options.cache_clear()
  try:
    assert mm.tuned_compiler_options() == {}
  finally:
    _tuning.tuned_compiler_options.cache_clear()


def test_tuned_options_are_used_on_cpu():
  if jax.default_backend() != "cpu" or os.environ.get(_tuning.TUNING_ENV) == "0":
    pytest.skip("the tuned options are CPU-only, and off under MNIST_BENCH_TUNING=0")
  if not _compat.JIT_TAKES_COMPILER_OPTIONS:
    pytest.skip(f"jax {jax.__version__}'s jit takes no per-function compiler options: no tuned variants")
  assert mm.tuned_compiler_options() == mm.TUNED_CPU_OPTIONS


def test_canonical_conv_has_xla_gradients():
  x = jax.random.normal(jax.random.key(0), (4, 14, 14, 32))
  w = jax.random.normal(jax.random.key(1), (3, 3, 32, 64))
  xla = jax.jit(
    jax.grad(
      lambda x, w: (
        jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2
      ).sum(),
      (0, 1),
    )
  )(x, w)
  ours = jax.jit(jax.grad(lambda x, w: (mm.conv_same(x, w) ** 2).sum(), (0, 1)))(x, w)
  for a, b in zip(ours, xla, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)  # sums of 4*14*14 products of ~N(0,1) terms


def test_canonical_scan_epoch_matches_the_default_step_loop(batches):
  params = mm.create_train_state(rng=jax.random.key(0)).params  # same weights for both: only the conv differs
  canonical = mm.create_train_state(mm.CANONICAL_SPEC, rng=jax.random.key(0)).replace(params=params)
  _, scanned = mm.jit_scan_epoch(canonical, jax.device_put(batches))
  np.testing.assert_allclose(np.asarray(scanned), _jax_losses(mm.jit_train_step, batches), atol=PARITY_ATOL)


def test_canonical_conv_refuses_what_it_does_not_implement():
  with pytest.raises(ValueError, match="conv must be 'xla', or 'canonical' with SAME padding"):
    mm.CNNSpec(conv="canonical", padding="VALID")
  with pytest.raises(ValueError, match="SAME padding, stride 1"):
    mm._conv.canonical_conv_general_dilated(np.zeros((1, 8, 8, 1)), np.zeros((3, 3, 1, 2)), (2, 2), [(1, 1), (1, 1)])
