#!/usr/bin/env bash
# The two one-change upgrades of docs/notebook/upgrades.md ("Two upgrades, one change each"), measured on this machine,
# from a clean clone (a baseline's runs pool only on a clean commit), nothing else running:
#   1. the oldest end timed twice: the baseline (two runs, pooled);
#   2. each upgrade's end timed once, judged against it (jax 0.4.31 -> 0.4.33; TF/Keras 2.16.2/3.3.3 -> 2.17.1/3.5.0);
#   3. the oldest end a third time, judged against it: the control, no change;
#   4. the same changes outside the suite (lab/plain_upgrade_check.py), the environments alternating, three
#      times, and jax 0.4.33 with its old runtime restored (XLA_FLAGS=--xla_cpu_use_thunk_runtime=false).
# Reports go to docs/notebook/runs/pair_*.md, the plain script's lines to docs/notebook/runs/plain_pairs.jsonl; the timed
# runs are saved in .benchmarks/ (the pools need them side by side) and belong in docs/notebook/runs/upgrade-pairs/ once
# judged, apart from the baseline. About 45 minutes on the 2-core machine, after
# `tox -e oldest-bench,jax-runtime-bench,tf-keras-bench --notest`.
set -uo pipefail
runs=.benchmarks/Linux-CPython-3.11-64bit out=docs/notebook/runs tox=${TOX:-tox}
$tox -e oldest-bench
$tox -e oldest-bench
base=$(ls "$runs"/*_oldest-bench.json | tail -2 | head -1)
echo "baseline: $base, pooled with the run saved after it"
for env in jax-runtime-bench tf-keras-bench; do
  $tox -e "$env" -- --verdict-baseline="$base" --bench-summary="$out/pair_${env%-bench}.md"
done
$tox -e oldest-bench -- --verdict-baseline="$base" --bench-summary="$out/pair_control.md"
for _ in 1 2 3; do
  for env in oldest-bench jax-runtime-bench tf-keras-bench; do .tox/$env/bin/python lab/plain_upgrade_check.py; done
  XLA_FLAGS=--xla_cpu_use_thunk_runtime=false .tox/jax-runtime-bench/bin/python lab/plain_upgrade_check.py
done >>"$out/plain_pairs.jsonl"
