"""Every guard fails when it should: inner pytest runs (pytester, in this process) break things on purpose.

Each mutant sits beside the same benchmark unbroken, which must pass: a guard that always failed
would be as useless as one that never does.
"""

import json

import pytest
from inner_runs import PLUGIN

import mnist_models as mm
from mnist_models import _compile_count
from mnist_models.bench import verdict
from mnist_models.bench.plugin import INCONCLUSIVE

ARGS = (*PLUGIN, "--bench-pin=off")

GUARDED = """
import jax
import numpy as np
import pytest
import tensorflow as tf

import mnist_models as mm
from mnist_models.bench import Workload, runs
from mnist_models.bench.timed import keras_guard

broken = pytest.mark.parametrize("broken", [False, True], ids=["intact", "broken"])
pytestmark = pytest.mark.benchmark(group="train_step")


def _losses():
  return iter(np.linspace(2.0, 1.0, 10_000))


@broken
def test_jax_step(timed, broken):
  step, x, losses = jax.jit(lambda x: x @ x), np.ones((64, 64), np.float32), _losses()

  def call():
    if broken:
      jax.clear_caches()  # the step compiles again every call
    step(x).block_until_ready()
    return next(losses)
  timed(call, workload=Workload.train(mm.one_batch(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32))),
        framework="jax", variant="jax-jit", rates=False, rounds=2)


@broken
def test_keras_step(timed, bundled, broken):
  model = mm.compile_keras_model(mm.build_keras_cnn(), "graph")
  batch = mm.keras_batch(mm.one_batch(bundled.train_images[:16], bundled.train_labels[:16]))

  def call():
    if broken:
      model.train_function = None  # Keras makes, and traces, a new train function every call
    return mm.keras_train_step(model, batch)
  timed(call, workload=Workload.train(batch), framework="keras", variant="keras-graph", rates=False, rounds=2,
        **keras_guard(model, "graph", "train"))


class InProcess:
  \"\"\"Stands in for a worker process: the same calls, made here.\"\"\"

  def call(self, fn, *args, **kwargs):
    return fn(*args, **kwargs)


def _breaking(factory, compile_something):
  def make(batch, **kwargs):
    run = factory(batch, **kwargs)

    def step():
      compile_something()
      return run.step()
    return run._replace(step=step)
  return make


def _trace_a_new_tf_function():
  return tf.function(lambda: tf.constant(1.0), autograph=False)()


@broken
@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_worker_step(timed_remote, framework, broken):
  factory, kwargs, fresh = {
      "jax": (runs.jax_run, {}, lambda: jax.jit(lambda x: x + 1)(1.0)),
      "keras": (runs.keras_run, {"num_devices": None}, _trace_a_new_tf_function),
  }[framework]
  timed_remote(InProcess(), _breaking(factory, fresh) if broken else factory, variant=framework, **kwargs)
"""


def _failures(reprec) -> dict[str, str]:
  """Failed test name -> its failure text, from an inline run's records."""
  return {report.nodeid.split("::")[-1]: str(report.longrepr) for report in reprec.listoutcomes()[2]}


def test_a_timed_round_that_compiles_or_traces_fails_jax_keras_and_workers(pytester, monkeypatch):
  monkeypatch.setattr(verdict, "TARGET_S", 0.2)  # a few pairs each: what is checked is the guards, not the timing
  pytester.makepyfile(test_guarded=GUARDED)
  reprec = pytester.inline_run(*ARGS, "--benchmark-only")
  # Where Keras traces the function around its step on every call (Keras 3.3), that tracing is each call's cost:
  # a worker's new tf.function every call looks the same, and only the step's own traces are guarded.
  retraces = mm.keras_on_batch_retracing("graph") is not None
  failures = _failures(reprec)
  assert sorted(failures) == [
    "test_jax_step[broken]",
    "test_keras_step[broken]",
    "test_worker_step[jax-broken]",
    *(["test_worker_step[keras-broken]"] if not retraces else []),
  ]
  reprec.assertoutcome(passed=8 - len(failures), failed=len(failures))  # the intact four pass
  assert failures["test_jax_step[broken]"].startswith("jax-jit: a timed round compiled or traced")
  assert "compile(s): {'<lambda>': 2}" in failures["test_jax_step[broken]"]  # what compiled, named, and why:
  assert "never seen function" in failures["test_jax_step[broken]"]
  assert failures["test_keras_step[broken]"].startswith("keras-graph: a timed round compiled or traced")
  if retraces:  # what moved: the step's own traces (a new train function traces it again)
    assert "{'train_step_traces': " in failures["test_keras_step[broken]"]
  else:
    assert "TF traced graphs for" in failures["test_keras_step[broken]"]
    assert "one_step_on_data" in failures["test_keras_step[broken]"]  # Keras' train function, named
  for framework in ("jax", "keras")[: 1 if retraces else 2]:
    assert failures[f"test_worker_step[{framework}-broken]"].startswith(
      f"{framework}: a timed round compiled or traced: {{'worker': {{"
    )


RETRACING = """
import numpy as np
import pytest
import mnist_models as mm
from mnist_models import _keras_train
from mnist_models.bench import Workload
from mnist_models.bench.timed import keras_guard


@pytest.mark.benchmark(group="train_step")
def test_keras_step(timed, bundled):
  model = mm.compile_keras_model(mm.build_keras_cnn(), "graph")
  batch = mm.keras_batch(mm.one_batch(bundled.train_images[:16], bundled.train_labels[:16]))
  timed(lambda: _keras_train.keras_train_step(model, batch), workload=Workload.train(batch), framework="keras",
        variant="keras-graph", rates=False, rounds=2, **keras_guard(model, "graph", "train"))
"""


