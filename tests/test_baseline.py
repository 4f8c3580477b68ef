"""Baselines: clear errors for bad files, and the ratio gate's arithmetic."""

import json

import pytest

from mnist_models.bench import baseline

REFERENCE = {"train_step": "jax-jit", "epoch": "jax-loop", "compile": "jax-jit"}


def _row(group, variant, t, batch=64):
  return {"group": group, "variant": variant, "batch_size": batch, "min": t, "median": 1.1 * t}


ROWS = [_row("train_step", "jax-jit", 0.040), _row("train_step", "keras-graph", 0.020),
        _row("train_step", "jax-jit", 0.080, batch=128), _row("train_step", "keras-graph", 0.060, batch=128),
        _row("epoch", "jax-loop", 0.6), _row("epoch", "keras-fit-graph", 0.9),
        _row("compile", "jax-jit", 1.0), _row("compile", "keras-graph", 2.0)]


def test_ratios_are_per_group_and_batch_size_and_skip_compile():
  assert baseline.ratios(ROWS, REFERENCE) == pytest.approx(
      {"train_step/keras-graph/b64": 0.5, "train_step/keras-graph/b128": 0.75, "epoch/keras-fit-graph/b64": 1.5})


def test_same_ratios_on_a_machine_twice_as_slow_pass():
  slower = [{**r, "min": 2 * r["min"]} for r in ROWS]
  assert baseline.compare_ratios(baseline.ratios(ROWS, REFERENCE), baseline.ratios(slower, REFERENCE), 0.5) == []


@pytest.mark.parametrize("factor, passes", [(1.49, True), (1 / 1.49, True), (1.51, False), (1 / 1.51, False)])
def test_ratio_tolerance_is_a_factor_either_way(factor, passes):
  stored = {"train_step/keras-graph/b64": 0.5}
  problems = baseline.compare_ratios(stored, {"train_step/keras-graph/b64": 0.5 * factor}, 0.5)
  assert (problems == []) is passes


def test_a_slower_jax_step_is_named():
  (problem,) = baseline.compare_ratios({"train_step/keras-graph/b64": 0.5}, {"train_step/keras-graph/b64": 0.25}, 0.5)
  assert "ratio 0.500 -> 0.250" in problem and "JAX reference got slower relative to keras-graph" in problem


def test_a_different_benchmark_set_is_reported():
  (problem,) = baseline.compare_ratios({"a/b/b64": 1.0}, {"c/d/b64": 1.0}, 0.5)
  assert "missing now: ['a/b/b64'], new: ['c/d/b64']" in problem and baseline.SAVE_COMMAND in problem




@pytest.mark.parametrize("content, match", [
    (None, "no baseline at"),
    ('{"benchmarks": [', "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
    ('{"benchmarks": []}', "not a baseline saved by this suite"),
    ('[1, 2]', "not a baseline saved by this suite"),
    (json.dumps({"benchmarks": [], "comparison": {"rows": [{"group": "x"}]}}), "malformed comparison row"),
], ids=["missing", "truncated", "binary", "no-ratios", "not-an-object", "bad-row"])
def test_bad_baselines_are_clear_errors(tmp_path, content, match):
  path = tmp_path / "0001baseline.json"
  if content is not None:
    path.write_text(content, encoding="latin-1")
  before = path.read_bytes() if content is not None else None
  with pytest.raises(baseline.BaselineError, match=match) as info:
    baseline.load_baseline(path)
  assert "pytest --benchmark-only --benchmark-save=baseline" in str(info.value)
  assert (path.read_bytes() if content is not None else None) == before  # never rewritten


def test_a_good_baseline_loads(tmp_path):
  doc = {"benchmarks": [], "comparison": {"rows": ROWS}}
  (tmp_path / "b.json").write_text(json.dumps(doc))
  assert baseline.load_baseline(tmp_path / "b.json") == doc

