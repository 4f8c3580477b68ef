"""mnist_models: one MNIST CNN, built identically in Flax and in Keras, with training steps for both.

Every name loads at its first use: the JAX side at its first name, the Keras side (which imports Keras and
TensorFlow) and the PyTorch side (an optional extra) at theirs, so that the JAX side works, and starts fast,
without them, and `import mnist_models` alone imports none of them.
"""

import importlib
import importlib.util

from mnist_models import _imports

# Every name, by the module that defines it: imported at its first use (PEP 562), so that `import mnist_models`
# (and a command that only needs the harness' arguments checked) starts without JAX, TensorFlow or PyTorch.
_LAZY = {
  "mnist_models._batches": (
    "Batches",
    "device_batches",
    "make_batches",
    "one_batch",
    "one_hot",
    "valid_examples",
  ),
  "mnist_models._compile_count": (
    "CompileCounts",
    "KerasTraces",
    "blind_spots",
    "count_compiles",
    "count_keras_traces",
  ),
  "mnist_models._conv": ("conv_same",),
  "mnist_models._data": (
    "MNIST",
    "MNISTDataError",
    "load_mnist",
  ),
  "mnist_models._flax_model": (
    "CNN",
    "init_params",
  ),
  "mnist_models._jax_train": (
    "TrainState",
    "create_train_state",
    "eval_step",
    "evaluate",
    "jit_eval_step",
    "jit_scan_epoch",
    "jit_train_step",
    "scan_epoch",
    "set_hyperparams",
    "set_learning_rate",
    "train_epoch",
    "train_step",
    "train_steps",
  ),
  "mnist_models._nnx_model": (
    "NNXCNN",
    "copy_linen_params_to_nnx",
    "nnx_layer_shapes",
  ),
  "mnist_models._nnx_train": (
    "compile_nnx_step",
    "create_nnx_model",
    "jit_nnx_split_train_step",
    "nnx_eval_step",
    "nnx_split_train_step",
    "nnx_train_step",
    "nnx_train_steps",
    "set_nnx_hyperparams",
  ),
  "mnist_models._parallel": (
    "DATA_AXIS",
    "data_mesh",
    "data_parallel_train_step",
    "pad_batch",
    "replicate",
    "shard_batch",
    "simulate_cpu_devices",
  ),
  "mnist_models._spec": (
    "BLOG_KERAS_NUM_PARAMS",
    "BLOG_KERAS_SPEC",
    "CANONICAL_SPEC",
    "DEFAULT_SPEC",
    "DEFAULT_TRAIN",
    "KERAS_MODES",
    "NUM_PARAMS",
    "CNNSpec",
    "TrainConfig",
    "forward_flops",
    "layer_shapes",
    "num_params",
    "train_flops",
  ),
  "mnist_models._tuning": (
    "TUNED_CPU_OPTIONS",
    "TUNED_XLA_FLAGS",
    "new_tuned_jit",
    "tuned_compiler_options",
    "tuned_jit",
  ),
  "mnist_models._keras_model": ("KerasCNN", "build_keras_cnn", "copy_flax_params_to_keras", "keras_layer_shapes"),
  "mnist_models._keras_train": (
    "KerasBatch",
    "compile_keras_model",
    "keras_batch",
    "keras_eval_step",
    "keras_evaluate",
    "keras_on_batch_retracing",
    "keras_train_epoch",
    "keras_train_step",
    "keras_train_steps",
  ),
  "mnist_models._keras_tape": ("make_keras_tape_loop", "make_keras_tape_step"),
  "mnist_models._keras_parallel": ("distribute_batch", "make_keras_data_parallel_step", "mirrored_strategy"),
  "mnist_models._torch_model": ("TorchCNN", "copy_flax_params_to_torch"),
  "mnist_models._torch_train": (
    "TorchBatch",
    "compile_torch_model",
    "torch_adam",
    "torch_batch",
    "torch_batches",
    "torch_compile_counts",
    "torch_eval_loss",
    "torch_mean_nll",
    "torch_train_step",
    "torch_train_steps",
  ),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


_OPTIONAL = ("mnist_models._keras", "mnist_models._torch")  # the sides whose packages may be missing


def __getattr__(name: str):
  """A name, or one of the library's modules (`mm._conv`), imported at its first use (PEP 562)."""
  if name.startswith("_") and importlib.util.find_spec(f"mnist_models.{name}") is not None:
    return importlib.import_module(f"mnist_models.{name}")
  if name not in _LAZY_NAMES:
    raise AttributeError(f"module 'mnist_models' has no attribute {name!r}")
  if not _LAZY_NAMES[name].startswith(_OPTIONAL):
    value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    globals()[name] = value
    return value
  try:
    module = _imports.lean_import(_LAZY_NAMES[name])
  except ImportError as e:
    needs = (
      "PyTorch, an optional extra: `pip install -e '.[torch]'`"
      if "torch" in _LAZY_NAMES[name]
      else "Keras and TensorFlow: `pip install -e .` installs them (Keras on JAX needs no TensorFlow: "
      "KERAS_BACKEND=jax, in a process of its own)"
    )
    raise ImportError(f"mnist_models.{name} needs {needs} ({e})") from e
  value = getattr(module, name)
  globals()[name] = value
  return value


def __dir__() -> list[str]:
  return sorted({*globals(), *_LAZY_NAMES})
