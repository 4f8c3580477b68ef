"""Data parallel: one global batch of BATCH images split over 1, 2, 4 and 8 devices, both frameworks.

Runs in one worker process whose CPU is split into 8 simulated devices (on a GPU machine: its
GPUs). Simulated devices share this machine's cores, so these numbers measure the frameworks'
partitioning and all-reduce overhead, not a speed-up (docs/data-parallel.md).
"""

import pytest

from mnist_models.bench import runs

DEVICES = (1, 2, 4, 8)
RUNS = {"jax": runs.jax_run, "keras": runs.keras_run}
_ONE_DEVICE = pytest.StashKey[dict]()  # framework -> median seconds on one device, this session


@pytest.mark.benchmark(group="data_parallel")
@pytest.mark.parametrize(
  "devices", [pytest.param(n, id=f"{n}dev", marks=() if n in (1, 8) else pytest.mark.extended) for n in DEVICES]
)
@pytest.mark.parametrize("framework", list(RUNS))
def test_data_parallel_step(timed_remote, benchmark, request, eight_devices, need_devices, framework, devices):
  need_devices(framework, devices)
  timed_remote(eight_devices, RUNS[framework], variant=f"{framework}-{devices}dev", num_devices=devices)
  if benchmark.stats is None:  # --benchmark-disable: nothing was timed
    return
  median, one_device = benchmark.stats.stats.median, request.config.stash.setdefault(_ONE_DEVICE, {})
  if devices == 1:
    one_device[framework] = median
  elif framework in one_device:  # strong scaling: the same global batch of BATCH images
    benchmark.extra_info.update(
      speedup_vs_1_device=one_device[framework] / median, scaling_efficiency=one_device[framework] / (devices * median)
    )
