"""Machine info saved with every run: versions, devices and the process-wide settings that change speed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import time

import jax
import threadpoolctl

from mnist_models import tuned_compiler_options

SETTINGS_ENV = (
  "XLA_FLAGS",
  "TF_ENABLE_ONEDNN_OPTS",
  "TF_XLA_FLAGS",
  "OMP_NUM_THREADS",
  "MNIST_BENCH_TUNING",
  "XLA_PYTHON_CLIENT_PREALLOCATE",
  "TF_FORCE_GPU_ALLOW_GROWTH",
)


def machine_info() -> dict[str, object]:
  """Versions, device and the process-wide settings that change speed, for the saved results.

  The measured matmul peak varies from run to run, so it is saved with the comparison table instead.
  """
  import flax
  import jaxlib
  import numpy
  import optax

  try:
    import keras
    import tensorflow as tf
  except ImportError:  # the JAX side runs without them: their rows are then absent
    keras = tf = None

  device = jax.devices()[0]
  return {
    "versions": {
      "jax": jax.__version__,
      "jaxlib": jaxlib.__version__,
      "flax": flax.__version__,
      "optax": optax.__version__,
      "tensorflow": getattr(tf, "__version__", None),
      "keras": getattr(keras, "__version__", None),
      "numpy": numpy.__version__,
      "python": platform.python_version(),
      **{name: _installed(name) for name in ("ml-dtypes", "torch")},  # read without importing them
    },
    "jax_backend": jax.default_backend(),
    "jax_device_kind": device.device_kind,
    "jax_device_count": jax.device_count(),
    "cpu_count": os.cpu_count(),
    "tf_devices": [d.device_type for d in tf.config.list_logical_devices()] if tf else None,
    "env": {k: os.environ.get(k) for k in SETTINGS_ENV},
    "jax_jit_compiler_options": tuned_compiler_options(),  # what the suite's jax-jit variants use
    "tf_onednn_enabled": tf_onednn_enabled(),
    "cpu_affinity": sorted(os.sched_getaffinity(0)),  # the CPUs this run's threads could use
    "blas_threads": max((p["num_threads"] for p in threadpoolctl.threadpool_info()), default=None),
    "host": host_id(),
  }


def _installed(name: str) -> str | None:
  """The installed version of the distribution `name`; None where it is not installed."""
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def record_info() -> dict[str, object]:
  """machine_info with the CPU's name and flags in pytest-benchmark's shape (its `cpu`), for the records made
  outside pytest (the post's experiment, time to accuracy): comparability reads them as it reads saved runs."""
  import cpuinfo  # noqa: PLC0415 - pytest-benchmark's dependency, slow to import

  cpu = cpuinfo.get_cpu_info()
  return {
    "node": platform.node(),
    "cpu": {"brand_raw": cpu.get("brand_raw"), "flags": cpu.get("flags", [])},
    **machine_info(),
  }


def host_id(machine_id: str = "/etc/machine-id", boot_id: str = "/proc/sys/kernel/random/boot_id") -> str | None:
  """Which machine this is, and since which boot: a hash of the systemd machine id and the kernel's boot id (systemd
  asks that the ids themselves not be shown); None where there is neither. Two VMs of one kind share every other
  fact of machine_info and read unchanged code up to 30% apart (docs/methodology.md); VMs made from one image share
  the machine id too (this workplace's is dated 2025-06-24 in every VM), and a boot may land on another host, so a
  baseline saved before a reboot is another machine's."""
  raw = "".join(_read(path) for path in (machine_id, boot_id))
  return hashlib.sha256(f"mnist-bench:{raw}".encode()).hexdigest()[:16] if raw else None


def _read(path: str) -> str:
  try:
    with open(path) as f:
      return f.read().strip()
  except OSError:
    return ""


def pin_to_one_cpu() -> int | None:
  """Confines this process, its future threads and its future workers to one CPU, and BLAS to one thread.

  For timed runs on a small shared machine (docs/methodology.md, "Noise"): on the 2-vCPU VMs both
  frameworks' steps ran as fast on one CPU as on two, with per-call noise 3-4x lower. Call it before
  JAX and TF start their thread pools (they size them from the CPUs the process may use); numpy's
  BLAS threads already exist, so they are limited here. Returns the CPU, or None if there is only one.
  """
  cpus = os.sched_getaffinity(0)
  if len(cpus) < 2:
    return None
  cpu = max(cpus)  # the last one: CPU 0 usually takes more of the machine's interrupts
  for thread in os.listdir("/proc/self/task"):  # threads started at import (BLAS) too
    os.sched_setaffinity(int(thread), {cpu})
  threadpoolctl.threadpool_limits(1)
  return cpu


def has_gpu() -> bool:
  """Whether an NVIDIA GPU is visible, asked before JAX or TF start (they would claim it)."""
  return os.path.exists("/dev/nvidiactl")


def tf_onednn_enabled() -> bool | None:
  """Whether TF's oneDNN kernels are on in this process (default depends on the CPU); None if unknown."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415 - TF's own check, private

    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def _cpu_ticks(root: int) -> tuple[int, int] | None:
  """(CPU ticks the whole machine spent busy, stolen by the hypervisor included; ticks process `root` and its
  descendants spent, worker processes included), from /proc; None where there is no /proc (not Linux)."""
  try:
    with open("/proc/stat") as f:
      user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
  except (OSError, ValueError):
    return None
  ticks, children = {}, {}
  for entry in os.scandir("/proc"):
    if not entry.name.isdigit():
      continue
    try:
      with open(f"/proc/{entry.name}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
      continue  # not a process, or gone meanwhile
    ticks[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime, stime, and its waited-for children's
    children.setdefault(int(fields[1]), []).append(int(entry.name))
  own, family = 0, [root]
  while family:
    pid = family.pop()
    own += ticks.get(pid, 0)
    family += children.get(pid, [])
  return user + nice + system + irq + softirq + steal, own


class Neighbours:
  """How much CPU other processes took while this one timed (its own worker processes are not others): `with
  meter:` around each timed stretch; `load` is their average in CPUs (0 on a quiet machine, 1.0 = one CPU
  kept busy; None where it cannot be read). `root`: the process whose descendants are the suite's own (default
  this one; a pytest-xdist worker's siblings are its controller's).

  A neighbour shifts the paired ratios the verdicts judge (measured: up to +23% for a Keras step beside a
  busy process, docs/methodology.md); its own CPU time is what this process can see of it. A hypervisor's
  steal counts as a neighbour's.
  """

  def __init__(self, root: int | None = None):
    self.root = os.getpid() if root is None else root
    self.others_ticks, self.wall_s, self._start = 0, 0.0, None

  def __enter__(self) -> Neighbours:
    self._start = (time.perf_counter(), _cpu_ticks(self.root))
    return self

  def __exit__(self, *exc) -> None:
    (wall, ticks), now = self._start, _cpu_ticks(self.root)
    if ticks is not None and now is not None:
      self.others_ticks += (now[0] - ticks[0]) - (now[1] - ticks[1])
      self.wall_s += time.perf_counter() - wall

  @property
  def load(self) -> float | None:
    return max(0.0, self.others_ticks / _TICKS_PER_S / self.wall_s) if self.wall_s else None


_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