def test_a_keras_that_traces_again_on_every_call_fails_unless_that_is_its_known_behaviour(pytester, monkeypatch):
  """tensorflow#67033's kind, on today's pins: the library's own step retraces on every call (so that the run-time
  probe, mm.keras_on_batch_retracing, measures it too). Only a Keras/TF pair in runs.KNOWN_RETRACING may."""
  from mnist_models import _keras_train  # noqa: PLC0415
  from mnist_models.bench import runs  # noqa: PLC0415

  monkeypatch.setattr(verdict, "TARGET_S", 0.2)
  real = _keras_train.keras_train_step

  def retracing(model, batch):
    model.train_function = None  # a new train function, traced again, every call
    return real(model, batch)

  monkeypatch.setattr(_keras_train, "keras_train_step", retracing)
  _keras_train.keras_on_batch_retracing.cache_clear()  # measured again, with the retracing step
  pytester.makepyfile(test_retracing=RETRACING)
  try:
    probed = mm.keras_on_batch_retracing("graph")
    assert probed is not None
    failed = pytester.inline_run(*ARGS, "--benchmark-only")
    (report,) = failed.listoutcomes()[2]
    assert str(report.longrepr).startswith("keras-graph: a timed round compiled or traced")
    monkeypatch.setitem(runs.KNOWN_RETRACING, runs._keras_and_tf(), "as if it were this Keras' own design")
    known = pytester.inline_run(*ARGS, "--benchmark-only", "--benchmark-json=known.json")
    known.assertoutcome(passed=1)
    info = json.loads((pytester.path / "known.json").read_text())["benchmarks"][0]["extra_info"]
    assert info["tf_retraces_every_call"] == probed
  finally:
    _keras_train.keras_on_batch_retracing.cache_clear()


@pytest.mark.parametrize(
  "blind, match",
  [
    (
      "jax",
      "*compile guard is blind*a fresh jax.jit compile was counted 0 times, not once: has jax * renamed the event*",
    ),
    ("tf", "*compile guard is blind*a fresh tf.function trace took no time in TF*: was it renamed or moved?*"),
  ],
)
def test_a_blind_compile_counter_stops_the_run(pytester, monkeypatch, blind, match):
  """The canary at the start of every run: as if an upgrade had renamed jax's event, or moved TF's metric."""
  if blind == "jax":
    monkeypatch.setattr(_compile_count, "BACKEND_COMPILE_EVENT", "/jax/renamed/backend_compile_duration")
  else:
    monkeypatch.setattr(_compile_count, "_tf_state", lambda: (0, frozenset()))
  pytester.makepyfile(test_plain="def test_plain():\n  pass\n")
  result = pytester.runpytest_inprocess(*ARGS)
  assert result.ret == pytest.ExitCode.INTERNAL_ERROR
  result.stderr.fnmatch_lines([match])


def _baseline(samples=(0.1, 0.2), rows=1, t=0.04):
  bench = {
    "group": "train_step",
    "extra_info": {"variant": "jax-jit", "batch_size": 64, "paired": {"log_ratios": list(samples)}},
  }
  return {
    "machine_info": {},
    "benchmarks": [bench] * rows,
    "comparison": {"rows": [{"group": "train_step", "variant": "jax-jit", "batch_size": 64, "min": t, "median": t}]},
  }


@pytest.mark.parametrize(
  "content, match",
  [
    (None, "*no baseline at *bad.json; make one on this machine with: pytest --benchmark-only --benchmark-save=*"),
    (json.dumps(_baseline())[:40], "*bad.json is not valid JSON (truncated or corrupt?)*"),
    (json.dumps({"benchmarks": []}), "*bad.json is not a baseline saved by this suite*"),
    (json.dumps(_baseline(samples=(0.1, float("nan")))), "*train_step/jax-jit/b64 has malformed paired samples*"),
    (json.dumps(_baseline(t=0)), "*malformed comparison row*positive min and median*"),
    (json.dumps(_baseline(t="fast")), "*malformed comparison row*positive min and median*"),
    (json.dumps(_baseline(rows=2)), "*two benchmarks are both train_step/jax-jit/b64*"),
  ],
  ids=["missing", "truncated", "foreign", "nan-sample", "zero-time", "string-time", "duplicate-rows"],
)
def test_a_bad_baseline_stops_the_run_before_anything_runs_and_is_left_as_it_was(pytester, content, match):
  pytester.makepyfile(test_plain="def test_plain():\n  raise AssertionError('must not run')\n")
  path = pytester.path / "bad.json"
  if content is not None:
    path.write_text(content)
  result = pytester.runpytest_inprocess(*ARGS, "--benchmark-only", f"--verdict-baseline={path}")
  assert result.ret == pytest.ExitCode.USAGE_ERROR
  result.stderr.fnmatch_lines([match])
  assert path.read_text() == content if content is not None else not path.exists()  # never written


def test_a_verdict_baseline_given_to_a_run_that_times_nothing_is_inconclusive_saying_so(pytester):
  pytester.makepyfile(test_plain="def test_plain():\n  pass\n")
  (pytester.path / "base.json").write_text(json.dumps(_baseline()))
  result = pytester.runpytest_inprocess(*ARGS, "--verdict-baseline=base.json")
  result.assert_outcomes(passed=1)
  assert result.ret == INCONCLUSIVE
  result.stdout.fnmatch_lines(["*NOTHING JUDGED: no benchmark of the baseline was timed in this run*"])
