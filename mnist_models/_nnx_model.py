"""The Flax NNX CNN, built from the same spec as the Linen and Keras models, and Linen -> NNX weights."""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import numpy as np
from flax import nnx

from mnist_models import _compat
from mnist_models._conv import canonical_conv_general_dilated
from mnist_models._spec import DEFAULT_SPEC, CNNSpec, spatial_shapes


class NNXCNN(nnx.Module):
  """The same CNN as `CNN` (Linen), written in NNX: images [batch, 28, 28, 1] -> log-probabilities [batch, 10].

  Layers are named as in `layer_shapes(spec)` (conv1, conv2, dense1, dense2), with the same kernel
  layouts as Linen's (HWIO, [in, out]), so Linen parameters copy one to one.
  """

  def __init__(self, spec: CNNSpec = DEFAULT_SPEC, *, rngs: nnx.Rngs):
    self.spec = spec
    conv_impl = {"conv_general_dilated": canonical_conv_general_dilated} if spec.conv == "canonical" else {}
    channels = (spec.input_shape[-1], *spec.conv_features)
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
      setattr(
        self, f"conv{i + 1}", nnx.Conv(c_in, c_out, spec.kernel_size, padding=spec.padding, rngs=rngs, **conv_impl)
      )
    h, w = spatial_shapes(spec)[-1]
    self.dense1 = nnx.Linear(h * w * channels[-1], spec.dense_features, rngs=rngs)
    self.dense2 = nnx.Linear(spec.dense_features, spec.num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    spec = self.spec
    if x.ndim != 4 or tuple(x.shape[1:]) != spec.input_shape:
      raise ValueError(
        f"NNXCNN expects images [batch, {', '.join(map(str, spec.input_shape))}], got shape {tuple(x.shape)}"
      )
    for i in range(len(spec.conv_features)):
      x = nn.avg_pool(nnx.relu(getattr(self, f"conv{i + 1}")(x)), window_shape=spec.pool_size, strides=spec.pool_size)
    x = x.reshape((x.shape[0], -1))  # NHWC flatten, as Linen and Keras
    return nnx.log_softmax(self.dense2(nnx.relu(self.dense1(x))))


def copy_linen_params_to_nnx(params: dict, model: NNXCNN) -> NNXCNN:
  """Copies Linen CNN parameters into the NNX CNN of the same spec, layer by layer; returns it.

  Args:
    params: Linen variables, either {'params': {...}} or the inner {'conv1': ..., ...} dict.
    model: an `NNXCNN` of the same spec.
  """
  for name, layer_params in params.get("params", params).items():
    layer = getattr(model, name)
    for key in ("kernel", "bias"):
      value = np.asarray(layer_params[key])
      if value.shape != getattr(layer, key).shape:
        raise ValueError(
          f"layer {name}: Linen {key} {value.shape} does not match NNX {getattr(layer, key).shape}; "
          "were both models built from the same CNNSpec?"
        )
      _compat.set_variable(getattr(layer, key), jax.numpy.asarray(value))
  return model


def nnx_layer_shapes(model: NNXCNN) -> dict[str, tuple[tuple[int, ...], ...]]:
  """Layer name -> (kernel shape, bias shape), for the layers that hold weights."""
  names = [f"conv{i + 1}" for i in range(len(model.spec.conv_features))] + ["dense1", "dense2"]
  return {name: (tuple(getattr(model, name).kernel.shape), tuple(getattr(model, name).bias.shape)) for name in names}


__all__ = ["NNXCNN", "copy_linen_params_to_nnx", "nnx_layer_shapes"]
