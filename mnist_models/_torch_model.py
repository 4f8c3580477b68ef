"""The same CNN in PyTorch (an optional extra: `pip install -e '.[torch]'`), and Flax -> PyTorch weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mnist_models._spec import DEFAULT_SPEC, CNNSpec, layer_shapes


class TorchCNN(nn.Module):
  """images [batch, 28, 28, 1] (NHWC, as the Flax and Keras models take them) -> log-probabilities [batch, 10].

  The convolutions run NCHW, PyTorch's layout (`SAME` is padding 1 for a 3x3 window); the feature maps are
  flattened in NHWC order, as Flax and Keras flatten them, so every weight maps one to one. Layers are
  named conv1, conv2, dense1, dense2, as in `layer_shapes(spec)`.
  """

  def __init__(self, spec: CNNSpec = DEFAULT_SPEC):
    super().__init__()
    self.spec, shapes = spec, layer_shapes(spec)
    for i, features in enumerate(spec.conv_features):
      in_channels = shapes[f"conv{i + 1}"][0][2]
      self.add_module(f"conv{i + 1}", nn.Conv2d(in_channels, features, spec.kernel_size, padding=spec.padding.lower()))
    self.pool = nn.AvgPool2d(spec.pool_size, stride=spec.pool_size)
    self.dense1 = nn.Linear(*shapes["dense1"][0])
    self.dense2 = nn.Linear(*shapes["dense2"][0])

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or tuple(images.shape[1:]) != self.spec.input_shape:
      raise ValueError(
        f"TorchCNN expects images [batch, {', '.join(map(str, self.spec.input_shape))}], "
        f"got shape {tuple(images.shape)}"
      )
    x = images.permute(0, 3, 1, 2)
    for i in range(len(self.spec.conv_features)):
      x = self.pool(torch.relu(getattr(self, f"conv{i + 1}")(x)))
    x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as Flax's reshape and keras.layers.Flatten
    return torch.log_softmax(self.dense2(torch.relu(self.dense1(x))), dim=-1)


def copy_flax_params_to_torch(params: dict, model: TorchCNN) -> TorchCNN:
  """Copies Flax CNN parameters into the PyTorch CNN of the same spec, layer by layer; returns it.

  Conv kernels go from HWIO to PyTorch's OIHW, dense kernels from [in, out] to [out, in].
  """
  params = params.get("params", params)
  with torch.no_grad():
    for name, layer_params in params.items():
      layer = getattr(model, name)
      kernel, bias = (np.asarray(layer_params[k]) for k in ("kernel", "bias"))
      kernel = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
      if tuple(layer.weight.shape) != kernel.shape or tuple(layer.bias.shape) != bias.shape:
        raise ValueError(
          f"layer {name}: Flax shapes {kernel.shape}, {bias.shape} (transposed) do not match "
          f"PyTorch {tuple(layer.weight.shape)}, {tuple(layer.bias.shape)}; same CNNSpec?"
        )
      layer.weight.copy_(torch.tensor(kernel))  # copies: the arrays may be read-only views of JAX buffers
      layer.bias.copy_(torch.tensor(bias))
  return model
