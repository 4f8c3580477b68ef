"""Counting JAX compilations (via jax.monitoring) and Keras train-step traces."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
from typing import Iterator

import jax
import keras

# The events jax emits (jax/_src/dispatch.py), each with a fun_name keyword argument.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
JAXPR_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@dataclasses.dataclass
class CompileCounts:
  """What compiled inside a `count_compiles()` block.

  Attributes:
    compiles: XLA backend compilations (each costs real time).
    traces: jaxpr traces (Python re-run to build a program; usually followed by a compile).
    compiled: function name -> number of compilations, e.g. {'train_step': 1}.
    traced: function name -> number of traces.
    explanations: jax's own cache-miss explanations, logged while the block ran.
  """

  compiled: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  traced: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  explanations: list[str] = dataclasses.field(default_factory=list)

  @property
  def compiles(self) -> int:
    return sum(self.compiled.values())

  @property
  def traces(self) -> int:
    return sum(self.traced.values())

  def report(self) -> str:
    """A readable account: what compiled, what traced, and why jax says it missed its caches."""
    lines = [f"{self.compiles} compile(s): {dict(self.compiled)}", f"{self.traces} trace(s): {dict(self.traced)}"]
    if self.explanations:
      lines += ["jax's cache-miss explanations:", *self.explanations]
    return "\n".join(lines)


class _ExplanationHandler(logging.Handler):
  def __init__(self, sink: list[str]):
    super().__init__(logging.WARNING)
    self.sink = sink

  def emit(self, record: logging.LogRecord) -> None:
    message = record.getMessage()
    if "CACHE MISS" in message:
      self.sink.append(message)


def _short_name(fun_name: str) -> str:
  """'jit(train_step)' -> 'train_step'; jax wraps names in the API that compiled them."""
  while "(" in fun_name and fun_name.endswith(")"):
    fun_name = fun_name[fun_name.index("(") + 1:-1]
  return fun_name


@contextlib.contextmanager
def count_compiles(explain: bool = True) -> Iterator[CompileCounts]:
  """Counts the JAX compilations and traces that happen inside the block.

  Nests: each block counts its own events. Listeners are removed on exit, even on error.

  Args:
    explain: also turn on `jax_explain_cache_misses` and keep its messages (jax logs them only
      while the flag is on, so a failure message can say why something recompiled).
  """
  counts = CompileCounts()

  def on_duration(event: str, duration: float, fun_name: str = "?", **_) -> None:
    if event == BACKEND_COMPILE_EVENT:
      counts.compiled[_short_name(fun_name)] += 1
    elif event == JAXPR_TRACE_EVENT:
      counts.traced[_short_name(fun_name)] += 1

  handler = _ExplanationHandler(counts.explanations)
  jax_logger = logging.getLogger("jax")
  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax_logger.addHandler(handler)
  try:
    with jax.explain_cache_misses(explain) if explain else contextlib.nullcontext():
      yield counts
  finally:
    jax_logger.removeHandler(handler)
    jax.monitoring.unregister_event_duration_listener(on_duration)


class KerasTraces:
  """Traces of a KerasCNN's train step inside a `count_keras_traces()` block: live inside it, fixed after."""

  def __init__(self, model: keras.Model):
    self._model, self._start, self._end = model, model.train_step_traces, None

  @property
  def train_step(self) -> int:
    return (self._model.train_step_traces if self._end is None else self._end) - self._start

  def _stop(self) -> None:
    self._end = self._model.train_step_traces


@contextlib.contextmanager
def count_keras_traces(model: keras.Model) -> Iterator[KerasTraces]:
  """Counts how often `model`'s train step is traced into a tf.function inside the block.

  The model must be a `KerasCNN` (from `build_keras_cnn`), which counts its own traces.
  """
  if not hasattr(model, "train_step_traces"):
    raise TypeError("count_keras_traces needs a model from build_keras_cnn (a KerasCNN)")
  traces = KerasTraces(model)
  try:
    yield traces
  finally:
    traces._stop()
