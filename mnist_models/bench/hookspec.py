"""The hooks the suite's plugin adds, for a conftest.py or a plugin of one's own to implement."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_bench_groups(config: pytest.Config) -> dict:
  """Benchmark groups to declare: {group name: mnist_models.bench.Group(reference variant, judged=True)}.

  Every implementation's groups are merged (the suite's own five among them); a group declared twice,
  differently, stops the run. A declared group's rows get their ratio to its reference variant, measured
  in the same run at the same batch size, and, if judged, its paired timings get verdicts against a
  baseline. Called once, while pytest configures the run.
  """
