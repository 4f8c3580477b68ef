"""The APIs that moved across the supported range (pyproject's lower bounds to today's releases), in one place.

Everything else in the library writes today's API; where an older release spells it differently, the difference
is bridged here, once, and named after what it does, never after a version. The oldest pins are tested by
`tox -e oldest` (docs/upgrades.md lists what each end runs and what it cannot).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import re
from collections.abc import Callable, Iterator

import jax
import numpy as np

# jax 0.4.3x: the runtime error is jaxlib's XlaRuntimeError; later jax names it jax.errors.JaxRuntimeError.
try:
  JaxRuntimeError = jax.errors.JaxRuntimeError
except AttributeError:  # pragma: no cover - depends on the installed jax
  from jaxlib import xla_extension

  JaxRuntimeError = xla_extension.XlaRuntimeError

# Per-function compiler options (`jax.jit(..., compiler_options=...)`) came after jax 0.4.3x. Where jit does not
# take them, a jitted function compiles with XLA's defaults: the options this library passes are speed and
# compile-time settings, never a change of what is computed.
JIT_TAKES_COMPILER_OPTIONS = "compiler_options" in inspect.signature(jax.jit).parameters


def jit(fn: Callable, *, compiler_options: dict | None = None, **jit_kwargs) -> Callable:
  """`jax.jit(fn, compiler_options=..., **jit_kwargs)`; the options are left out where jax's jit takes none."""
  if compiler_options and JIT_TAKES_COMPILER_OPTIONS:
    jit_kwargs["compiler_options"] = compiler_options
  return jax.jit(fn, **jit_kwargs)


# jax's persistent compilation cache on the 0.4 line loads CPU programs that compute NaN: seen here on jax 0.4.31,
# Keras-on-JAX's fit step after its train_on_batch step in one process, from an empty cache (loss NaN from the first
# epoch; finite without the cache). jax 0.10 computes the same losses with the cache as without.
PERSISTENT_CACHE_IS_SAFE = tuple(int(p) for p in jax.__version__.split(".")[:2]) >= (0, 5)


def make_mesh(devices: list, axis: str) -> jax.sharding.Mesh:
  """A 1-D mesh named `axis` over `devices` (jax.make_mesh where it exists; it came after jax 0.4.3x)."""
  if hasattr(jax, "make_mesh"):
    return jax.make_mesh((len(devices),), (axis,), devices=devices)
  return jax.sharding.Mesh(np.asarray(devices), (axis,))


def set_cpu_device_count(num_devices: int) -> None:
  """Splits the host into `num_devices` JAX CPU devices: the `jax_num_cpu_devices` option where it exists, else
  XLA's flag (read when the CPU backend starts). Raises RuntimeError once the backend has started."""
  try:
    jax.config.update("jax_num_cpu_devices", num_devices)
  except AttributeError:  # no such option: XLA_FLAGS, which takes effect only before the backend starts
    from jax._src import xla_bridge  # noqa: PLC0415 - only on a jax without the option

    if xla_bridge.backends_are_initialized():
      raise RuntimeError("the JAX backend is already initialized") from None
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={num_devices}".strip()


# --- jax.monitoring --------------------------------------------------------------------------------------------

# A listener is called as (event, seconds, fun_name=...) by jax since 0.5; jax 0.4.3x passes no name, and logs it
# (at DEBUG, from this logger) just before it records the event.
_DISPATCH_LOGGER = "jax._src.dispatch"
_LOGGED_NAME = re.compile(r"^Finished (?:tracing(?: \+ transforming)?|XLA compilation of) (\S+)")


@contextlib.contextmanager
def duration_events(callback: Callable[[str, str], None]) -> Iterator[None]:
  """Inside the block, calls `callback(event, fun_name)` for each event duration jax records (a trace, a compile),
  with the name of the function it was for; removes the listener on exit, even on error."""
  name_by_log = not hasattr(jax.monitoring, "unregister_event_duration_listener")
  from jax._src import core, monitoring  # noqa: PLC0415 - jax 0.4.3x: whether a trace is under way; its unregister

  with _names_from_log() if name_by_log else contextlib.nullcontext() as last:

    def on_duration(event: str, duration: float, fun_name: str | None = None, **_) -> None:
      if name_by_log and not core.trace_state_clean():
        return  # jax 0.4.3x also records the traces of jitted functions inside a trace; later jax, the outer only
      callback(event, fun_name or (last[-1] if last else "?"))

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    try:
      yield
    finally:
      if name_by_log:  # jax 0.4.3x has no public unregister
        monitoring._unregister_event_duration_listener_by_callback(on_duration)
      else:
        jax.monitoring.unregister_event_duration_listener(on_duration)


