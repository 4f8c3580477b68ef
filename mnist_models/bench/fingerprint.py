"""Program fingerprints: what a compiled step computes, counted exactly rather than timed.

For a jitted JAX step: XLA's cost analysis (flops, bytes accessed, transcendentals), its memory
analysis (argument, output, temporary bytes) and the count of each opcode in the optimized HLO. For
a tf.function: the count of each op type in its traced graph (and in the functions it calls), and where XLA
compiles it, the opcodes of XLA's optimized HLO. For Keras' own steps (train_on_batch, test_on_batch, fit), which
Keras traces inside functions of its own: `keras_step`. The same code, versions and flags give the same numbers
on every run, so a baseline's fingerprint is compared exactly: any difference is a change of the program (a lost
fusion, a new copy or transpose, a float64 promotion), named. Across versions the same difference is what the
compiler now does differently: information beside the timings.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Callable
from typing import Any

# `%name = type opcode(operands), attributes` (also `ROOT %name = ...`); a tuple type is `(f32[2], ...)`.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\b([a-z][a-z0-9\-_]*)\(", re.M)
COST_KEYS = ("flops", "bytes accessed", "transcendentals")
MEMORY_KEYS = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")


def opcode_counts(hlo_text: str) -> dict[str, int]:
  """How many instructions of each opcode an HLO module's text holds (every computation, fused ones too)."""
  return dict(sorted(collections.Counter(_INSTRUCTION.findall(hlo_text)).items()))


def jax_fingerprint(compiled: Any) -> dict:
  """The fingerprint of a `jax.stages.Compiled` (from `jitted.lower(*args).compile()`)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older jax: one dict per program
  memory = compiled.memory_analysis()
  out = {k: int(cost[k]) for k in COST_KEYS if cost and k in cost}
  out.update({k: int(getattr(memory, k)) for k in MEMORY_KEYS if memory is not None and hasattr(memory, k)})
  return {"kind": "xla", **out, "ops": opcode_counts(compiled.as_text())}


def tf_fingerprint(concrete_function: Any) -> dict:
  """The fingerprint of a traced tf.function (`fn.get_concrete_function(*args)`): its graph's op types, those of the
  functions it calls (a loop's body, a nested tf.function), and the elements its ops output (where their shapes are
  static): what a change of shapes alone moves."""
  graph = concrete_function.graph
  ops = collections.Counter(op.type for op in graph.get_operations())
  called = collections.Counter(node.op for f in graph.as_graph_def().library.function for node in f.node_def)
  outputs = [t.shape for op in graph.get_operations() for t in op.outputs]
  elements = sum(shape.num_elements() for shape in outputs if shape.is_fully_defined())
  return {
    "kind": "tf-graph",
    "output_elements": elements,
    "ops": dict(sorted(ops.items())),
    "called_ops": dict(sorted(called.items())),
  }


@dataclasses.dataclass(frozen=True)
class Later:
  """A program made when its fingerprint is asked for, after the timed rounds: `make()` returns a program, a
  fingerprint, or None (none to be had here). For what tracing anew would disturb while timing (Keras' steps count
  their traces), or what lives in a worker process."""

  make: Callable[[], Any]


def of(program: Any) -> dict | None:
  """The fingerprint of a `jax.stages.Compiled`, a traced tf.function's ConcreteFunction, a `Later`, or a
  fingerprint already made (a worker's)."""
  if isinstance(program, Later):
    return of(made) if (made := program.make()) is not None else None
  if isinstance(program, dict) and "kind" in program:
    return program
  if hasattr(program, "cost_analysis"):
    return jax_fingerprint(program)
  if hasattr(program, "graph"):
    return tf_fingerprint(program)
  raise TypeError(
    f"no fingerprint for {type(program).__name__}: pass jitted.lower(*args).compile() "
    f"or tf_function.get_concrete_function(*args)"
  )


def keras_step(model: Any, batch: Any, task: str = "train") -> dict | None:
  """The fingerprint of the step Keras compiles for `model` (compiled and built): its train_step for
  train_on_batch and fit ('train', 'fit'), its test_step for test_on_batch ('eval'), on `batch` (a KerasBatch).

  Traced anew as Keras traces it (Keras keeps its own inside closures): on TensorFlow a tf.function with the
  model's jit_compile, and with it XLA's optimized HLO (`experimental_get_compiler_ir`); on the JAX backend
  jax.jit with the state donated, lowered on the state's shapes. None when the model runs eagerly (no program).
  Tracing counts as one of the model's step traces: call it after the timed rounds.
  """
  import keras  # noqa: PLC0415 - only where Keras is used

  if model.run_eagerly:
    return None
  train, data = task in ("train", "fit"), (batch.images, batch.onehot)
  if keras.backend.backend() == "jax":
    return jax_fingerprint(_keras_jax_step(model, train).lower(_keras_jax_state(model, train), data).compile())
  import tensorflow as tf  # noqa: PLC0415

  step_fn = model.train_step if train else model.test_step
  step = tf.function(step_fn, reduce_retracing=True, jit_compile=model.jit_compile)
  out = tf_fingerprint(step.get_concrete_function(data))
  if model.jit_compile:
    out["hlo_ops"] = opcode_counts(step.experimental_get_compiler_ir(data)(stage="optimized_hlo"))
  return out


def _keras_jax_step(model: Any, train: bool) -> Callable:
  import jax  # noqa: PLC0415

  return jax.jit(model.train_step if train else model.test_step, donate_argnums=0)


def _keras_jax_state(model: Any, train: bool) -> tuple:
  """The state Keras' JAX trainer passes its step, as shapes: (trainable, non-trainable, [optimizer,] metrics)."""
  import jax  # noqa: PLC0415

  groups = [model.trainable_variables, model.non_trainable_variables]
  groups += [model.optimizer.variables] if train else []
  groups += [model.metrics_variables]
  return tuple([jax.ShapeDtypeStruct(v.shape, v.dtype) for v in group] for group in groups)


def diff(base: dict, now: dict) -> list[str]:
  """What changed, one item per number: 'bytes accessed +31% (...)', then per op, the largest moves first,
  'fusion 41 -> 58' (of a table other than 'ops': 'hlo_ops: fusion 3 -> 4'), then what only one side recorded
  ('hlo_ops: recorded before, not now': keras-xla's program without XLA); [] when identical."""
  out = []
  for key in sorted(set(base) & set(now)):
    b, n = base[key], now[key]
    if isinstance(b, dict) or b == n:
      continue
    out.append(
      f"{key} {b} -> {n}"
      if not (isinstance(b, int) and isinstance(n, int) and b)
      else f"{key} {n / b - 1:+.1%} ({b} -> {n})"
    )
  for key in sorted(k for k in set(base) & set(now) if isinstance(base[k], dict)):
    ops_b, ops_n, prefix = base[key], now[key], "" if key == "ops" else f"{key}: "
    moved = [(op, ops_b.get(op, 0), ops_n.get(op, 0)) for op in set(ops_b) | set(ops_n)]
    out += [f"{prefix}{op} {b} -> {n}" for op, b, n in sorted(moved, key=lambda m: (-abs(m[2] - m[1]), m[0])) if b != n]
  out += [f"{key}: recorded before, not now" for key in sorted(set(base) - set(now))]
  out += [f"{key}: recorded now, not before" for key in sorted(set(now) - set(base))]
  return out
