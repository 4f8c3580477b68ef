"""The blog post's experiment, reproduced, then taken apart one difference at a time (docs/blog.md).

  python -m mnist_models.bench.results.blog [--epochs 5] [--repeats 3] [--out docs/runs/blog.json]

The post (shared/seed) trained its Flax CNN and a Keras CNN for 10 epochs at batch 64 with a validation pass per
epoch, and timed the whole training. Six steps, each timed end to end the way the post times it (from just before
the loop, or `fit`, to its end: compiling, every epoch's training and validation included):

- `as-written`: its code. JAX: the training images split 80/20 (`train_test_split(..., random_state=42)`), each
  batch sliced from its JAX arrays and copied (`jnp.array`) in the Python loop, the step compiled by a warm-up on a
  batch of 1 (a double-wrapped jit: the loop's own jit compiles again at 64), validation by the un-jitted loss, op
  by op.
  Keras: `valid` padding (431,242 parameters against Flax's 824,458), `fit` on every training image, validated
  on the test images.
- `same-model`: Keras builds the Flax model (`SAME`, 824,458 parameters); the rest as written.
- `same-data`: Keras also trains on the same 80% and validates on the same 20%.
- `jit-validation`: JAX's validation loss jitted (one line of the post's loop changed).
- `device-data`: JAX's batches made once and put on the device (inside the clock) rather than sliced and copied
  in the loop, the suite's step under plain `jax.jit`, its validation jitted.
- `best`: each at its best: JAX as `device-data` with the suite's tuned jit; Keras `fit` in its fastest mode here
  (graph and XLA both timed, the faster kept, on the same split).

A step times only the side it changes; the other side keeps the step before's time (the first three steps' JAX is
the post's code, timed once per repeat). Every step runs `repeats` times, alternating frameworks; the record keeps
every wall time, and the medians are what the README shows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mnist_models as mm
from mnist_models.bench import machine, timing

STEPS = ("as-written", "same-model", "same-data", "jit-validation", "device-data", "best")
BATCH = 64
SPLIT_SEED = 42  # the post's random_state


def blog_split(images: np.ndarray, labels: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, ...]:
  """The post's 80/20 split of the training images (what sklearn's train_test_split does, without sklearn)."""
  order = np.random.default_rng(seed).permutation(len(images))
  cut = len(images) - int(np.ceil(0.2 * len(images)))
  return images[order[:cut]], images[order[cut:]], labels[order[:cut]], labels[order[cut:]]


def jax_as_written(train: tuple, val: tuple, epochs: int, jit_validation: bool = False) -> dict:
  """The post's JAX code, as it wrote it (or with its validation loss jitted); its wall time and last validation
  loss."""
  model, optimizer = mm.CNN(), optax.adam(0.001)

  def loss_fn(params, images, labels):
    logits = model.apply(params, images)
    logprobs = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
    return -jnp.mean(jnp.sum(logprobs * labels, axis=-1))

  @jax.jit
  def train_step(opt_state, params, images, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, images, labels)
    updates, new_opt_state = optimizer.update(grads, opt_state)
    return new_opt_state, optax.apply_updates(params, updates), loss

  params = model.init(jax.random.PRNGKey(0), jnp.ones((1, 28, 28, 1), jnp.float32))
  opt_state = optimizer.init(params)
  sample = jnp.ones((1, 28, 28, 1), jnp.float32), jnp.zeros((1, 10), jnp.float32)
  jax.jit(loss_fn)(params, *sample)  # the post's "pre-compile", on a batch of 1, of other functions than the loop's
  jax.jit(train_step)(opt_state, params, *sample)
  # the post's arrays are JAX arrays (its normalization made them so) and its one-hot labels too, all before its clock
  (train_images, train_labels), (val_images, val_labels) = (tuple(map(jnp.asarray, pair)) for pair in (train, val))
  train_onehot, val_onehot = jax.nn.one_hot(train_labels, 10), jax.nn.one_hot(val_labels, 10)
  start = time.perf_counter()
  for _ in range(epochs):
    losses = []
    for i in range(0, len(train_images), BATCH):
      opt_state, params, loss = train_step(
        opt_state, params, jnp.array(train_images[i : i + BATCH]), jnp.array(train_onehot[i : i + BATCH])
      )
      losses.append(loss)
    jnp.mean(jnp.array(losses))
    validate = jax.jit(loss_fn) if jit_validation else loss_fn
    val_losses = [
      validate(params, jnp.array(val_images[i : i + BATCH]), jnp.array(val_onehot[i : i + BATCH]))
      for i in range(0, len(val_images), BATCH)
    ]
    val_loss = float(jnp.mean(jnp.array(val_losses)))
  return {"seconds": time.perf_counter() - start, "val_loss": val_loss}


def keras_as_written(train: tuple, val: tuple, epochs: int, padding: str = "valid", jit_compile: bool = False) -> dict:
  """The post's Keras code (a Sequential model, `compile('adam')`, `fit` with validation_data); its wall time."""
  import keras  # noqa: PLC0415 - the JAX steps run without it

  layers = keras.layers
  model = keras.Sequential(
    [
      keras.Input((28, 28, 1)),
      layers.Conv2D(32, (3, 3), activation="relu", padding=padding),
      layers.AveragePooling2D((2, 2)),
      layers.Conv2D(64, (3, 3), activation="relu", padding=padding),
      layers.AveragePooling2D((2, 2)),
      layers.Flatten(),
      layers.Dense(256, activation="relu"),
      layers.Dense(10, activation="softmax"),
    ]
  )
  model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
  (images, labels), (val_images, val_labels) = train, val
  start = time.perf_counter()
  history = model.fit(
    images,
    mm.one_hot(labels),
    epochs=epochs,
    batch_size=BATCH,
    validation_data=(val_images, mm.one_hot(val_labels)),
    verbose=0,
  )
  return {
    "seconds": time.perf_counter() - start,
    "val_loss": float(history.history["val_loss"][-1]),
    "params": int(model.count_params()),
  }


