"""The Flax (Linen) CNN, built from the shared spec."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnist_models import _compat
from mnist_models._conv import canonical_conv_general_dilated
from mnist_models._spec import DEFAULT_SPEC, CNNSpec


class CNN(nn.Module):
  """The seed post's Flax CNN: images [batch, 28, 28, 1] -> log-probabilities [batch, 10].

  Layers are named as in `layer_shapes(spec)` (conv1, conv2, dense1, dense2) so that weights map
  one to one onto the Keras model's layers of the same names.
  """

  spec: CNNSpec = DEFAULT_SPEC

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    spec = self.spec
    conv_impl = {"conv_general_dilated": canonical_conv_general_dilated} if spec.conv == "canonical" else {}
    if x.ndim != 4 or tuple(x.shape[1:]) != spec.input_shape:
      raise ValueError(
        f"CNN expects images [batch, {', '.join(map(str, spec.input_shape))}], got shape {tuple(x.shape)}"
      )
    for i, features in enumerate(spec.conv_features):
      x = nn.Conv(features, spec.kernel_size, padding=spec.padding, name=f"conv{i + 1}", **conv_impl)(x)
      x = nn.relu(x)
      x = nn.avg_pool(x, window_shape=spec.pool_size, strides=spec.pool_size)
    x = x.reshape((x.shape[0], -1))  # NHWC flatten, the same order as keras.layers.Flatten
    x = nn.relu(nn.Dense(spec.dense_features, name="dense1")(x))
    x = nn.Dense(spec.num_classes, name="dense2")(x)
    return nn.log_softmax(x)


# Flax's init runs ~50 small ops; op by op, each compiles on first use: 2.5-4.5 s on a 2-core CPU for
# every fresh process and after every jax.clear_caches(). Jitted as one program at XLA's lowest
# optimisation level it compiled in 0.9 s and runs in milliseconds (measured); the weights equal
# op-by-op init's to one float32 ulp (1.2e-7). The NNX model's init is jitted the same way (_nnx_train).
INIT_OPTIONS = {"xla_backend_optimization_level": 0}


def init_params(spec: CNNSpec = DEFAULT_SPEC, *, rng: jax.Array) -> dict:
  """Initial Flax variables {'params': {...}} for a model of `spec`."""
  try:
    return _jit_init(spec, fast_compile=True)(rng)
  except _compat.JaxRuntimeError:  # a backend that does not take the option
    return _jit_init(spec, fast_compile=False)(rng)


@functools.cache
def _jit_init(spec: CNNSpec, fast_compile: bool):
  def init_cnn(rng):
    return CNN(spec).init(rng, jnp.zeros((1, *spec.input_shape), jnp.float32))

  return _compat.jit(init_cnn, compiler_options=INIT_OPTIONS if fast_compile else None)
