"""Program fingerprints: what a compiled step computes, counted exactly rather than timed.

For a jitted JAX step: XLA's cost analysis (flops, bytes accessed, transcendentals), its memory
analysis (argument, output, temporary bytes) and the count of each opcode in the optimized HLO. For
a tf.function: the count of each op type in its traced graph. The same code, versions and flags
give the same numbers on every run, so a baseline's fingerprint is compared exactly: any difference
is a change of the program (a lost fusion, a new copy or transpose, a float64 promotion), named.
"""

from __future__ import annotations

import collections
import re
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
  """The fingerprint of a traced tf.function (`fn.get_concrete_function(*args)`): its graph's op types."""
  ops = collections.Counter(op.type for op in concrete_function.graph.get_operations())
  return {"kind": "tf-graph", "ops": dict(sorted(ops.items()))}


def of(program: Any) -> dict:
  """The fingerprint of a `jax.stages.Compiled` or of a traced tf.function's ConcreteFunction."""
  if hasattr(program, "cost_analysis"):
    return jax_fingerprint(program)
  if hasattr(program, "graph"):
    return tf_fingerprint(program)
  raise TypeError(
    f"no fingerprint for {type(program).__name__}: pass jitted.lower(*args).compile() "
    f"or tf_function.get_concrete_function(*args)"
  )


def diff(base: dict, now: dict) -> list[str]:
  """What changed, one item per number: 'fusion 41 -> 58', 'bytes accessed +31%'; [] when identical."""
  out = []
  for key in sorted(set(base) | set(now)):
    if key == "ops":
      continue
    b, n = base.get(key), now.get(key)
    if b != n:
      out.append(
        f"{key} {b} -> {n}"
        if not (isinstance(b, int) and isinstance(n, int) and b)
        else f"{key} {n / b - 1:+.1%} ({b} -> {n})"
      )
  ops_b, ops_n = base.get("ops", {}), now.get("ops", {})
  out += [
    f"{op} {ops_b.get(op, 0)} -> {ops_n.get(op, 0)}"
    for op in sorted(set(ops_b) | set(ops_n))
    if ops_b.get(op, 0) != ops_n.get(op, 0)
  ]
  return out
