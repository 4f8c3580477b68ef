"""Whether two runs' numbers can be compared: the same machine set up the same way, and which versions differ.

One place answers it for everything that compares saved runs: timing verdicts (only on the same machine and
setup), program fingerprints (exactly only when the compiler's versions match too), the pooling of a baseline's
runs (the same machine and versions) and the history of saved runs (which runs to mark).
"""

from __future__ import annotations

import dataclasses
from typing import Any

# What must match for timings to be judged: the same machine, set up the same way. Versions may differ
# (an upgrade is what a verdict is for); they are reported beside the verdicts.
MACHINE_KEYS = (
  "cpu_brand",
  "cpu_features",
  "cpu_count",
  "pinned_cpus",
  "tf_onednn_enabled",
  "jax_backend",
  "jax_device_kind",
  "blas_threads",
  "env",
  "host",
  "jax_jit_compiler_options",  # {} where this XLA rejected the suite's tuning: jax-jit is then plain jit
)
# The versions a compiled program depends on: fingerprints are compared exactly only where these match.
PROGRAM_VERSION_KEYS = ("jax", "jaxlib", "flax", "optax", "tensorflow", "keras")
_CPU_FEATURES = {"avx2", "avx512f", "avx512_vnni", "amx_tile"}


@dataclasses.dataclass(frozen=True)
class Difference:
  """One fact that differs between a baseline's run and this one."""

  key: str
  base: Any
  now: Any

  def __str__(self) -> str:
    return f"{self.key}: {self.base} -> {self.now}"


@dataclasses.dataclass(frozen=True)
class Comparison:
  """What differs between two runs' machine_info: the machine and its setup, and the versions."""

  machine: tuple[Difference, ...]
  versions: tuple[Difference, ...]

  @property
  def timings_comparable(self) -> bool:
    """Timings compare only on the same machine, set up the same way."""
    return not self.machine

  @property
  def programs_comparable(self) -> bool:
    """Fingerprints compare exactly only on the same kind of machine (which host does not matter: the compiler
    sees the CPU) with the same compiler-side versions."""
    kind = [d for d in self.machine if d.key != "host"]
    return not kind and not any(d.key in PROGRAM_VERSION_KEYS for d in self.versions)

  @property
  def other_host(self) -> bool:
    """Whether the baseline was made on another machine (or one that did not record which), all else the same."""
    return [d.key for d in self.machine] == ["host"]


def machine_key(machine_info: dict) -> dict:
  """The facts of a saved run's machine_info that make its timings comparable."""
  cpu = machine_info.get("cpu") or {}
  return {
    "cpu_brand": cpu.get("brand_raw"),
    "cpu_features": sorted(set(cpu.get("flags") or ()) & _CPU_FEATURES),
    "cpu_count": machine_info.get("cpu_count"),
    "pinned_cpus": len(machine_info.get("cpu_affinity") or ()),
    **{k: machine_info.get(k) for k in MACHINE_KEYS[4:]},  # host: machine.host_id
  }


def differences(base: dict, now: dict, keys: tuple[str, ...] | None = None) -> tuple[Difference, ...]:
  """Each of `keys` (default: every key of either) whose value differs."""
  return tuple(
    Difference(k, base.get(k), now.get(k)) for k in keys or sorted(set(base) | set(now)) if base.get(k) != now.get(k)
  )


def machine_differences(base_info: dict, now_info: dict) -> tuple[Difference, ...]:
  """The machine and setup facts (MACHINE_KEYS) that differ between two machine_info dicts."""
  return differences(machine_key(base_info), machine_key(now_info), MACHINE_KEYS)


def compare(base_info: dict, now_info: dict) -> Comparison:
  """How a baseline's machine_info and this run's differ: machine and setup, then versions."""
  return Comparison(
    machine_differences(base_info, now_info),
    differences(base_info.get("versions") or {}, now_info.get("versions") or {}),
  )


def same_setup(base_info: dict, now_info: dict) -> bool:
  """Whether two runs timed on the same machine, set up the same way, with the same versions."""
  return base_info.get("versions") == now_info.get("versions") and not machine_differences(base_info, now_info)
