"""Flax NNX: the same model as Linen (and so as Keras), trained by the same Adam to the same losses."""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

import mnist_models as mm

# Linen and NNX run the same XLA ops on the same weights: outputs and 8 steps of losses were bitwise
# equal here (max difference 0.0, measured). A float32 ulp of the loss allows for other backends.
ATOL = 1e-6
STEPS = 8


@pytest.fixture(scope="module")
def linen():
  return mm.init_params(rng=jax.random.key(0))


@pytest.fixture(scope="module")
def batches(bundled):
  return mm.device_batches(mm.make_batches(bundled.train_images[: STEPS * 64], bundled.train_labels[: STEPS * 64], 64))


def _nnx_from(linen_params):
  model, optimizer = mm.create_nnx_model(seed=1)  # other initial weights, replaced by the copy
  return mm.copy_linen_params_to_nnx(linen_params, model), optimizer


def test_same_layers_shapes_and_parameter_count_as_the_spec():
  model, _ = mm.create_nnx_model()
  assert mm.nnx_layer_shapes(model) == mm.layer_shapes(mm.DEFAULT_SPEC)
  assert sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))) == mm.NUM_PARAMS


def test_same_outputs_as_linen_after_the_copy(linen, bundled):
  model, _ = _nnx_from(linen)
  images = bundled.test_images[:128]
  np.testing.assert_allclose(np.asarray(model(images)), np.asarray(mm.CNN().apply(linen, images)), atol=ATOL)


@pytest.mark.parametrize("form", ["nnx-jit", "nnx-split"])
def test_training_follows_linen_step_for_step(linen, batches, form):
  state = mm.create_train_state(rng=jax.random.key(0))
  _, expected = mm.train_steps(state, batches, mm.jit_train_step)
  model, optimizer = _nnx_from(linen)
  if form == "nnx-jit":
    losses = mm.nnx_train_steps(model, optimizer, batches)
  else:
    graphdef, split = nnx.split((model, optimizer))
    _, losses = mm.train_steps(split, batches, functools.partial(mm.jit_nnx_split_train_step, graphdef))
  np.testing.assert_allclose(losses, expected, atol=ATOL)
  assert losses[-1] < losses[0]


def test_eval_step_equals_linen(linen, batches):
  model, _ = _nnx_from(linen)
  state = mm.create_train_state(rng=jax.random.key(0))
  nnx_sums, linen_sums = (
    jax.device_get(mm.nnx_eval_step(model, batches[0])),
    jax.device_get(mm.jit_eval_step(state, batches[0])),
  )
  assert nnx_sums.keys() == linen_sums.keys()
  for key in nnx_sums:
    np.testing.assert_allclose(nnx_sums[key], linen_sums[key], atol=ATOL * 64)


def test_hyperparameters_come_from_the_config():
  config = mm.TrainConfig(learning_rate=3e-4, b1=0.8, b2=0.99, eps=1e-7)
  _, optimizer = mm.create_nnx_model(config=config)
  hyperparams = optimizer.opt_state.hyperparams
  got = {k: float(hyperparams[k][...]) for k in ("learning_rate", "b1", "b2", "eps")}
  assert got == pytest.approx({"learning_rate": 3e-4, "b1": 0.8, "b2": 0.99, "eps": 1e-7})


def test_weights_of_another_spec_are_refused(linen):
  model, _ = mm.create_nnx_model(mm.BLOG_KERAS_SPEC)
  with pytest.raises(ValueError, match="same CNNSpec"):
    mm.copy_linen_params_to_nnx(linen, model)


def test_wrong_image_shape_is_a_clear_error():
  model, _ = mm.create_nnx_model()
  with pytest.raises(ValueError, match=r"expects images \[batch, 28, 28, 1\]"):
    model(np.zeros((4, 28, 28), np.float32))
