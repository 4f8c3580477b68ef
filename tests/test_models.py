"""The Flax and Keras CNNs are the same model: same shapes, same parameters, same outputs."""

import functools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnist_models as mm

# Flax log-probabilities vs log(Keras probabilities) on the same weights. Both run float32 convs
# and matmuls through different kernels (XLA vs oneDNN) that sum in different orders, and Keras
# takes a log of a softmax where Flax uses log_softmax: a few float32 ulps of values of size ~10,
# so ~1e-6 is typical (4.8e-7 measured); 1e-5 leaves room for other CPUs and library versions. An example
# alone vs in a batch (other kernels per shape): also 4.8e-7 at most, measured over batches 1 to 300.
PARITY_ATOL = 1e-5


@pytest.fixture(scope="module")
def pair():
  """Flax params and a Keras model holding the same weights."""
  params = mm.init_params(rng=jax.random.key(0))
  return params, mm.copy_flax_params_to_keras(params, mm.build_keras_cnn())


@functools.cache
def _jit_apply(spec):
  return jax.jit(mm.CNN(spec).apply)  # one program per shape, rather than every op compiled per shape


def _flax_logprobs(params, images, spec=mm.DEFAULT_SPEC):
  return np.asarray(_jit_apply(spec)(params, images))


def _keras_logprobs(model, images):
  return np.log(np.asarray(model(images)))


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 300), seed=st.integers(0, 2**16), data=st.data())
def test_any_batch_the_same_outputs_in_both_and_each_example_on_its_own(pair, batch, seed, data):
  """Over batch sizes: Flax and Keras agree, and an example's output is what it is alone (no batch mixing)."""
  params, keras_model = pair
  images = np.random.default_rng(seed).random((batch, 28, 28, 1), np.float32)
  flax_out, keras_out = _flax_logprobs(params, images), _keras_logprobs(keras_model, images)
  assert flax_out.shape == keras_out.shape == (batch, 10)
  np.testing.assert_allclose(flax_out, keras_out, atol=PARITY_ATOL)
  i = data.draw(st.integers(0, batch - 1), label="example")
  np.testing.assert_allclose(_flax_logprobs(params, images[i : i + 1])[0], flax_out[i], atol=PARITY_ATOL)
  np.testing.assert_allclose(_keras_logprobs(keras_model, images[i : i + 1])[0], keras_out[i], atol=PARITY_ATOL)


def test_both_have_the_named_parameter_count_layer_by_layer(pair):
  params, keras_model = pair
  flax_shapes = {name: (p["kernel"].shape, p["bias"].shape) for name, p in params["params"].items()}
  assert flax_shapes == mm.layer_shapes(mm.DEFAULT_SPEC) == mm.keras_layer_shapes(keras_model)
  assert sum(x.size for x in jax.tree.leaves(params)) == keras_model.count_params() == mm.NUM_PARAMS


def test_parity_on_random_inputs(pair):
  params, keras_model = pair
  images = np.random.default_rng(1).random((128, 28, 28, 1), np.float32)
  np.testing.assert_allclose(_flax_logprobs(params, images), _keras_logprobs(keras_model, images), atol=PARITY_ATOL)


def test_parity_on_real_digits(pair, bundled):
  params, keras_model = pair
  images = bundled.test_images[:256]
  np.testing.assert_allclose(_flax_logprobs(params, images), _keras_logprobs(keras_model, images), atol=PARITY_ATOL)


def test_parity_holds_for_the_blogs_valid_padding_variant(bundled):
  params = mm.init_params(mm.BLOG_KERAS_SPEC, rng=jax.random.key(2))
  keras_model = mm.copy_flax_params_to_keras(params, mm.build_keras_cnn(mm.BLOG_KERAS_SPEC))
  assert keras_model.count_params() == mm.BLOG_KERAS_NUM_PARAMS
  images = bundled.test_images[:64]
  np.testing.assert_allclose(
    _flax_logprobs(params, images, mm.BLOG_KERAS_SPEC), _keras_logprobs(keras_model, images), atol=PARITY_ATOL
  )


def test_weights_of_another_spec_are_refused(pair):
  params, _ = pair
  with pytest.raises(ValueError, match="same CNNSpec"):
    mm.copy_flax_params_to_keras(params, mm.build_keras_cnn(mm.BLOG_KERAS_SPEC))


@pytest.mark.parametrize("shape", [(4, 28, 28), (4, 32, 32, 1), (4, 28, 28, 3)])
def test_wrong_image_shape_is_a_clear_error(pair, shape):
  params, _ = pair
  with pytest.raises(ValueError, match=r"expects images \[batch, 28, 28, 1\]"):
    mm.CNN().apply(params, np.zeros(shape, np.float32))
