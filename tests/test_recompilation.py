"""The recompilation guard: each scenario's JAX compiles and Keras traces equal the stored counts."""

import functools
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from inner_runs import PLUGIN

import mnist_models as mm
from mnist_models import _compat
from mnist_models.bench import runs
from mnist_models.bench.compile_counts import compare_counts

BATCH = 64
N_TRAIN, N_EVAL = 300, 100  # 300 = 4 x 64 + 44: the last batch is partial


def _entry(function: str, shapes: str, counts: mm.CompileCounts) -> dict:
  return {
    "function": function,
    "shapes": shapes,
    "compiles": counts.compiles,
    "traces": counts.traces,
    "by_function": dict(sorted(counts.compiled.items())),
  }


@pytest.fixture(scope="module")
def data(bundled):
  train = mm.device_batches(mm.make_batches(bundled.train_images[:N_TRAIN], bundled.train_labels[:N_TRAIN], BATCH))
  test = mm.device_batches(mm.make_batches(bundled.test_images[:N_EVAL], bundled.test_labels[:N_EVAL], BATCH))
  return train, test


def test_two_epochs_with_a_partial_batch_compile_each_step_once(cold_jax, data, check_counts):
  train, test = data
  state = mm.create_train_state(rng=jax.random.key(0))
  with mm.count_compiles() as counts:
    for _ in range(2):
      state, _ = mm.train_epoch(state, train)
      mm.evaluate(state, test)
  assert counts.compiled == counts.traced == {"train_step": 1, "eval_step": 1}, counts.report()
  check_counts(
    "jax_two_epochs_partial_batch",
    _entry("train_step, eval_step", f"batch {BATCH}; {N_TRAIN} train, {N_EVAL} eval examples", counts),
    counts.report(),
  )


def test_new_params_learning_rate_and_epoch_do_not_recompile(cold_jax, data, check_counts):
  train, _ = data
  mm.train_epoch(mm.create_train_state(rng=jax.random.key(0)), train[:1])  # warm-up: the one compile
  fresh = mm.set_learning_rate(mm.create_train_state(rng=jax.random.key(1)), 3e-4)
  with mm.count_compiles() as counts:
    state, _ = mm.train_epoch(fresh, train)
    state, _ = mm.train_epoch(mm.set_learning_rate(state, 1e-4), train)
  assert counts.compiles == counts.traces == 0, counts.report()
  check_counts(
    "jax_new_params_lr_epoch", _entry("train_step", f"batch {BATCH}, after warm-up", counts), counts.report()
  )


def test_a_new_batch_size_compiles_exactly_once_more(cold_jax, bundled, data, check_counts):
  train, _ = data
  state, _ = mm.train_epoch(mm.create_train_state(rng=jax.random.key(0)), train[:1])
  other = mm.device_batches(mm.make_batches(bundled.train_images[:N_TRAIN], bundled.train_labels[:N_TRAIN], 128))
  with mm.count_compiles() as counts:
    state, _ = mm.train_epoch(state, other)
    state, _ = mm.train_epoch(state, train)
  assert counts.compiled == counts.traced == {"train_step": 1}, counts.report()
  check_counts(
    "jax_second_batch_size", _entry("train_step", "batch 64 warmed, then 128 and 64 again", counts), counts.report()
  )


def _blog_loss_fn(params, images, labels_onehot):
  """The seed post's loss: its apply, then log-softmax again, mean over a one-hot batch."""
  logits = mm.CNN().apply({"params": params}, images)
  logprobs = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
  return -jnp.mean(jnp.sum(logprobs * labels_onehot, axis=-1))


