#!/usr/bin/env bash
# Alternating unchanged and slowed benchmark runs, each judged against one baseline: how docs/notebook/history.md's
# sets were run. Each run leaves OUT/N-unchanged.json|log and OUT/N-slowed.json|log; count the verdicts with
# `python lab/tally_verdicts.py OUT/*.json`.
#
# usage: lab/alternate.sh OUT PAIRS SLOWDOWN BASELINE [pytest arguments, e.g. -k "train_step_jax_jit and b64"]
set -euo pipefail
out=$1 pairs=$2 slowdown=$3 baseline=$4
shift 4
mkdir -p "$out"
for i in $(seq 1 "$pairs"); do
  for side in unchanged slowed; do
    slowed=()
    if [ "$side" = slowed ]; then slowed=(-p lab.slowdown "--slowdown=$slowdown"); fi
    # `python -m pytest` (PYTHON: the environment's interpreter, default `python`), so that -p lab.slowdown imports
    # from the project's root. A run that finds a regression exits 1: the verdicts are the result, so go on.
    "${PYTHON:-python}" -m pytest --benchmark-only "--verdict-baseline=$baseline" "--benchmark-json=$out/$i-$side.json" \
      "${slowed[@]}" "$@" > "$out/$i-$side.log" 2>&1 || true
    echo "$i $side: $(grep -E 'REGRESSIONS|no regression' "$out/$i-$side.log" | tail -1)"
  done
done
