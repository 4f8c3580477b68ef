"""The blog post's experiment reproduced and taken apart (mnist_models.bench.results.blog), and time to accuracy
(mnist_models.bench.results.to_accuracy): what each step changes, and that equal models on equal batches reach a target
together."""

import dataclasses

import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench import comparability, machine
from mnist_models.bench.results import blog, to_accuracy


@pytest.fixture(scope="module")
def small(bundled):
  return dataclasses.replace(
    bundled,
    train_images=bundled.train_images[:400],
    train_labels=bundled.train_labels[:400],
    test_images=bundled.test_images[:200],
    test_labels=bundled.test_labels[:200],
  )


def test_the_posts_split_is_80_20_disjoint_and_fixed(bundled):
  tr, va, tl, vl = blog.blog_split(bundled.train_images, bundled.train_labels)
  assert len(tr) == 3200 and len(va) == 800 and len(tl) == 3200 and len(vl) == 800
  again = blog.blog_split(bundled.train_images, bundled.train_labels)
  assert np.array_equal(tr, again[0]) and np.array_equal(vl, again[3])
  rows = {r.tobytes() for r in bundled.train_images.reshape(4000, -1)}
  assert len({r.tobytes() for r in tr.reshape(3200, -1)} | {r.tobytes() for r in va.reshape(800, -1)}) == len(rows)


def test_the_posts_warm_up_compiles_other_functions_than_its_loop_runs(small):
  train = (small.train_images[:128], small.train_labels[:128])
  val = (small.test_images[:100], small.test_labels[:100])
  with mm.count_compiles() as counts:
    result = blog.jax_as_written(train, val, epochs=1)
  # the warm-up: loss_fn and the double-wrapped step at batch 1; the loop: its own jit at batch 64, then the
  # validation's un-jitted ops one by one (every op a program of its own)
  assert counts.compiled.get("train_step", 0) == 2, counts.report()
  assert counts.compiles > 10, counts.report()
  assert np.isfinite(result["val_loss"]) and result["seconds"] > 0


def test_every_step_is_timed_and_each_changes_what_it_says(small):
  lines = []
  doc = blog.run(small, epochs=1, repeats=1, progress=lines.append)
  assert [s["step"] for s in doc["steps"]] == list(blog.STEPS)
  runs = doc["runs"]
  assert runs["as-written"]["keras"][0]["params"] == mm.BLOG_KERAS_NUM_PARAMS  # the post's smaller Keras model
  assert runs["same-model"]["keras"][0]["params"] == mm.NUM_PARAMS
  assert doc["train_examples"] == {"all": 400, "split": 320, "validation": 80}
  assert all(s["jax_s"] > 0 and s["keras_s"] > 0 for s in doc["steps"])
  steps = doc["steps"]
  assert steps[0]["jax_s"] == steps[1]["jax_s"] == steps[2]["jax_s"]  # one JAX code for three
  for i in (3, 4):  # JAX's changes only
    assert steps[i]["keras_s"] == steps[i - 1]["keras_s"] and steps[i]["jax_s"] != steps[i - 1]["jax_s"]
  assert steps[5]["keras_mode"] in ("keras-graph", "keras-xla") and len(lines) == 9
  assert blog.lines(doc)[1].lstrip().startswith("as-written")
  _recorded_this_machine(doc)


def test_equal_models_on_equal_batches_reach_the_target_together(small):
  doc = to_accuracy.run(small, 0.8, seeds=2, max_epochs=8, modes=("jax-jit", "keras-graph"), progress=lambda _: None)
  runs = {(r["mode"], r["seed"]): r for r in doc["runs"]}
  assert all(r["reached"] for r in runs.values()), [(k, r["epochs"][-1]) for k, r in runs.items()]
  for seed in (0, 1):  # the same weights and batches: the same epoch reaches it, give or take one
    assert abs(runs["jax-jit", seed]["epochs_to_target"] - runs["keras-graph", seed]["epochs_to_target"]) <= 1
  for mode, m in doc["modes"].items():
    assert m["reached"] == 2 and m["range_epochs"][1] - m["range_epochs"][0] <= 2, mode  # seeds agree within 2
    assert m["range_s"][0] <= m["median_s"] <= m["range_s"][1]
  assert "jax-jit" in to_accuracy.lines(doc)[1]
  _recorded_this_machine(doc)


def _recorded_this_machine(doc):
  """The record says where it ran, in the shape saved runs have, so the answer can tell whether its rows share a
  machine with the baseline's."""
  key = comparability.machine_key(doc["machine"])
  assert key["cpu_brand"] and key["host"] == machine.host_id() and key["pinned_cpus"] >= 1
  assert doc["gemm_peak_gflops"] > 0