def _blog_training(state, images, labels, val_images, val_labels):
  """The seed post's loop: warm-up on a batch of 1, batches of 64 with a partial last, un-jitted validation."""
  jit_step = jax.jit(mm.train_step)
  warm = mm.Batches(jnp.ones((1, 28, 28, 1)), jnp.zeros((1,), jnp.int32), jnp.ones((1,)))
  jit_step(state, warm)  # "pre-compile" on the wrong shape
  for i in range(0, len(images), BATCH):
    state, _ = jit_step(
      state,
      mm.Batches(
        jnp.array(images[i : i + BATCH]), jnp.array(labels[i : i + BATCH]), jnp.ones(len(images[i : i + BATCH]))
      ),
    )
  for i in range(0, len(val_images), BATCH):
    _blog_loss_fn(state.params, jnp.array(val_images[i : i + BATCH]), jax.nn.one_hot(val_labels[i : i + BATCH], 10))
  return state


def test_the_blogs_pattern_is_caught(cold_jax, bundled, check_counts):
  state = mm.create_train_state(rng=jax.random.key(0))
  with mm.count_compiles() as counts:
    _blog_training(
      state,
      bundled.train_images[:200],
      bundled.train_labels[:200],
      bundled.test_images[:100],
      bundled.test_labels[:100],
    )
  assert counts.compiled["train_step"] == 3, counts.report()  # batch 1, batch 64, the partial batch of 8
  assert counts.compiles > 3, counts.report()  # plus every op of the un-jitted validation loss
  assert compare_counts("blog", {"compiles": 1, "traces": 1}, _entry("", "", counts), "cmd").startswith(
    "recompilation regression"
  )
  check_counts(
    "jax_blog_pattern",
    _entry(
      "train_step, un-jitted validation loss",
      "warm-up batch 1; 200 train in 64s (last 8); 100 val in 64s (last 36)",
      counts,
    ),
    counts.report(),
  )


def test_the_budget_marker_fails_with_the_reason(pytester):
  pytester.makepyfile("""
      import jax, numpy as np, pytest

      @pytest.mark.max_compiles(1)
      def test_two_shapes():
        f = jax.jit(lambda x: x * 2)
        f(np.ones(3)); f(np.ones(4))
  """)
  result = pytester.runpytest_inprocess(*PLUGIN)
  result.assert_outcomes(failed=1)
  result.stdout.fnmatch_lines(
    ["*compile budget exceeded: 2 > 1*", "*{'<lambda>': 2}*", "*TRACING CACHE MISS*", "* at x, *f32[*"]
  )
  # jax's own reason, in the failure (worded "now f32[4] and before f32[3]" by today's jax, "seen f32[3], but now
  # given f32[4]" by jax 0.4.3x)
  assert re.search(r"now f32\[4\] and before f32\[3\]|seen f32\[3\], but now given f32\[4\]", result.stdout.str())


@pytest.mark.max_compiles(0)
def test_the_budget_marker_passes_within_budget():
  assert mm.NUM_PARAMS == 824_458  # the test body compiles nothing


def _keras_model(mode):
  return mm.compile_keras_model(mm.build_keras_cnn(), mode)


@pytest.mark.parametrize("mode", list(mm.KERAS_MODES))
def test_keras_train_on_batch_traces_only_on_the_first_call(bundled, mode, check_counts):
  model, batch = (
    _keras_model(mode),
    mm.keras_batch(mm.one_batch(bundled.train_images[:BATCH], bundled.train_labels[:BATCH])),
  )
  with mm.count_keras_traces(model) as first:
    mm.keras_train_step(model, batch)
    during = first.train_step  # readable inside the block too
  with mm.count_keras_traces(model) as later, mm.count_compiles() as graphs:
    for _ in range(3):
      mm.keras_train_step(model, batch)
  # Once in graph and XLA mode: compile_keras_model created the optimizer's and metrics' variables (without
  # them, the first trace creates them and tf.function retraces: build=False, the compile benchmark's case).
  assert later.train_step == 0, graphs.report()
  assert first.train_step == during == (0 if mode == "eager" else 1)
  # What else the later calls traced is stored, not assumed: none on today's pins, while Keras 3.3 (the oldest
  # pins) retraces the function around the step on every call (tensorflow#67033).
  check_counts(
    f"keras_train_on_batch_{mode}",
    {
      "function": "train_step",
      "shapes": f"4 batches of {BATCH}",
      "traces": first.train_step + later.train_step,
      "later_calls_traced_tf_graphs": int(graphs.tf_traced_any),
      "later_tf_graphs_alive": sum(graphs.tf_traced.values()),
    },
    graphs.report(),
  )


