"""mnist_models.bench: the benchmark harness, built on the library and never imported by it.

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
  curves, figures the loss curves and bar charts: `python -m mnist_models.bench.figures`
  report          a saved run as Markdown tables: `python -m mnist_models.bench.report`
  history         benchmarks across saved runs: `python -m mnist_models.bench.history`
  sides           the sides of a side-by-side comparison: pins, revision, settings; their environments, visits
  side_by_side    two sides measured alternately and judged: `python -m mnist_models.bench.side_by_side`
  blog            the blog post's experiment, as written and then fair: `python -m mnist_models.bench.blog`
  to_accuracy     time to a target test accuracy over seeds: `python -m mnist_models.bench.to_accuracy`
  answer          the README's answer and its figure from committed runs: `python -m mnist_models.bench.answer`

A benchmark of one's own: docs/own-benchmarks.md (`timed`, `Workload`, `Group`).
"""

from mnist_models.bench.groups import Group
from mnist_models.bench.workload import BATCH, EPOCH_BATCHES, Workload, host_batch

__all__ = ["BATCH", "EPOCH_BATCHES", "Group", "Workload", "host_batch"]
