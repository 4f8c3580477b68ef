"""Keras and TensorFlow load without the packages Keras imports only for helpers the library never calls."""

import importlib
import importlib.util
import sys

import pytest

import mnist_models as mm
from mnist_models import _imports


def test_a_hidden_module_cannot_be_imported_inside_the_block_and_can_after_it():
  sys.modules.pop("wave", None)  # a small standard-library module, imported again below
  with _imports.hidden("wave", "json"):  # json is imported already: it stays importable
    with pytest.raises(ImportError):
      import wave  # noqa: F401
    import json  # noqa: F401
  import wave  # noqa: F401, F811

  assert sys.modules["wave"] is not None and sys.modules["json"] is not None


def test_keras_imported_by_the_library_falls_back_without_the_extras():
  """Keras as the library imports it (in a test process, the compile-guard canary at start; else here, through the
  lazy Keras names): its fallbacks are in place, and the extras themselves still import afterwards."""
  if importlib.util.find_spec("keras") is None:
    pytest.skip("Keras is not installed")
  assert mm.build_keras_cnn  # the library's first import of Keras, unless something imported it before
  from keras.src.trainers.data_adapters import array_slicing

  assert array_slicing.pandas is None
  if importlib.util.find_spec("keras.src.wrappers"):  # Keras' scikit-learn wrappers, since Keras 3.5
    from keras.src.wrappers import fixes

    assert fixes.sklearn is None
  assert importlib.import_module("pandas").DataFrame


def test_the_compat_names_exist_on_the_installed_versions():
  """Every name the library takes from _compat resolves here (an except clause's name is looked up only when it
  catches, so a missing one would surface as a NameError only on a backend failure)."""
  from mnist_models import _compat

  assert issubclass(_compat.JaxRuntimeError, Exception)
  assert isinstance(_compat.JIT_TAKES_COMPILER_OPTIONS, bool) and isinstance(_compat.PERSISTENT_CACHE_IS_SAFE, bool)
