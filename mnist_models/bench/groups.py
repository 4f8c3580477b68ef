"""Benchmark groups: the variant each group's rows are compared with, and whether its timings are judged.

The suite declares its own five groups here; a benchmark of one's own declares its group with the
`pytest_bench_groups` hook (mnist_models/bench/hookspec.py, docs/own-benchmarks.md).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Group:
  """How a group of benchmarks is read.

  Attributes:
    reference: the variant every row of the group is compared with, measured in the same run at the same
      batch size (the table's ratio).
    judged: whether its paired timings get verdicts against a baseline. Compile latency is reported, not
      judged: a few rounds that each compile from scratch, unpaired.
  """

  reference: str
  judged: bool = True


SUITE_GROUPS = {
  "train_step": Group("jax-jit"),
  "eval_step": Group("jax-jit"),
  "epoch": Group("jax-loop"),
  "compile": Group("jax-jit", judged=False),
  "data_parallel": Group("jax-1dev"),
}


def references(groups: dict[str, Group]) -> dict[str, str]:
  """group -> its reference variant."""
  return {name: group.reference for name, group in groups.items()}


def judged(groups: dict[str, Group]) -> tuple[str, ...]:
  """The groups whose timings are judged."""
  return tuple(name for name, group in groups.items() if group.judged)


def merge(declared: list[dict[str, Group]]) -> dict[str, Group]:
  """The groups declared by every implementation of the hook; a group declared twice, differently, is an error."""
  out: dict[str, Group] = {}
  for groups in declared:
    for name, group in groups.items():
      if not isinstance(group, Group):
        raise TypeError(
          f"pytest_bench_groups must map group names to mnist_models.bench.Group, got {name!r}: {group!r}"
        )
      if out.setdefault(name, group) != group:
        raise ValueError(f"group {name!r} is declared twice, as {out[name]} and as {group}: declare it once")
  return out