@pytest.mark.parametrize("mode", ["graph", "xla"])
def test_keras_fit_two_epochs_with_a_partial_batch(bundled, mode, check_counts):
  model = _keras_model(mode)
  batches = mm.make_batches(bundled.train_images[:N_TRAIN], bundled.train_labels[:N_TRAIN], BATCH)
  with mm.count_keras_traces(model) as traces:
    for _ in range(2):
      mm.keras_train_epoch(model, batches)
  assert 1 <= traces.train_step <= 2  # Keras retraces once for the short last batch, at most
  check_counts(
    f"keras_fit_two_epochs_{mode}",
    {"function": "train_step", "shapes": f"batch {BATCH}; {N_TRAIN} examples", "traces": traces.train_step},
  )


@pytest.mark.parametrize("framework", ["jax", "keras"])
def test_data_parallel_steps_compile_once(bundled, eight_devices, need_devices, framework, check_counts):
  """8 simulated devices, a global batch of 60 (padded to 64): one program or trace for every step."""
  need_devices(framework, 8)
  factory = {"jax": runs.jax_run, "keras": runs.keras_run}[framework]
  batch = mm.one_batch(bundled.train_images[:60], bundled.train_labels[:60])
  eight_devices.call(jax.clear_caches)  # cold, whatever ran in that process before
  eight_devices.call(runs.make_run, factory, batch, num_devices=8)
  eight_devices.call(runs.steps, 1)
  first = eight_devices.call(runs.counts)
  eight_devices.call(runs.steps, 3)
  counts = eight_devices.call(runs.counts)
  assert counts == first and counts["traces"] == 1, (first, counts)  # nothing new after the first step
  assert counts.get("tf_graphs", 0) > 0 if framework == "keras" else counts["compiles"] == 1, counts
  for tf_count in ("tf_graphs", "tf_tracing_us"):  # how many graphs one trace makes, and its time, are TF's business
    counts.pop(tf_count, None)
  check_counts(
    f"{framework}_data_parallel_8_devices",
    {"function": "data-parallel train step", "shapes": "global batch 60 padded to 64; 4 steps", **counts},
  )


def test_count_compiles_nests_and_unregisters():
  f = jax.jit(lambda x: x + 1)
  before = len(jax._src.monitoring.get_event_duration_listeners())
  with mm.count_compiles() as outer:
    f(np.ones(2))
    with mm.count_compiles() as inner:
      f(np.ones(3))
  f(np.ones(4))
  assert (outer.compiled["<lambda>"], inner.compiled["<lambda>"]) == (2, 1)
  assert len(jax._src.monitoring.get_event_duration_listeners()) == before


def test_compare_counts_messages():
  cmd = "UPDATE"
  assert compare_counts("s", {"compiles": 2, "traces": 2}, {"compiles": 2, "traces": 2}, cmd) is None
  assert "regression" in compare_counts("s", {"compiles": 1, "traces": 1}, {"compiles": 2, "traces": 2}, cmd)
  assert "improvement; record it with: UPDATE" in compare_counts(
    "s", {"compiles": 2, "traces": 2}, {"compiles": 1, "traces": 1}, cmd
  )
  assert "no stored counts" in compare_counts("s", None, {"compiles": 1, "traces": 1}, cmd)
  assert "malformed" in compare_counts("s", {"compiles": "2"}, {"compiles": 1, "traces": 1}, cmd)


COUNTED = """
import os

def test_a(check_counts):
  check_counts("a", {"compiles": int(os.environ["COMPILES"]), "traces": 1, "by_function": {"f": 1}})

def test_b(check_counts):
  check_counts("b", {"compiles": 1, "traces": 1})
"""


