"""One architecture spec shared by the Flax and the Keras model."""

from __future__ import annotations

import dataclasses
from typing import Literal

Padding = Literal["SAME", "VALID"]
ConvImpl = Literal["xla", "canonical"]

# The seed blog post's Flax CNN (SAME padding). Its Keras CNN used `valid` padding and had
# BLOG_KERAS_NUM_PARAMS parameters: the two were different models.
NUM_PARAMS = 824_458
BLOG_KERAS_NUM_PARAMS = 431_242


@dataclasses.dataclass(frozen=True)
class CNNSpec:
  """conv -> relu -> avgpool, twice, then dense -> relu -> dense -> log-softmax.

  Attributes:
    conv_features: output channels of each 3x3 convolution.
    kernel_size: convolution window (height, width).
    padding: "SAME" keeps 28x28 through the first conv; "VALID" shrinks it.
    pool_size: average-pooling window, also its stride.
    dense_features: width of the hidden dense layer.
    num_classes: number of output classes.
    input_shape: one image, [height, width, channels].
    conv: the Flax convolution's implementation: "xla" (lax.conv_general_dilated) or "canonical"
      (same math, backward pass laid out so lax.scan stays fast on CPU; SAME padding only). Keras
      ignores it.
  """

  conv_features: tuple[int, ...] = (32, 64)
  kernel_size: tuple[int, int] = (3, 3)
  padding: Padding = "SAME"
  pool_size: tuple[int, int] = (2, 2)
  dense_features: int = 256
  num_classes: int = 10
  input_shape: tuple[int, int, int] = (28, 28, 1)
  conv: ConvImpl = "xla"

  def __post_init__(self):
    if self.padding not in ("SAME", "VALID"):
      raise ValueError(f"padding must be 'SAME' or 'VALID', got {self.padding!r}")
    if self.conv not in ("xla", "canonical") or (self.conv == "canonical" and self.padding != "SAME"):
      raise ValueError(f"conv must be 'xla', or 'canonical' with SAME padding; got {self.conv!r}, {self.padding!r}")
    if min(spatial_shapes(self)[-1]) < 1:
      raise ValueError(f"input {self.input_shape} is too small for {len(self.conv_features)} conv/pool stages")


def _conv_out(size: int, kernel: int, padding: Padding) -> int:
  return size if padding == "SAME" else size - kernel + 1


def spatial_shapes(spec: CNNSpec) -> list[tuple[int, int]]:
  """(height, width) after each conv stage; the input's first."""
  shapes = [spec.input_shape[:2]]
  for _ in spec.conv_features:
    h, w = shapes[-1]
    h = _conv_out(h, spec.kernel_size[0], spec.padding) // spec.pool_size[0]
    w = _conv_out(w, spec.kernel_size[1], spec.padding) // spec.pool_size[1]
    shapes.append((h, w))
  return shapes


def layer_shapes(spec: CNNSpec) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
  """Layer name -> (kernel shape, bias shape), in the layout both frameworks use (HWIO, [in, out])."""
  shapes = {}
  in_ch = spec.input_shape[2]
  for i, feat in enumerate(spec.conv_features):
    shapes[f"conv{i + 1}"] = ((*spec.kernel_size, in_ch, feat), (feat,))
    in_ch = feat
  h, w = spatial_shapes(spec)[-1]
  shapes["dense1"] = ((h * w * in_ch, spec.dense_features), (spec.dense_features,))
  shapes["dense2"] = ((spec.dense_features, spec.num_classes), (spec.num_classes,))
  return shapes


def num_params(spec: CNNSpec) -> int:
  """Total number of trainable parameters."""
  count = 0
  for kernel, bias in layer_shapes(spec).values():
    count += _prod(kernel) + _prod(bias)
  return count


def forward_flops(spec: CNNSpec) -> int:
  """Forward FLOPs for one image: 2 per multiply-add of the convs and dense layers.

  Bias adds, relu, pooling and softmax are left out (under 1% of the total here), as is usual
  for GFLOP/s figures. A training step is about three times this (forward plus two backward
  matmuls per layer): see `train_flops`.
  """
  flops = 0
  (h, w), *_ = spatial_shapes(spec)
  for name, (kernel, _) in layer_shapes(spec).items():
    if name.startswith("conv"):
      kh, kw, cin, cout = kernel
      oh, ow = _conv_out(h, kh, spec.padding), _conv_out(w, kw, spec.padding)
      flops += 2 * oh * ow * kh * kw * cin * cout
      h, w = oh // spec.pool_size[0], ow // spec.pool_size[1]
    else:
      flops += 2 * kernel[0] * kernel[1]
  return flops


def train_flops(spec: CNNSpec, batch_size: int) -> int:
  """FLOPs of one training step: forward + backward (input and weight gradients) = 3x forward."""
  return 3 * forward_flops(spec) * batch_size


def _prod(shape: tuple[int, ...]) -> int:
  out = 1
  for d in shape:
    out *= d
  return out


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Adam and its hyper-parameters, one object for both frameworks' trainers.

  Attributes:
    learning_rate: Adam's step size (the seed post's 1e-3).
    b1, b2: decay rates of Adam's first- and second-moment estimates.
    eps: added to sqrt(v). optax's default 1e-8 is given to both frameworks (Keras' own default is
      1e-7); optax adds it after bias correction, Keras before (see `compile_keras_model`).
  """

  learning_rate: float = 1e-3
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8


# How Keras compiles its step (`compile_keras_model`): mode -> keyword arguments of `model.compile`.
KERAS_MODES = {
  "eager": {"run_eagerly": True},  # op by op in Python, like un-jitted JAX
  "graph": {},  # Keras' default: the step traced into a tf.function (on JAX: jax.jit)
  "xla": {"jit_compile": True},  # that tf.function compiled by XLA (on JAX: the same jax.jit)
}

DEFAULT_SPEC = CNNSpec()
BLOG_KERAS_SPEC = CNNSpec(padding="VALID")  # the blog's Keras model, kept to reproduce its mismatch
CANONICAL_SPEC = CNNSpec(conv="canonical")  # the default model with the scan-friendly convolution
DEFAULT_TRAIN = TrainConfig()