def jax_best(train: tuple, val: tuple, epochs: int, tuned: bool = True) -> dict:
  """The same training at its best: batches on the device, a jitted validation, the tuned jit (or plain
  `jax.jit`: the `device-data` step)."""
  state = mm.create_train_state(rng=jax.random.key(0))
  val_batches = mm.device_batches(mm.make_batches(*val, BATCH))
  jit = mm.tuned_jit if tuned else jax.jit
  step, evaluate = jit(mm.train_step), jit(mm.eval_step)
  start = time.perf_counter()
  batches = mm.device_batches(mm.make_batches(*train, BATCH))  # the copy to the device is part of its cost
  for _ in range(epochs):
    state, _ = mm.train_epoch(state, batches, step)
    metrics = mm.evaluate(state, val_batches, evaluate)
  return {"seconds": time.perf_counter() - start, "val_loss": metrics["loss"]}


def run(data: mm.MNIST, epochs: int, repeats: int, progress: Callable[[str], None] = print) -> dict:
  """Every step `repeats` times; a record of each wall time."""
  timing.gemm_peak_gflops()  # the peak's first measurement; the record keeps the larger of it and the last
  images, test_images = data.train_images, data.test_images
  train_images, val_images, train_labels, val_labels = blog_split(images, data.train_labels)
  split, whole = (
    ((train_images, train_labels), (val_images, val_labels)),
    ((images, data.train_labels), (test_images, data.test_labels)),
  )
  tasks: dict[str, dict[str, Callable[[], dict]]] = {
    "as-written": {"jax": lambda: jax_as_written(*split, epochs), "keras": lambda: keras_as_written(*whole, epochs)},
    "same-model": {"keras": lambda: keras_as_written(*whole, epochs, padding="same")},
    "same-data": {"keras": lambda: keras_as_written(*split, epochs, padding="same")},
    "jit-validation": {"jax": lambda: jax_as_written(*split, epochs, jit_validation=True)},
    "device-data": {"jax": lambda: jax_best(*split, epochs, tuned=False)},
    "best": {
      "jax": lambda: jax_best(*split, epochs),
      "keras-graph": lambda: keras_as_written(*split, epochs, padding="same"),
      "keras-xla": lambda: keras_as_written(*split, epochs, padding="same", jit_compile=True),
    },
  }
  times: dict[str, dict[str, list[dict]]] = {step: {name: [] for name in sides} for step, sides in tasks.items()}
  for r in range(repeats):
    for step, sides in tasks.items():
      for name, task in sides.items():
        jax.clear_caches()  # each run compiles afresh, as the post's did
        times[step][name].append(task())
        progress(f"repeat {r + 1}/{repeats} {step} {name}: {times[step][name][-1]['seconds']:.1f} s")
  return {
    "source": data.source,
    "epochs": epochs,
    "batch_size": BATCH,
    "train_examples": {"all": len(images), "split": len(train_images), "validation": len(val_images)},
    "test_examples": len(test_images),
    "versions": {"jax": jax.__version__, "keras": _keras_version()},
    "machine": machine.record_info(),
    "gemm_peak_gflops": timing.final_peak_gflops(),
    "runs": times,
    "steps": summary(times),
  }


def summary(times: dict) -> list[dict]:
  """Per step: each framework's median wall time (a side the step does not change keeps the step before's) and
  Keras / JAX."""
  out, jax_s, keras = [], None, None
  for step in STEPS:
    sides = times[step]
    jax_s = _median(sides["jax"]) if "jax" in sides else jax_s
    modes = {k: _median(v) for k, v in sides.items() if k.startswith("keras")}
    keras = min(modes.items(), key=lambda kv: kv[1]) if modes else keras
    out.append(
      {"step": step, "jax_s": jax_s, "keras_s": keras[1], "keras_mode": keras[0], "keras_over_jax": keras[1] / jax_s}
    )
  return out


def _median(records: list[dict]) -> float:
  return float(statistics.median(r["seconds"] for r in records))


def _keras_version() -> str:
  import keras  # noqa: PLC0415

  return keras.__version__


def lines(doc: dict) -> list[str]:
  """The steps as text: each framework's median wall time and Keras / JAX."""
  out = [f"the post's experiment on {doc['source']} MNIST, {doc['epochs']} epochs at batch {doc['batch_size']}:"]
  for s in doc["steps"]:
    out.append(
      f"  {s['step']:<14} JAX {s['jax_s']:7.1f} s  Keras ({s['keras_mode']}) {s['keras_s']:7.1f} s  "
      f"Keras/JAX {s['keras_over_jax']:.2f}x"
    )
  return out


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mnist_models.bench.results.blog", description=__doc__.split("\n")[0])
  parser.add_argument(
    "--epochs", type=int, help="epochs (default: the post's 10 on full MNIST, 5 on the bundled digits)"
  )
  parser.add_argument("--repeats", type=int, default=3, help="runs of each step, alternating frameworks")
  parser.add_argument(
    "--data", default="auto", choices=("auto", "full", "bundled"), help="MNIST (default: full if on disk)"
  )
  parser.add_argument("--out", help="write the record as JSON here")
  args = parser.parse_args(argv)
  data = mm.load_mnist(args.data)
  epochs = args.epochs or (10 if data.source == "full" else 5)
  if epochs < 1 or args.repeats < 1:
    parser.error(f"--epochs and --repeats must be at least 1, got {epochs} and {args.repeats}")
  doc = run(data, epochs, args.repeats)
  print("\n".join(lines(doc)))
  if args.out:
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
