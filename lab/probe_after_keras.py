"""Probe: does the tuned JAX train step read slower right after Keras/TF steps ran in the same process?

Pinned to one CPU and one BLAS thread, as timed runs are. Blocks of paired log-ratios (step / numpy matmul
yardstick) of `jax-jit` at batch 64: first alone; then each right after 30 Keras `train_on_batch` calls, after
the same calls and a pause, and alone again. Prints each block's lower quartile and its change from the first.

  PYTHONPATH=. python lab/probe_after_keras.py [--blocks 3] [--pairs 40]
"""

import argparse
import time

import jax
import numpy as np

import mnist_models as mm
from mnist_models.bench import host_batch
from mnist_models.bench.machine import pin_to_one_cpu
from mnist_models.bench.verdict import Yardstick, log_ratios


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--blocks", type=int, default=3)
  parser.add_argument("--pairs", type=int, default=40)
  parser.add_argument("--pause", type=float, default=1.0)
  args = parser.parse_args()
  pin_to_one_cpu()
  data = mm.load_mnist()
  batches = mm.make_batches(data.train_images, data.train_labels, 64, seed=0)
  batch = jax.device_put(host_batch(batches, 64))
  step, state = mm.tuned_jit(mm.train_step), [mm.create_train_state(rng=jax.random.key(0))]

  def jax_call():
    state[0], loss = jax.block_until_ready(step(state[0], batch))

  model = mm.compile_keras_model(mm.build_keras_cnn(), "graph")
  kbatch = mm.keras_batch(host_batch(batches, 64))

  def keras_calls():
    for _ in range(30):
      mm.keras_train_step(model, kbatch)

  yard = Yardstick()
  for _ in range(5):
    jax_call()
  keras_calls()

  def block():
    times, yard.times[:] = [], []
    for _ in range(args.pairs):
      yard()
      start = time.perf_counter()
      jax_call()
      times.append(time.perf_counter() - start)
    return float(np.quantile(log_ratios(times, yard.times), 0.25))

  rows = [("alone", block())]
  for i in range(args.blocks):
    keras_calls()
    rows.append((f"after keras {i}", block()))
    keras_calls()
    time.sleep(args.pause)
    rows.append((f"after keras + {args.pause:g}s pause {i}", block()))
    rows.append((f"alone {i}", block()))
  for name, q in rows:
    print(f"{name:<32} {q:.4f}  {np.expm1(q - rows[0][1]):+.1%}")


if __name__ == "__main__":
  main()
