"""Timing helpers: this machine's matmul peak, rates, and the loss check that stands beside every timing."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

GEMM_SIZE = 1024  # a 1024^3 float32 matmul: 2.1 GFLOP, large enough to reach the CPU's peak
# An eval benchmark (or a compile benchmark's first call) must give the reference loss of the same
# weights on the same batch. Across frameworks and kernels the loss (~2.3) agrees to a few float32
# ulps: 4.8e-7 was measured on the log-probabilities (tests/test_models.py); 1e-5 leaves room.
LOSS_RTOL = 1e-5


@functools.cache
def gemm_peak_gflops(size: int = GEMM_SIZE, repeats: int = 10) -> float:
  """This machine's float32 matmul rate in GFLOP/s: best of `repeats` jitted [size, size] products."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, a))  # compile outside the timing
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9


def final_peak_gflops() -> float:
  """The larger of the session's first matmul measurement and a new one now.

  A busy phase of a shared machine can only lower a measured peak, so of two measurements minutes
  apart the larger is the better estimate of what this machine can do.
  """
  return max(gemm_peak_gflops(), gemm_peak_gflops.__wrapped__())


def rates(seconds: float, images: int, flops: int, peak_gflops: float | None = None) -> dict[str, float]:
  """Images/s, achieved GFLOP/s and (given a peak) its fraction, for one call that took `seconds`."""
  out = {"images_per_s": images / seconds, "gflops": flops / seconds / 1e9}
  if peak_gflops:
    out["peak_fraction"] = out["gflops"] / peak_gflops
  return out


class Recorded:
  """`fn`, keeping the results of its first and its last call: the losses a timing is checked with."""

  def __init__(self, fn: Callable[..., Any]):
    self.fn, self.calls, self.first, self.last = fn, 0, None, None

  def __call__(self, *args, **kwargs):
    out = self.fn(*args, **kwargs)
    if not self.calls:
      self.first = out
    self.calls, self.last = self.calls + 1, out
    return out


def check_losses(first: Any, last: Any, expect: float | None = None, rtol: float = LOSS_RTOL) -> str | None:
  """None if the losses a timed function returned are right, else what is wrong and by how much.

  Args:
    first, last: the results of its first and last call: a loss, or per-step losses [steps].
    expect: None for a function that trains: its loss after the timed rounds (the last step of the
      last call) must be below the loss before them (the first step of the first call). A number
      for one that must give that loss every call (an eval step, a first call from fresh weights).
    rtol: the relative tolerance of `expect`.
  """
  values = np.concatenate([np.ravel(np.asarray(first, np.float64)), np.ravel(np.asarray(last, np.float64))])
  if not np.isfinite(values).all():
    return f"a loss is not finite: first call {first}, last call {last}"
  if expect is not None:
    worst = values[np.argmax(np.abs(values - expect))]
    if abs(worst - expect) > rtol * abs(expect):
      return (
        f"loss {worst:.7g} differs from the reference {expect:.7g} by {abs(worst / expect - 1):.2e} "
        f"(relative; tolerance {rtol:g})"
      )
    return None
  before, after = np.ravel(np.asarray(first))[0], np.ravel(np.asarray(last))[-1]
  if not after < before:
    return (
      f"training did not lower the loss: {before:.5g} before the timed rounds, {after:.5g} after them "
      f"({after / before - 1:+.2%})"
    )
  return None
