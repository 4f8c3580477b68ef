"""Deliberate mistakes, each made in a fresh copy of the suite, and whether the test meant to catch it does.

Run: `python tests/mutations.py [name ...]` (from the repository root, in its virtual environment).
Each mutant is a text replacement in one file of `git archive HEAD` (or a baseline with a NaN in it) and
the pytest command that must fail on it; the unmutated copy must pass the same command first. The
library never knows: nothing in it is switched on or off for these runs. Outcomes: docs/mutations.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = ".benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json"
KERAS_STEP = '  return float(model.train_on_batch(batch.images, batch.onehot, return_dict=True)["loss"])'
MUTANTS = {
  # name: (file, [(old, new), ...], pytest arguments)
  "keras-dp-gradient-scale": (
    "mnist_models/_keras_parallel.py",
    [
      ("* mask) / count", "* mask) / tf.maximum(tf.reduce_sum(mask), 1.0)"),  # each replica's own mean ...
      ("strategy.reduce(tf.distribute.ReduceOp.SUM", "strategy.reduce(tf.distribute.ReduceOp.MEAN"),
    ],  # loss right
    ["tests/test_data_parallel.py", "-k", "keras_mirrored"],
  ),
  "jax-mask-dropped": (
    "mnist_models/_jax_train.py",
    [("[:, 0] * mask", "[:, 0]")],
    ["tests/test_data_parallel.py", "tests/test_jax_train.py", "-k", "jax"],
  ),
  "jax-recompile-each-step": (
    "mnist_models/_jax_train.py",
    [
      (
        "  for batch in batches:\n    state, loss = step(state, batch)",
        "  for batch in batches:\n    jax.clear_caches()\n    state, loss = step(state, batch)",
      )
    ],
    ["tests/test_recompilation.py", "-k", "two_epochs or new_params or batch_size"],
  ),
  "keras-retrace-each-step": (
    "mnist_models/_keras_train.py",
    [(KERAS_STEP, "  model.train_function = None\n" + KERAS_STEP)],
    ["tests/test_recompilation.py", "-k", "keras_train_on_batch"],
  ),
  "keras-retrace-each-step-benchmark": (
    "mnist_models/_keras_train.py",
    [(KERAS_STEP, "  model.train_function = None\n" + KERAS_STEP)],
    ["benchmarks", "--benchmark-only", "-k", "train_step_keras_graph and b64"],
  ),
  "keras-flatten-channels-first": (
    "mnist_models/_keras_model.py",
    [('keras.layers.Flatten(name="flatten")', 'keras.layers.Permute((3, 1, 2)), keras.layers.Flatten(name="flatten")')],
    ["tests/test_models.py"],
  ),
  "keras-valid-padding": (
    "mnist_models/_keras_model.py",
    [("padding=spec.padding.lower()", 'padding="valid"')],
    ["tests/test_models.py"],
  ),
  "compile-event-renamed": (
    "mnist_models/_compile_count.py",
    [('"/jax/core/compile/backend_compile_duration"', '"/jax/core/compile/backend_compile_time"')],
    ["tests/test_spec.py"],
  ),
  "nan-in-baseline": (
    BASELINE,
    [],
    ["benchmarks", "--benchmark-only", "-k", "train_step_jax_jit and b64", f"--verdict-baseline={BASELINE}"],
  ),
}


def _nan_in_baseline(root: Path) -> None:
  path = root / BASELINE
  doc = json.loads(path.read_text())
  bench = next(
    b
    for b in doc["benchmarks"]
    if b["group"] == "train_step" and b["extra_info"]["variant"] == "jax-jit" and b["extra_info"]["batch_size"] == 64
  )
  bench["extra_info"]["paired"]["log_ratios"][3] = float("nan")
  path.write_text(json.dumps(doc))


def _pytest(root: Path, args: list[str]) -> tuple[int, str]:
  done = subprocess.run(
    [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", *args], cwd=root, capture_output=True, text=True
  )
  lines = [
    line
    for line in (done.stdout + done.stderr).splitlines()
    if line.startswith(("FAILED", "ERROR", "E  ", "Exit", "REGRESSIONS"))
    or line.endswith("s ==")
    or (" in " in line and (" passed" in line or " failed" in line or " error" in line))
  ]
  return done.returncode, "\n".join(lines[-6:])


def run(name: str) -> bool:
  """True if the mutant's tests pass on the unmutated copy and fail on the mutated one."""
  file, edits, args = MUTANTS[name]
  with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    archive = subprocess.run(["git", "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    start = time.perf_counter()
    intact, _ = _pytest(root, args)
    path, text = root / file, (root / file).read_text()
    for old, new in edits:
      if text.count(old) != 1:
        raise SystemExit(f"{name}: {old!r} is not once in {file}: the mutant is stale, update it")
      text = text.replace(old, new)
    path.write_text(text)
    if name == "nan-in-baseline":
      _nan_in_baseline(root)
    mutated, evidence = _pytest(root, args)
  caught = intact == 0 and mutated != 0
  print(
    f"## {name}: {'CAUGHT' if caught else 'MISSED'} (intact exit {intact}, mutated exit {mutated}, "
    f"{time.perf_counter() - start:.0f} s)\n`pytest {' '.join(args)}`\n{evidence}\n",
    flush=True,
  )
  return caught


if __name__ == "__main__":
  names = sys.argv[1:] or list(MUTANTS)
  sys.exit(0 if all([run(n) for n in names]) else 1)
