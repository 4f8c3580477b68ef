"""mnist_models.bench: the benchmark harness, built on the library and never imported by it.

  plugin          the pytest plugin: every option, hook, fixture and marker of the suite
  workload        what one timed call computes (steps, batch size, images, FLOPs), read off its batches
  timing          the matmul peak, rates, and the loss check beside every timing
  table           the comparison table and the roofline line
  machine         machine info saved with every run
  baseline        saved runs as baselines: safe loading, the samples the verdicts read
  verdict         paired timing verdicts against a baseline (yardstick, bootstrap interval, threshold)
  fingerprint     exact numbers of a compiled program (XLA cost/memory analysis, HLO opcodes, TF graph ops)
  compile_counts  the stored compile/trace counts of the recompilation guard
  workers         runs held in fresh processes (process-wide settings, simulated devices)
  curves, figures the loss curves and bar charts: `python -m mnist_models.bench.figures`
  report          a saved run as Markdown tables: `python -m mnist_models.bench.report`
  history         benchmarks across saved runs: `python -m mnist_models.bench.history`
"""

from mnist_models.bench.workload import BATCH, EPOCH_BATCHES, Workload, host_batch

__all__ = ["BATCH", "EPOCH_BATCHES", "Workload", "host_batch"]
