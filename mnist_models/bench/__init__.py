"""mnist_models.bench: the benchmark harness (a pytest plugin), built on the library and never imported by it.

  plugin          the pytest plugin: options, markers and hooks (hookspec: the hooks it adds)
  fixtures        the suite's fixtures: data, worker processes, `timed`, `timed_remote`, `check_counts`
  settings        what loading the plugin changes in the process, and each one's switch
  timed           the timing fixture's object: warm-up, sizing, measuring, guards, checks, result
  session         a run's state (results, baseline, verdicts, programs): pairing, revisits, rechecks, judging
  pairing         a benchmark's calls paired with the yardstick, in visits
  verdict         the statistics of paired timing verdicts (yardstick, bootstrap interval, threshold)
  baseline        saved runs as baselines: safe loading, pooling, the samples the verdicts read
  comparability   whether two runs' machines and versions let their numbers be compared
  groups          benchmark groups: each one's reference variant, and whether it is judged
  workload        what one timed call computes (steps, batch size, images, FLOPs), read off its batches
  timing          the matmul peak, rates, and the loss check beside every timing
  fingerprint     exact numbers of a compiled program (XLA cost/memory analysis, HLO opcodes, TF graph ops)
  table, summary  the comparison table; what a run prints and writes as Markdown at its end
  machine         machine info saved with every run; the CPU pin; the neighbour meter
  compile_counts  the stored compile/trace counts of the recompilation guard
  processes, runs worker processes, and the training runs held in them

Two wings stand on it, each importing the harness and neither imported by it nor by the other:
  upgrade         an upgrade judged side by side: `python -m mnist_models.bench.upgrade --a ... --b ...`
  results         the tools that make and read the committed runs (the post's experiment, time to accuracy, the
                  README's answer, figures, reports): `python -m mnist_models.bench.results.<tool>`

A benchmark of one's own: docs/own-benchmarks.md (`timed`, `Workload`, `Group`).
"""

import importlib

_LAZY = {
  "Group": "groups",
  "BATCH": "workload",
  "EPOCH_BATCHES": "workload",
  "Workload": "workload",
  "host_batch": "workload",
}


def __getattr__(name: str):
  """Its public names, imported at their first use (PEP 562): a command of a wing (its options checked first) starts
  without the library's JAX side."""
  if name not in _LAZY:
    raise AttributeError(f"module 'mnist_models.bench' has no attribute {name!r}")
  value = getattr(importlib.import_module(f"mnist_models.bench.{_LAZY[name]}"), name)
  globals()[name] = value
  return value


__all__ = ["BATCH", "EPOCH_BATCHES", "Group", "Workload", "host_batch"]