@pytest.fixture
def stored_counts(pytester):
  """An inner suite whose stored counts hold a, b, one scenario whose test is gone and one of a test elsewhere."""
  pytester.makepyfile(test_counted=COUNTED)
  path = pytester.path / "tests" / "compile_counts.json"
  path.parent.mkdir()
  entries = {
    "a": ("test_counted.py::test_a", {"f": 1}),
    "b": ("test_counted.py::test_b", None),
    "gone": ("test_counted.py::test_removed", None),
    "elsewhere": ("test_other.py::test_x", None),
  }
  path.write_text(
    json.dumps(
      {
        name: {"compiles": 1, "traces": 1, "test": test, **({"by_function": by} if by else {})}
        for name, (test, by) in entries.items()
      }
    )
  )
  return path


@pytest.mark.parametrize("compiles, outcome", [(1, "passed"), (2, "failed"), (0, "failed")])
def test_stored_counts_fail_when_they_change(pytester, monkeypatch, stored_counts, compiles, outcome):
  monkeypatch.setenv("COMPILES", str(compiles))
  result = pytester.runpytest_inprocess(*PLUGIN)
  result.assert_outcomes(**{outcome: 1, "passed": 2} if outcome == "passed" else {outcome: 1, "passed": 1})
  if compiles == 2:
    result.stdout.fnmatch_lines(["*recompilation regression in 'a': compiles 1 -> 2 (more than stored)*"])
    result.stdout.fnmatch_lines(
      ["checks: *compile counts: 2 scenarios checked against tests/compile_counts.json, 1 differ (a)"]
    )
  if compiles == 1:
    result.stdout.fnmatch_lines(
      ["checks: *compile counts: 2 scenarios checked against *compile_counts.json, all as stored"]
    )
  if compiles == 0:
    result.stdout.fnmatch_lines(["*'a' now compiles less than stored (compiles 1 -> 0): an improvement; record it*"])


def test_another_pins_counts_are_checked_from_their_own_file(pytester, monkeypatch, stored_counts):
  """--compile-counts names the file (the oldest pins' in tox -e oldest); a failure says how to re-record that file."""
  other = stored_counts.with_name("compile_counts.other.json")
  other.write_text(stored_counts.read_text().replace('"compiles": 1', '"compiles": 2'))
  monkeypatch.setenv("COMPILES", "2")
  result = pytester.runpytest_inprocess(*PLUGIN, "-k", "test_a", "--compile-counts=tests/compile_counts.other.json")
  result.assert_outcomes(passed=1)  # as stored in the other file, though not in the default one
  monkeypatch.setenv("COMPILES", "1")
  result = pytester.runpytest_inprocess(*PLUGIN, "-k", "test_a", "--compile-counts=tests/compile_counts.other.json")
  result.assert_outcomes(failed=1)
  result.stdout.fnmatch_lines(
    ["*compiles 2 -> 1*record it with: *--update-compile-counts --compile-counts=tests/compile_counts.other.json*"]
  )


def test_a_by_function_change_fails_even_when_the_total_is_the_same(pytester, monkeypatch, stored_counts):
  stored = json.loads(stored_counts.read_text())
  stored["a"]["by_function"] = {"g": 1}
  stored_counts.write_text(json.dumps(stored))
  monkeypatch.setenv("COMPILES", "1")
  result = pytester.runpytest_inprocess(*PLUGIN, "-k", "test_a")
  result.assert_outcomes(failed=1)
  result.stdout.fnmatch_lines(["*recompilation regression in 'a': by_function.f 0 -> 1, by_function.g 1 -> 0*"])


def test_updating_the_counts_prints_what_changed_and_drops_what_is_gone(pytester, monkeypatch, stored_counts):
  monkeypatch.setenv("COMPILES", "2")
  result = pytester.runpytest_inprocess(*PLUGIN, "--update-compile-counts")
  result.assert_outcomes(passed=2)
  result.stdout.fnmatch_lines(
    [
      "*--update-compile-counts: tests/compile_counts.json*",
      "changed a: compiles 1 -> 2",
      "deleted gone (its test no longer records it)",
      "kept    1 scenario whose test did not run: elsewhere",
    ]
  )
  assert sorted(json.loads(stored_counts.read_text())) == ["a", "b", "elsewhere"]
  assert json.loads(stored_counts.read_text())["a"]["compiles"] == 2
  result = pytester.runpytest_inprocess(*PLUGIN, "-k", "test_b")
  result.assert_outcomes(passed=1)  # now stored as measured


