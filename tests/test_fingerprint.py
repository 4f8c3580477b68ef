"""Program fingerprints: the same program gives the same numbers, a changed one is named, and a run fails on it."""

import json

import jax
import numpy as np
import pytest
import tensorflow as tf
from inner_runs import TIMED

import mnist_models as mm
from mnist_models.bench import fingerprint

X = np.ones((32, 32), np.float32)


def _jax(fn):
  return fingerprint.of(jax.jit(fn).lower(X).compile())


def _tf(fn):
  return fingerprint.of(tf.function(fn, autograph=False).get_concrete_function(tf.constant(X)))


def test_the_same_program_has_the_same_fingerprint_and_a_changed_one_is_named():
  matmul, matmul_plus_one = (lambda x: x @ x), (lambda x: x @ x + 1.0)
  assert _jax(matmul) == _jax(matmul) and fingerprint.diff(_jax(matmul), _jax(matmul)) == []
  changes = fingerprint.diff(_jax(matmul), _jax(matmul_plus_one))
  assert any(c.startswith("flops +") for c in changes), changes  # one add per element: more flops, named
  assert _tf(matmul) == _tf(matmul)
  assert fingerprint.diff(_tf(matmul), _tf(matmul_plus_one)) == [
    "output_elements +33.4% (3072 -> 4097)",  # the sum [32, 32] and the constant 1.0
    "AddV2 0 -> 1",
    "Const 0 -> 1",
  ]


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_keras_steps_are_fingerprinted_as_keras_compiles_them_and_a_changed_model_is_named(bundled, mode):
  batch = mm.keras_batch(mm.one_batch(bundled.train_images[:8], bundled.train_labels[:8]))

  def step(spec, task):
    model = mm.compile_keras_model(mm.build_keras_cnn(spec), mode)
    mm.keras_train_step(model, batch)  # as timed: the fingerprint is made after Keras' own steps ran
    return fingerprint.keras_step(model, batch, task)

  train = step(mm.DEFAULT_SPEC, "train")
  assert train["ops"] and train == step(mm.DEFAULT_SPEC, "train") and train != step(mm.DEFAULT_SPEC, "eval")
  assert ("hlo_ops" in train) is (mode == "xla")  # XLA's optimized HLO where XLA compiles the step
  blog = fingerprint.diff(train, step(mm.BLOG_KERAS_SPEC, "train"))  # the blog's smaller Keras model: same ops
  assert any(c.startswith("output_elements -") for c in blog), blog  # on smaller tensors
  eager = mm.compile_keras_model(mm.build_keras_cnn(), "eager")
  assert fingerprint.keras_step(eager, batch) is None  # op by op: no one program


def test_what_only_one_fingerprint_records_is_a_change():
  base = {"kind": "tf-graph", "ops": {"AddV2": 1}, "hlo_ops": {"fusion": 3}}
  without_xla = {"kind": "tf-graph", "ops": {"AddV2": 1}}  # keras-xla's step, XLA switched off: no HLO to count
  assert fingerprint.diff(base, without_xla) == ["hlo_ops: recorded before, not now"]
  assert fingerprint.diff(without_xla, base) == ["hlo_ops: recorded now, not before"]
  assert fingerprint.diff(base, {**base, "hlo_ops": {"fusion": 4}}) == ["hlo_ops: fusion 3 -> 4"]


def test_a_program_made_later_a_made_fingerprint_and_none():
  made = _jax(lambda x: x @ x)
  assert fingerprint.of(fingerprint.Later(lambda: jax.jit(lambda x: x @ x).lower(X).compile())) == made
  assert fingerprint.of(made) is made  # a worker's, sent back
  assert fingerprint.of(fingerprint.Later(lambda: None)) is None


def test_something_else_is_refused():
  with pytest.raises(TypeError, match="pass jitted.lower"):
    fingerprint.of(jax.jit(lambda x: x))


BENCHMARK = """
import os
import jax
import numpy as np
import pytest
import mnist_models as mm
from mnist_models.bench import Workload

@pytest.mark.benchmark(group="train_step")
def test_program(timed):
  batch = mm.one_batch(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32))
  extra = float(os.environ["EXTRA"])  # a constant of the program: 0 adds nothing, XLA drops it
  step, x, losses = jax.jit(lambda x: x @ x + extra), np.ones((64, 64), np.float32), iter(np.linspace(2, 1, 10_000))

  def call():
    step(x).block_until_ready()
    return next(losses)
  timed(call, workload=Workload.train(batch), framework="jax", variant="jax-jit", rates=False, rounds=8,
        program=step.lower(x).compile())
"""
ARGS = (*TIMED, "--verdict-threshold=0.9")  # a wide threshold: this is about programs, not timings


def test_a_changed_program_fails_against_a_baseline_of_the_same_machine_and_versions(pytester, monkeypatch):
  pytester.makepyfile(test_program=BENCHMARK)
  monkeypatch.setenv("EXTRA", "0")
  pytester.runpytest_inprocess(*ARGS[:-1], "--benchmark-json=base.json").assert_outcomes(passed=1)
  assert json.loads((pytester.path / "base.json").read_text())["benchmarks"][0]["extra_info"]["fingerprint"]["ops"]
  same = pytester.runpytest_inprocess(*ARGS, "--verdict-baseline=base.json")
  same.assert_outcomes(passed=1)
  same.stdout.fnmatch_lines(["*fingerprints: 1 compiled programs compared with the baseline's, 0 changed*"])
  monkeypatch.setenv("EXTRA", "1")
  changed = pytester.runpytest_inprocess(*ARGS, "--verdict-baseline=base.json", "--benchmark-json=changed.json")
  changed.assert_outcomes(failed=1)
  saved = json.loads((pytester.path / "changed.json").read_text())["benchmarks"][0]["extra_info"]
  assert {"verdict", "fingerprint", "paired"} <= saved.keys()  # a failed check loses nothing of the run
  changed.stdout.fnmatch_lines(
    [
      "*train_step/jax-jit/b2: the compiled program changed (same machine and versions as the baseline): *flops +*",
      "*REGRESSIONS: *train_step/jax-jit/b2 (program changed)*",
    ]
  )  # a timing verdict may come first
