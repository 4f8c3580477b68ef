"""Counting JAX compilations (via jax.monitoring), TF graph traces and Keras train-step traces."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from mnist_models import _compat
from mnist_models._imports import optional_tensorflow

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
    tf_traced: TensorFlow graphs added by traces (a tf.function's, Keras' train/test functions, tf.data's)
      and still alive, by function name, e.g. {'one_step_on_data': 1}.
    tf_tracing_s: seconds TensorFlow spent tracing graphs (its own metric): > 0 whenever anything was
      traced, even a graph freed since. In graph and XLA mode Keras traces, and XLA compiles, once per
      graph and input shape: a fixed-shape step that traces nothing compiles nothing.
    Both TF counts are live inside the block, fixed after.
  """

  compiled: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  traced: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  explanations: list[str] = dataclasses.field(default_factory=list)
  _tf_start: tuple = dataclasses.field(default_factory=lambda: _tf_state(), repr=False)
  _tf_end: tuple | None = dataclasses.field(default=None, repr=False)

  @property
  def compiles(self) -> int:
    return sum(self.compiled.values())

  @property
  def traces(self) -> int:
    return sum(self.traced.values())

  def _tf_now(self) -> tuple:
    return _tf_state() if self._tf_end is None else self._tf_end

  @property
  def tf_traced(self) -> collections.Counter:
    return collections.Counter(_tf_short_name(name) for name in self._tf_now()[1] - self._tf_start[1])

  @property
  def tf_tracing_s(self) -> float:
    return (self._tf_now()[0] - self._tf_start[0]) / 1e6

  @property
  def tf_traced_any(self) -> bool:
    """Whether TF traced anything in the block."""
    return self.tf_tracing_s > 0 or bool(self.tf_traced)

  def report(self) -> str:
    """A readable account: what compiled, what traced, and why jax says it missed its caches."""
    lines = [f"{self.compiles} compile(s): {dict(self.compiled)}", f"{self.traces} trace(s): {dict(self.traced)}"]
    if self.tf_traced_any:
      lines.append(
        f"TF traced graphs for {self.tf_tracing_s * 1e3:.1f} ms: {dict(self.tf_traced) or 'all freed since'}"
      )
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


def _tf_state() -> tuple[int, frozenset[str]]:
  """(microseconds TF has spent tracing graphs, the graphs in its eager context, e.g. '__inference_step_123').

  (0, none) while TensorFlow is not imported: it has traced nothing yet, and its counts start from there.
  """
  if sys.modules.get("tensorflow") is None:
    return 0, frozenset()
  context, tracing = _tf_internals()
  return tracing._graph_building_time_counter.get_cell().value(), frozenset(context.context().list_function_names())


def _tf_internals() -> tuple[Any, Any]:
  """TF's modules that hold its traced graphs and its tracing-time metric (no public API has either)."""
  from tensorflow.python.eager import context  # noqa: PLC0415 - TensorFlow only where it is in use
  from tensorflow.python.eager.polymorphic_function import tracing_compilation  # noqa: PLC0415

  return context, tracing_compilation


def _tf_short_name(name: str) -> str:
  """'__inference_one_step_on_data_2132' -> 'one_step_on_data'."""
  return re.sub(r"^__(inference|forward|backward)_|_\d+$", "", name)


def _short_name(fun_name: str) -> str:
  """'jit(train_step)' -> 'train_step'; jax wraps names in the API that compiled them."""
  while "(" in fun_name and fun_name.endswith(")"):
    fun_name = fun_name[fun_name.index("(") + 1 : -1]
  return fun_name


@contextlib.contextmanager
def count_compiles(explain: bool = True) -> Iterator[CompileCounts]:
  """Counts the JAX compilations and traces, and the TF graphs traced, inside the block.

  Nests: each block counts its own events. Listeners are removed on exit, even on error.

  Args:
    explain: also turn on `jax_explain_cache_misses` and keep its messages (jax logs them only
      while the flag is on, so a failure message can say why something recompiled).
  """
  counts = CompileCounts()

  def on_event(event: str, fun_name: str) -> None:
    if event == BACKEND_COMPILE_EVENT:
      counts.compiled[_short_name(fun_name)] += 1
    elif event == JAXPR_TRACE_EVENT:
      counts.traced[_short_name(fun_name)] += 1

  handler = _ExplanationHandler(counts.explanations)
  jax_logger = logging.getLogger("jax")
  jax_logger.addHandler(handler)
  try:
    with _compat.duration_events(on_event), jax.explain_cache_misses(explain) if explain else contextlib.nullcontext():
      yield counts
  finally:
    counts._tf_end = _tf_state()
    jax_logger.removeHandler(handler)


class KerasTraces:
  """Traces of a KerasCNN's train step inside a `count_keras_traces()` block: live inside it, fixed after."""

  def __init__(self, model: Any):
    self._model, self._start, self._end = model, model.train_step_traces, None

  @property
  def train_step(self) -> int:
    return (self._model.train_step_traces if self._end is None else self._end) - self._start

  def _stop(self) -> None:
    self._end = self._model.train_step_traces


@contextlib.contextmanager
def count_keras_traces(model: Any) -> Iterator[KerasTraces]:
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


def blind_spots() -> list[str]:
  """What `count_compiles` fails to see in this process: [] when it counts a fresh jit compile and a fresh TF trace
  (where TensorFlow is installed; it is imported here).

  A jax or TF upgrade that renamed the events or moved the graphs would otherwise make every guard
  count 0 forever, and pass.
  """
  tf = optional_tensorflow()
  with count_compiles(explain=False) as counts:
    jax.jit(lambda x: x * 2 + 1)(np.arange(3.0)).block_until_ready()  # a new function: traced and compiled
    if tf is not None:
      tf.function(lambda x: x * 2 + 1)(tf.range(3.0))
  problems = []
  if counts.compiles != 1:
    problems.append(
      f"a fresh jax.jit compile was counted {counts.compiles} times, not once: has jax {jax.__version__} "
      f"renamed the event {BACKEND_COMPILE_EVENT!r}? ({counts.report()})"
    )
  if tf is not None and counts.tf_tracing_s <= 0:
    problems.append(
      f"a fresh tf.function trace took no time in TF {tf.__version__}'s metric "
      f"{_tf_internals()[1]._graph_building_time_counter._metric_name!r}: was it renamed or moved?"
    )
  return problems
