"""Helpers the benchmarks share: the machine's matmul peak, rates, machine info, the comparison table."""

from __future__ import annotations

import functools
import os
import platform
import time

import jax
import jax.numpy as jnp

from mnist_models._tuning import tuned_compiler_options

GEMM_SIZE = 1024  # a 1024^3 float32 matmul: 2.1 GFLOP, large enough to reach the CPU's peak


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


def machine_info() -> dict[str, object]:
  """Versions, device and the process-wide settings that change speed, for the saved results."""
  import flax
  import keras
  import numpy
  import optax
  import tensorflow as tf

  device = jax.devices()[0]
  return {
      "versions": {"jax": jax.__version__, "jaxlib": jax.lib.__version__, "flax": flax.__version__,
                   "optax": optax.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                   "numpy": numpy.__version__, "python": platform.python_version()},
      "jax_backend": jax.default_backend(), "jax_device_kind": device.device_kind,
      "jax_device_count": jax.device_count(), "cpu_count": os.cpu_count(),
      "tf_devices": [d.device_type for d in tf.config.list_logical_devices()],
      "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS", "TF_XLA_FLAGS", "OMP_NUM_THREADS",
                                             "MNIST_BENCH_TUNING", "XLA_PYTHON_CLIENT_PREALLOCATE",
                                             "TF_FORCE_GPU_ALLOW_GROWTH")},
      "jax_jit_compiler_options": tuned_compiler_options(),  # what the suite's jax-jit variants use
      "tf_onednn_enabled": tf_onednn_enabled(),
  }  # the measured matmul peak varies run to run, so it is saved with the comparison table instead


def tf_onednn_enabled() -> bool | None:
  """Whether TF's oneDNN kernels are on in this process (default depends on the CPU); None if unknown."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415 - TF's own check, private
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def reference_ratios(rows: list[dict], reference: dict[str, str], stat: str) -> list[float | None]:
  """Each row's `stat` time over its group's reference row at the same batch size (None without one).

  Args:
    rows: dicts with group, variant, batch_size and the `stat` time (seconds).
    reference: group -> the variant every other is compared to (e.g. 'jax-jit').
    stat: the time to compare, 'median' or 'min'.
  """
  times = {(r["group"], r["variant"], r["batch_size"]): r[stat] for r in rows}
  refs = [times.get((r["group"], reference.get(r["group"]), r["batch_size"])) for r in rows]
  return [r[stat] / ref if ref else None for r, ref in zip(rows, refs)]


def comparison_table(rows: list[dict], reference: dict[str, str]) -> list[dict]:
  """Adds `ratio` (median / the group's reference median at the same batch size) to each row."""
  out = [{**r, "ratio": ratio} for r, ratio in zip(rows, reference_ratios(rows, reference, "median"))]
  return sorted(out, key=lambda r: (r["group"], r["batch_size"], r["median"]))


def format_table(rows: list[dict], reference: dict[str, str]) -> str:
  """The comparison table as text, one line per benchmark."""
  head = f"{'group':<14}{'variant':<24}{'batch':>6}{'median ms':>11}{'images/s':>10}{'GFLOP/s':>9}{'% peak':>8}  ratio"
  lines = [head, "-" * len(head)]
  for r in rows:
    ratio = f"{r['ratio']:.2f}x {reference[r['group']]}" if r.get("ratio") else "-"
    pct = f"{100 * r['peak_fraction']:.1f}" if r.get("peak_fraction") is not None else "-"
    rate = f"{r['images_per_s']:>10.0f}{r['gflops']:>9.1f}" if "gflops" in r else f"{'-':>10}{'-':>9}"
    lines.append(f"{r['group']:<14}{r['variant']:<24}{r['batch_size']:>6}{1e3 * r['median']:>11.2f}{rate}{pct:>8}  {ratio}")
  return "\n".join(lines)


def roofline_line(rows: list[dict], batch_size: int, step_flops: int, peak_gflops: float) -> str | None:
  """One line: the train step's FLOPs, its floor at the matmul peak, and the variant closest to it."""
  train = [r for r in rows if r["group"] == "train_step" and r["batch_size"] == batch_size and "gflops" in r]
  if not train:
    return None
  best = max(train, key=lambda r: r["gflops"])
  return (f"roofline, train step at batch {batch_size}: {step_flops / 1e9:.2f} GFLOP; at the measured "
          f"{peak_gflops:.0f} GFLOP/s matmul peak the floor is {step_flops / peak_gflops / 1e6:.1f} ms; "
          f"closest: {best['variant']} at {best['gflops']:.1f} GFLOP/s ({100 * best['gflops'] / peak_gflops:.0f}% of peak)")
