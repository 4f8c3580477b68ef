"""PyTorch (the optional extra): the same model as Flax, the same Adam steps, one compile per shape."""

import jax
import numpy as np
import pytest

import mnist_models as mm

BATCH = 64
# Same float32 math, other kernels: outputs measured within 4.8e-7 of Flax's log-probabilities (~2.3).
OUTPUT_ATOL = 1e-5
# PyTorch's Adam adds eps after bias correction, as optax does (Keras adds it before): the losses of the
# same steps differ by float32 rounding only, at most 1.2e-6 over 30 steps (measured); torch.compile's
# equalled eager's exactly over 8 steps. 1e-5 is float32 level for a loss ~2.3.
STEPS, LOSS_ATOL = 8, 1e-5
# On a GPU, JAX's default float32 matmuls and convolutions run in TF32 (1.6e-4 from the CPU's outputs on an
# H200, measured): the parity tests compare the math, so JAX computes at full float32 precision here.
FULL_PRECISION = "highest"


@pytest.fixture(scope="module")
def torch(torch_threads):
  import torch

  return torch


@pytest.fixture(scope="module")
def batches(bundled):
  return mm.make_batches(bundled.train_images, bundled.train_labels, BATCH, num_batches=STEPS, seed=0)


def _model(params):
  return mm.copy_flax_params_to_torch(params, mm.TorchCNN())


def test_same_layers_and_parameter_count_as_the_spec(torch):
  model = mm.TorchCNN()
  assert sum(p.numel() for p in model.parameters()) == mm.NUM_PARAMS == 824_458
  shapes = {
    name: (tuple(layer.weight.shape), tuple(layer.bias.shape))
    for name, layer in model.named_children()
    if hasattr(layer, "weight")
  }
  expected = {
    name: ((k[3], k[2], k[0], k[1]) if len(k) == 4 else (k[1], k[0]), b)
    for name, (k, b) in mm.layer_shapes(mm.DEFAULT_SPEC).items()
  }
  assert shapes == expected


def test_outputs_equal_flax_from_the_same_weights(torch, batches):
  params = mm.init_params(rng=jax.random.key(0))
  images = np.asarray(batches.images[0])
  with jax.default_matmul_precision(FULL_PRECISION):
    flax_out = np.asarray(mm.CNN().apply(params, images))
  torch_out = _model(params)(torch.tensor(images)).detach().numpy()
  np.testing.assert_allclose(torch_out, flax_out, atol=OUTPUT_ATOL)


def test_steps_follow_the_jax_trajectory(torch, batches):
  state = mm.create_train_state(rng=jax.random.key(0))
  with jax.default_matmul_precision(FULL_PRECISION):
    _, jax_losses = mm.train_steps(state, mm.device_batches(batches), jax.jit(mm.train_step))
  model = _model(state.params)
  torch_losses = mm.torch_train_steps(model, mm.torch_adam(model), mm.torch_batches(batches))
  np.testing.assert_allclose(torch_losses, jax_losses, atol=LOSS_ATOL)
  assert torch_losses[-1] < 0.8 * torch_losses[0]


def test_a_bad_shape_is_a_clear_error(torch):
  with pytest.raises(ValueError, match=r"TorchCNN expects images \[batch, 28, 28, 1\], got shape \(2, 28, 28\)"):
    mm.TorchCNN()(torch.zeros(2, 28, 28))


def test_the_compiled_model_trains_alike_and_compiles_once_per_shape(torch, batches):
  """torch.compile: the same losses as eager, and one graph for every step of a shape (no recompiles)."""
  params = mm.init_params(rng=jax.random.key(0))
  eager = _model(params)
  expected = mm.torch_train_steps(eager, mm.torch_adam(eager), mm.torch_batches(batches))
  torch._dynamo.reset()
  model = _model(params)
  before = mm.torch_compile_counts()
  losses = mm.torch_train_steps(mm.compile_torch_model(model), mm.torch_adam(model), mm.torch_batches(batches))
  after = mm.torch_compile_counts()
  np.testing.assert_allclose(losses, expected, atol=LOSS_ATOL)
  assert after["recompiles"] == before["recompiles"] and after["unique_graphs"] - before["unique_graphs"] == 1
