"""The fastest honest JAX configuration on CPU: same float32 math, different XLA kernels.

XLA's CPU backend in jax 0.10 hands convolutions to YNNPACK by default; for this CNN its own
convolution emitter is about twice as fast on the measured 2-core CPU, with identical losses. The
options below keep YNNPACK for individual dot products only. They apply per jitted function (no
process-wide XLA_FLAGS), and only where the backend accepts them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp

from mnist_models import _compat

TUNED_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
# The same setting for a whole process (every jit, no compiler_options), in XLA_FLAGS' syntax.
TUNED_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
TUNING_ENV = "MNIST_BENCH_TUNING"  # set to 0 to time plain jax.jit everywhere


@functools.cache
def tuned_compiler_options() -> dict[str, str]:
  """TUNED_CPU_OPTIONS on a CPU backend that accepts them; {} elsewhere or when $MNIST_BENCH_TUNING=0."""
  if os.environ.get(TUNING_ENV, "1") == "0" or jax.default_backend() != "cpu" or not _compat.JIT_TAKES_COMPILER_OPTIONS:
    return {}
  try:  # a newer jaxlib may rename the option: then fall back to plain jit rather than fail
    jax.jit(jnp.negative, compiler_options=TUNED_CPU_OPTIONS).lower(jnp.zeros(2)).compile()
  except Exception:  # noqa: BLE001 - any rejection means "not available here"
    return {}
  return dict(TUNED_CPU_OPTIONS)


def new_tuned_jit(fn: Callable, **jit_kwargs) -> Callable:
  """A new `jax.jit(fn, **jit_kwargs)` wrapper with `tuned_compiler_options()` (for timing compilation itself)."""
  return _compat.jit(fn, compiler_options=tuned_compiler_options() or None, **jit_kwargs)


tuned_jit = functools.cache(new_tuned_jit)  # one wrapper per function, so each compiles once
tuned_jit.__doc__ = "`new_tuned_jit(fn, **jit_kwargs)`, cached per function and arguments: the suite's jitted steps."
