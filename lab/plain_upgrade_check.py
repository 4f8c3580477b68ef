"""The same upgrade measured outside the suite: the JAX train step (plain `jax.jit`; at batch 64 and at batch 1,
where a step is mostly per-call overhead) and Keras' `train_on_batch` (graph mode) at batch 64, timed with
`time.perf_counter` and nothing of the suite's harness (no yardstick, no guards, no pytest). Run it in each
environment, alternating, and compare the medians:

  for i in 1 2 3; do for env in .tox/oldest .venv; do $env/bin/python lab/plain_upgrade_check.py; done; done

One CPU, as the suite's timed runs (set before jax or TF start). Prints one JSON line: versions, XLA_FLAGS,
seconds per call. lab/upgrade_pairs.sh runs it for the two one-change upgrades of docs/notebook/upgrades.md.
"""

import os

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's library
import mnist_models as mm  # noqa: E402

CALLS, REPEATS = 20, 7


def per_call(fn) -> list[float]:
  """Two untimed calls (they compile), then REPEATS x CALLS timed calls: seconds per call, per repeat."""
  fn()
  fn()
  times = []
  for _ in range(REPEATS):
    start = time.perf_counter()
    for _ in range(CALLS):
      fn()
    times.append((time.perf_counter() - start) / CALLS)
  return times


def main() -> None:
  data = mm.load_mnist()
  batch = mm.one_batch(data.train_images[:64], data.train_labels[:64])
  state, step = [mm.create_train_state(rng=jax.random.key(0))], jax.jit(mm.train_step)
  on_device, one = jax.device_put(batch), jax.device_put(mm.one_batch(data.train_images[:1], data.train_labels[:1]))

  def jax_step(b=on_device):
    state[0], loss = step(state[0], b)
    jax.block_until_ready(loss)

  model, kb = mm.compile_keras_model(mm.build_keras_cnn(), "graph"), mm.keras_batch(batch)

  def keras_step():
    float(model.train_on_batch(kb.images, kb.onehot, return_dict=True)["loss"])

  out = {"versions": {m.__name__: m.__version__ for m in (jax, keras, tf)}, "xla_flags": os.environ.get("XLA_FLAGS")}
  steps = (("jax-jit-plain", jax_step), ("jax-jit-plain-b1", lambda: jax_step(one)), ("keras-graph", keras_step))
  for name, fn in steps:
    times = per_call(fn)
    out[name] = {"median_s": statistics.median(times), "times_s": times}
  print(json.dumps(out))


if __name__ == "__main__":
  main()
