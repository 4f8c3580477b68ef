"""Keras and TensorFlow load without the packages Keras imports only for helpers the library never calls."""

import importlib
import sys

import pytest

from mnist_models import _imports


def test_a_hidden_module_cannot_be_imported_inside_the_block_and_can_after_it():
  sys.modules.pop("wave", None)  # a small standard-library module, imported again below
  with _imports.hidden("wave", "json"):  # json is imported already: it stays importable
    with pytest.raises(ImportError):
      import wave  # noqa: F401
    import json  # noqa: F401
  import wave  # noqa: F401, F811
  assert sys.modules["wave"] is not None and sys.modules["json"] is not None


def test_keras_in_this_process_was_imported_without_the_extras():
  """This process imported TF and Keras lean (the compile-guard canary, at start): Keras' fallbacks are in place,
  and the extras themselves still import."""
  keras_fixes = pytest.importorskip("keras.src.wrappers.fixes")
  slicing = pytest.importorskip("keras.src.trainers.data_adapters.array_slicing")
  assert keras_fixes.sklearn is None and slicing.pandas is None
  assert importlib.import_module("pandas").DataFrame
