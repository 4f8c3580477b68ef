"""Time to accuracy: the wall time until validation accuracy first reaches a target, per framework and mode, over
seeds (as MLPerf Training and AlgoPerf score training: time to a stated quality, the spread over seeds stated).

  python -m mnist_models.bench.results.to_accuracy [--target 0.97] [--seeds 5] [--max-epochs 20] [--out FILE]

Each seed gives every mode the same initial weights (Flax's, copied into Keras) and the same batches in the same
order (reshuffled each epoch with the seed and the epoch). After every epoch, accuracy on the test images; the
evaluation's time counts, as MLPerf counts it. The clock starts with the model built and the data in host memory, so
compiling is inside it; the first epoch's time beyond the median later epoch (compiling, tracing, first calls) is
also shown apart. Modes: `jax-jit` (the tuned jit, batches copied to the device each epoch), `keras-graph` and
`keras-xla` (`fit` over the same batches, one epoch a call).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax

import mnist_models as mm
from mnist_models.bench import machine, timing
from mnist_models.bench.results.curves import Trainer

MODES = ("jax-jit", "keras-graph", "keras-xla")
BATCH = 64


def one_run(mode: str, data: mm.MNIST, seed: int, target: float, max_epochs: int) -> dict:
  """One mode from one seed until it reaches `target` (or `max_epochs`): each epoch's end time and accuracy."""
  jax.clear_caches()  # each run compiles afresh
  trainer = Trainer(mode, data, seed, BATCH)
  epochs, start = [], time.perf_counter()
  for epoch in range(1, max_epochs + 1):
    trainer.train(trainer.feed(mm.make_batches(data.train_images, data.train_labels, BATCH, seed=seed * 1000 + epoch)))
    epochs.append({"epoch": epoch, "seconds": time.perf_counter() - start, "accuracy": trainer.evaluate()["accuracy"]})
    if epochs[-1]["accuracy"] >= target:
      break
  durations = [b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0.0}, *epochs], epochs, strict=False)]
  reached = epochs[-1]["accuracy"] >= target
  return {
    "mode": mode,
    "seed": seed,
    "reached": reached,
    "epochs_to_target": epochs[-1]["epoch"] if reached else None,
    "seconds_to_target": epochs[-1]["seconds"] if reached else None,
    "first_epoch_extra_s": durations[0] - statistics.median(durations[1:]) if len(durations) > 1 else None,
    "epochs": epochs,
  }


def run(data: mm.MNIST, target: float, seeds: int, max_epochs: int, modes=MODES, progress: Callable = print) -> dict:
  """Every mode from every seed, the modes alternating within a seed."""
  timing.gemm_peak_gflops()  # the peak's first measurement; the record keeps the larger of it and the last
  runs = []
  for seed in range(seeds):
    for mode in modes:
      runs.append(one_run(mode, data, seed, target, max_epochs))
      r = runs[-1]
      got = f"{r['seconds_to_target']:.1f} s, {r['epochs_to_target']} epochs" if r["reached"] else "not reached"
      progress(f"seed {seed} {mode}: {got}")
  return {
    "source": data.source,
    "train_examples": len(data.train_images),
    "test_examples": len(data.test_images),
    "target": target,
    "max_epochs": max_epochs,
    "batch_size": BATCH,
    "versions": {"jax": jax.__version__},
    "machine": machine.record_info(),
    "gemm_peak_gflops": timing.final_peak_gflops(),
    "runs": runs,
    "modes": summary(runs),
  }


def summary(runs: list[dict]) -> dict[str, dict]:
  """Per mode: seeds that reached the target, the median and range of their times and epochs, the first epoch's
  extra time."""
  out = {}
  for mode in dict.fromkeys(r["mode"] for r in runs):
    mine = [r for r in runs if r["mode"] == mode]
    done = [r for r in mine if r["reached"]]
    seconds, epochs = [r["seconds_to_target"] for r in done], [r["epochs_to_target"] for r in done]
    extra = [r["first_epoch_extra_s"] for r in mine if r["first_epoch_extra_s"] is not None]
    out[mode] = {
      "seeds": len(mine),
      "reached": len(done),
      "median_s": statistics.median(seconds) if seconds else None,
      "range_s": [min(seconds), max(seconds)] if seconds else None,
      "median_epochs": statistics.median(epochs) if epochs else None,
      "range_epochs": [min(epochs), max(epochs)] if epochs else None,
      "first_epoch_extra_s": statistics.median(extra) if extra else None,
    }
  return out


def lines(doc: dict) -> list[str]:
  out = [f"time to {doc['target']:.0%} test accuracy on {doc['source']} MNIST, batch {doc['batch_size']}:"]
  for mode, m in doc["modes"].items():
    if not m["reached"]:
      out.append(f"  {mode:<12} not reached in {doc['max_epochs']} epochs by any of {m['seeds']} seeds")
      continue
    lo, hi = m["range_s"]
    out.append(
      f"  {mode:<12} {m['median_s']:6.1f} s (seeds {lo:.1f}-{hi:.1f}; {m['reached']} of {m['seeds']} reached it), "
      f"{m['median_epochs']:g} epochs ({m['range_epochs'][0]}-{m['range_epochs'][1]}); first epoch +"
      f"{m['first_epoch_extra_s'] or 0:.1f} s"
    )
  return out


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m mnist_models.bench.results.to_accuracy", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--target", type=float, default=None, help="test accuracy (default 0.97 bundled, 0.99 full)")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--max-epochs", type=int, default=20)
  parser.add_argument("--data", default="auto", choices=("auto", "full", "bundled"))
  parser.add_argument("--out", help="write the record as JSON here")
  args = parser.parse_args(argv)
  data = mm.load_mnist(args.data)
  target = args.target if args.target is not None else (0.99 if data.source == "full" else 0.97)
  if not 0 < target < 1 or args.seeds < 1 or args.max_epochs < 1:
    parser.error(f"need 0 < --target < 1, --seeds and --max-epochs >= 1; got {target}, {args.seeds}, {args.max_epochs}")
  doc = run(data, target, args.seeds, args.max_epochs)
  print("\n".join(lines(doc)))
  if args.out:
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