@contextlib.contextmanager
def events(listener: Callable[..., None]) -> Iterator[None]:
  """Inside the block, `listener(event, **kwargs)` hears every event jax records (jax.monitoring.record_event)."""
  jax.monitoring.register_event_listener(listener)
  try:
    yield
  finally:
    if hasattr(jax.monitoring, "unregister_event_listener"):
      jax.monitoring.unregister_event_listener(listener)
    else:  # jax 0.4.3x has no public unregister
      from jax._src import monitoring  # noqa: PLC0415

      monitoring._unregister_event_listener_by_callback(listener)


class _NameHandler(logging.Handler):
  def __init__(self, sink: list[str]):
    super().__init__(logging.DEBUG)
    self.sink = sink

  def emit(self, record: logging.LogRecord) -> None:
    if match := _LOGGED_NAME.match(str(record.msg)):
      self.sink.append(match.group(1))


@contextlib.contextmanager
def _names_from_log() -> Iterator[list[str]]:
  """The names of what jax traces and compiles, read off its dispatch logger's DEBUG lines while the block runs
  (kept to this block: the logger's level and propagation are restored, and its lines reach no other handler)."""
  logger, names = logging.getLogger(_DISPATCH_LOGGER), []
  handler, level, propagate = _NameHandler(names), logger.level, logger.propagate
  logger.addHandler(handler)
  if not logger.isEnabledFor(logging.DEBUG):
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
  try:
    yield names
  finally:
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


# --- flax.nnx --------------------------------------------------------------------------------------------------


def nnx_update(optimizer, model, grads) -> None:
  """`optimizer.update(model, grads)` (flax 0.11 on); flax 0.10's optimizer holds its model: `update(grads)`."""
  if _update_takes_model(type(optimizer)):
    optimizer.update(model, grads)
  else:
    optimizer.update(grads)


def nnx_lower(fn, *args):
  """`fn.lower(*args)` of an `nnx.jit` function; None where flax's nnx.jit has no `lower` (flax 0.10)."""
  return fn.lower(*args) if hasattr(fn, "lower") else None


@functools.cache
def _update_takes_model(optimizer_class: type) -> bool:
  return "model" in inspect.signature(optimizer_class.update).parameters


def set_variable(variable, value) -> None:
  """`variable[...] = value` for an nnx.Variable: `set_value` where flax has it (0.12 on), else the `.value` setter
  (flax 0.10's Variable passes item assignment on to its immutable jax array)."""
  if hasattr(variable, "set_value"):
    variable.set_value(value)
  else:
    variable.value = value


# --- keras ---------------------------------------------------------------------------------------------------


def reset_metrics_before_on_batch(model) -> None:
  """What newer Keras' `train_on_batch`/`test_on_batch` do first (3.15's reset the model's metrics, so that a call
  returns its own batch's loss): done here where Keras does not (3.3 reports the running mean since the last
  reset), so that every version returns, and times, the same work."""
  if not _resets_metrics(type(model)):
    model.reset_metrics()


@functools.cache
def _resets_metrics(model_class: type) -> bool:
  return "reset_metrics" in inspect.getsource(model_class.train_on_batch)


@functools.cache
def _sums_in_update_step(optimizer_class: type) -> bool:
  return "_all_reduce_sum_gradients" in inspect.getsource(optimizer_class._backend_update_step)


def keras_sums_replica_gradients(optimizer) -> bool:
  """Whether a Keras optimizer on TensorFlow, called in a replica of a tf.distribute strategy, sums the replicas'
  gradients before its update. Keras 3.3 meant to, but did so inside its cross-replica merge, where there is no
  replica context to reduce in, so each replica's own gradient went unsummed (keras#19308); later Keras sums
  them first."""
  return _sums_in_update_step(type(optimizer))
