"""The Keras 3 CNN, built from the same spec, and Flax -> Keras weights.

Keras runs on TensorFlow here (the default this module sets) or on JAX in a process started with
KERAS_BACKEND=jax: the backend is chosen once per process, when keras is first imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mnist_models._spec import DEFAULT_SPEC, CNNSpec  # noqa: E402

BACKENDS = ("tensorflow", "jax")


class KerasCNN(keras.Sequential):
  """A Sequential model that also counts how often its train and test steps are traced into a graph.

  Traced: by tf.function on TensorFlow, by jax.jit on JAX. In eager mode (`run_eagerly`) the step
  runs as Python every call and is never traced, so the count stays 0.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.train_step_traces = self.test_step_traces = 0

  def train_step(self, *args):  # TF: (data); JAX: (state, data)
    if _tracing(args[-1]):
      self.train_step_traces += 1
    return super().train_step(*args)

  def test_step(self, *args):
    if _tracing(args[-1]):
      self.test_step_traces += 1
    return super().test_step(*args)


def _tracing(data) -> bool:
  """Whether the step is being traced into a graph (not run op by op) with `data`."""
  if keras.backend.backend() == "jax":
    import jax

    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(data))
  import tensorflow as tf

  return not tf.executing_eagerly()  # False only while tf.function traces the step


def build_keras_cnn(spec: CNNSpec = DEFAULT_SPEC) -> KerasCNN:
  """The same CNN in Keras: images [batch, 28, 28, 1] -> probabilities [batch, 10].

  Layer names match the Flax module's (conv1, conv2, dense1, dense2). The output is softmax
  probabilities, as Keras' categorical cross-entropy expects; their log equals the Flax output.
  """
  if keras.backend.backend() not in BACKENDS:
    raise RuntimeError(
      f"build_keras_cnn runs on the {' or '.join(BACKENDS)} backend; KERAS_BACKEND is "
      f"{keras.backend.backend()!r}. Unset KERAS_BACKEND or set it to one of those."
    )
  layers = [keras.Input(spec.input_shape)]
  for i, features in enumerate(spec.conv_features):
    layers.append(
      keras.layers.Conv2D(
        features, spec.kernel_size, padding=spec.padding.lower(), activation="relu", name=f"conv{i + 1}"
      )
    )
    layers.append(keras.layers.AveragePooling2D(spec.pool_size, strides=spec.pool_size, name=f"pool{i + 1}"))
  layers += [
    keras.layers.Flatten(name="flatten"),
    keras.layers.Dense(spec.dense_features, activation="relu", name="dense1"),
    keras.layers.Dense(spec.num_classes, activation="softmax", name="dense2"),
  ]
  return KerasCNN(layers, name="cnn")


def copy_flax_params_to_keras(params: dict, keras_model: keras.Model) -> keras.Model:
  """Copies Flax CNN parameters into the Keras CNN of the same spec, layer by layer; returns it.

  Both frameworks store conv kernels as HWIO and dense kernels as [in, out], and both flatten
  NHWC feature maps in the same order, so every array is copied unchanged.

  Args:
    params: Flax variables, either {'params': {...}} or the inner {'conv1': ..., ...} dict.
    keras_model: a model from `build_keras_cnn` with the same spec.
  """
  params = params.get("params", params)
  for name, layer_params in params.items():
    layer = keras_model.get_layer(name)
    kernel, bias = (np.asarray(layer_params[k]) for k in ("kernel", "bias"))
    want = tuple(tuple(w.shape) for w in layer.weights)
    if want != (kernel.shape, bias.shape):
      raise ValueError(
        f"layer {name}: Flax shapes {kernel.shape}, {bias.shape} do not match Keras {want}; "
        "were both models built from the same CNNSpec?"
      )
    layer.set_weights([kernel, bias])
  return keras_model


def keras_layer_shapes(keras_model: keras.Model) -> dict[str, tuple[tuple[int, ...], ...]]:
  """Layer name -> weight shapes, for the layers that hold weights."""
  return {layer.name: tuple(tuple(w.shape) for w in layer.weights) for layer in keras_model.layers if layer.weights}


__all__ = ["BACKENDS", "KerasCNN", "build_keras_cnn", "copy_flax_params_to_keras", "keras_layer_shapes"]