def _nnx_epoch(form, model, optimizer, batches):
  if form == "nnx-jit":
    return mm.nnx_train_steps(model, optimizer, batches)
  graphdef, state = nnx.split((model, optimizer))
  state, _ = mm.train_steps(state, batches, functools.partial(mm.jit_nnx_split_train_step, graphdef))
  nnx.update((model, optimizer), state)


@pytest.mark.parametrize("form", ["nnx-jit", "nnx-split"])
def test_nnx_compiles_once_per_batch_shape(cold_jax, bundled, data, form, check_counts):
  """New weights, a new learning rate and new epochs reuse the program; a second batch size compiles once more."""
  train, _ = data
  _nnx_epoch(form, *mm.create_nnx_model(seed=0), train[:1])  # warm-up: the one compile at batch 64
  with mm.count_compiles() as same:
    model, optimizer = mm.create_nnx_model(seed=1)
    for learning_rate in (3e-4, 1e-4):
      _nnx_epoch(form, model, mm.set_nnx_hyperparams(optimizer, learning_rate=learning_rate), train)
  other = mm.device_batches(mm.make_batches(bundled.train_images[:N_TRAIN], bundled.train_labels[:N_TRAIN], 128))
  with mm.count_compiles() as more:
    _nnx_epoch(form, model, optimizer, other)
    _nnx_epoch(form, model, optimizer, train)
  assert same.compiles == same.traces == 0, same.report()
  assert more.compiles == more.traces == 1, more.report()
  check_counts(
    f"{form.replace('-', '_')}_new_weights_lr_epochs_then_batch_128",
    _entry(
      {"nnx-jit": "nnx_train_step", "nnx-split": "nnx_split_train_step"}[form],
      "batch 64 warmed; new weights, lr, 2 epochs; then 128 and 64",
      more,
    ),
  )


def test_an_untimed_session_loads_a_program_compiled_again_and_still_counts_it(pytestconfig):
  """--benchmark-disable sessions share compiled programs through JAX's persistent cache (the plugin's
  settings.share_compiled_programs): a second, separately jitted copy of a function loads from it, and the guard
  still counts that load as the compile it stands for."""
  if not pytestconfig.getoption("benchmark_disable"):
    pytest.skip("only untimed sessions (--benchmark-disable) share compiled programs")
  if not _compat.PERSISTENT_CACHE_IS_SAFE:
    pytest.skip(f"jax {jax.__version__}'s persistent cache is not used: its CPU programs can compute NaN (_compat)")
  hits = []
  listener = lambda event, **_: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None  # noqa: E731
  with _compat.events(listener):
    first, again = (lambda x: jnp.sin(x) * 3 - 1), (lambda x: jnp.sin(x) * 3 - 1)  # same program, two functions
    with mm.count_compiles() as counts:
      for f in (first, again):
        jax.jit(f)(np.arange(5.0, dtype=np.float32)).block_until_ready()
  assert counts.compiles == 2 and len(hits) == 1, (counts.report(), hits)


def test_a_process_that_holds_a_run_closes_its_compile_counter_before_it_exits():
  # a held run's counter closed only as the interpreter clears its modules fails there ('Exception ignored in:
  # <generator object count_compiles ...>', as the test run printed it): the worker closes it at exit
  script = (
    "import numpy as np, mnist_models as mm\n"
    "from mnist_models.bench import runs\n"
    "runs.make_run(runs.jax_run, mm.one_batch(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32)))\n"
    "runs.step()\n"
  )
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "Exception ignored" not in done.stderr, done.stderr[-2000:]
