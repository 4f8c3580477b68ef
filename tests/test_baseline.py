"""Baselines: clear errors for bad files, and the samples the verdicts read from them."""

import json
from pathlib import Path

import pytest

from mnist_models.bench import baseline


def _row(group, variant, t, batch=64):
  return {"group": group, "variant": variant, "batch_size": batch, "min": t, "median": 1.1 * t}


ROWS = [
  _row("train_step", "jax-jit", 0.040),
  _row("train_step", "keras-graph", 0.020),
  _row("train_step", "jax-jit", 0.080, batch=128),
  _row("train_step", "keras-graph", 0.060, batch=128),
  _row("epoch", "jax-loop", 0.6),
  _row("epoch", "keras-fit-graph", 0.9),
  _row("compile", "jax-jit", 1.0),
  _row("compile", "keras-graph", 2.0),
]


def _bench(group, variant, samples, batch=64):
  return {"group": group, "extra_info": {"variant": variant, "batch_size": batch, "paired": {"log_ratios": samples}}}


def test_paired_samples_are_keyed_by_group_variant_and_batch_gated_groups_only():
  doc = {
    "benchmarks": [
      _bench("train_step", "jax-jit", [0.1, 0.2]),
      _bench("train_step", "jax-jit", [0.3, 0.4], 128),
      _bench("compile", "jax-jit", [1.0, 2.0]),
      {"group": "epoch", "extra_info": {}},
    ]
  }
  assert baseline.paired_samples(doc) == {
    "train_step/jax-jit/b64": [[0.1, 0.2]],
    "train_step/jax-jit/b128": [[0.3, 0.4]],
  }


def test_a_broken_timing_is_never_pooled_and_a_sample_without_its_variant_is_a_clear_error():
  broken = _bench("train_step", "jax-jit", [9.0, 9.1])
  broken["extra_info"]["broken"] = True  # a timed round compiled: saved so, never judged against
  doc = {"benchmarks": [broken, _bench("train_step", "keras-graph", [0.1, 0.2])]}
  assert baseline.paired_samples(doc) == {"train_step/keras-graph/b64": [[0.1, 0.2]]}
  nameless = {"group": "train_step", "name": "test_x", "extra_info": {"paired": {"log_ratios": [0.1, 0.2]}}}
  with pytest.raises(baseline.BaselineError, match=r"test_x\) has paired samples but no variant"):
    baseline.paired_samples({"benchmarks": [nameless]})


def test_a_run_that_did_not_finish_cleanly_is_refused_as_a_baseline(tmp_path):
  doc = {"benchmarks": [], "comparison": {"rows": ROWS}, "session": {"exit_status": 2, "complete": False}}
  (tmp_path / "0001_baseline.json").write_text(json.dumps(doc))
  with pytest.raises(baseline.BaselineError, match="did not finish cleanly \\(exit 2: interrupted"):
    baseline.load_baseline(tmp_path / "0001_baseline.json")
  good, _ = _saved(tmp_path, "0002_baseline.json")
  with pytest.raises(baseline.BaselineError, match="0001_baseline.json was saved by a run that did not finish"):
    baseline.pooled_runs(good, json.loads(good.read_text()))  # a sibling too: never pooled in silence


def test_an_unreadable_baseline_is_a_clear_error(tmp_path, monkeypatch):
  (tmp_path / "b.json").write_text("{}")

  def unreadable(self, *args, **kwargs):
    raise PermissionError(13, "Permission denied")  # as a file without read permission gives (this runs as root)

  monkeypatch.setattr(Path, "read_text", unreadable)
  with pytest.raises(baseline.BaselineError, match="cannot read the baseline .*b.json: Permission denied"):
    baseline.load_baseline(tmp_path / "b.json")


def test_paired_samples_are_split_into_their_visits():
  bench = _bench("train_step", "jax-jit", [0.1, 0.2, 0.3, 0.4, 0.5])
  bench["extra_info"]["paired"]["visits"] = [3, 1, 1]
  assert baseline.paired_samples({"benchmarks": [bench]}) == {"train_step/jax-jit/b64": [[0.1, 0.2, 0.3], [0.4], [0.5]]}
  for bad in ([3, 1], [5, 0], "5", [2.5, 2.5]):
    bench["extra_info"]["paired"]["visits"] = bad
    with pytest.raises(baseline.BaselineError, match="malformed visits"):
      baseline.paired_samples({"benchmarks": [bench]})


@pytest.mark.parametrize(
  "samples, match",
  [
    ([0.1, float("nan")], "malformed paired samples"),
    ([0.1], "malformed paired samples"),
    ([0.1, "0.2"], "malformed paired samples"),
    ("0.1 0.2", "malformed paired samples"),
    ([0.1, True], "malformed paired samples"),
  ],
  ids=["nan", "one", "string", "not-a-list", "bool"],
)
def test_malformed_samples_are_clear_errors(samples, match):
  with pytest.raises(baseline.BaselineError, match=match) as info:
    baseline.paired_samples({"benchmarks": [_bench("train_step", "jax-jit", samples)]})
  assert "train_step/jax-jit/b64" in str(info.value) and baseline.SAVE_COMMAND in str(info.value)


def test_duplicate_rows_and_baselines_without_samples_are_refused():
  with pytest.raises(baseline.BaselineError, match="two benchmarks are both train_step/jax-jit/b64"):
    baseline.paired_samples({"benchmarks": [_bench("train_step", "jax-jit", [0.1, 0.2])] * 2})
  with pytest.raises(baseline.BaselineError, match="no paired timing samples"):
    baseline.paired_samples(
      {"benchmarks": [{"group": "train_step", "extra_info": {"variant": "jax-jit", "batch_size": 64}}]}
    )


@pytest.mark.parametrize(
  "content, match",
  [
    (None, "no baseline at"),
    ('{"benchmarks": [', "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
    ('{"benchmarks": []}', "not a baseline saved by this suite"),
    ("[1, 2]", "not a baseline saved by this suite"),
    (json.dumps({"benchmarks": [], "comparison": {"rows": [{"group": "x"}]}}), "malformed comparison row"),
    *[
      (json.dumps({"benchmarks": [], "comparison": {"rows": [{**ROWS[0], "min": t}]}}), "malformed comparison row")
      for t in (0, -1.0, "0.04", None, True, float("nan"), float("inf"))
    ],
  ],
  ids=[
    "missing",
    "truncated",
    "binary",
    "no-ratios",
    "not-an-object",
    "bad-row",
    "zero-time",
    "negative-time",
    "string-time",
    "null-time",
    "bool-time",
    "nan-time",
    "inf-time",
  ],
)
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


def _saved(folder, name, commit="abc", dirty=False, jax="0.10.2", cpu="AMD EPYC"):
  """A run saved as pytest-benchmark names it (NNNN_name.json), of `commit` on `cpu` with `jax`."""
  doc = {
    "commit_info": {"id": commit, "dirty": dirty},
    "comparison": {"rows": ROWS},
    "machine_info": {"versions": {"jax": jax}, "cpu": {"brand_raw": cpu}},
    "benchmarks": [_bench("train_step", "jax-jit", [0.1, 0.2])],
  }
  path = folder / name
  path.write_text(json.dumps(doc))
  return path, doc


def test_runs_saved_under_the_same_name_of_the_same_commit_and_machine_are_pooled(tmp_path):
  first, doc = _saved(tmp_path, "0001_baseline.json")
  _saved(tmp_path, "0002_baseline.json")
  _saved(tmp_path, "0004_baseline.json")
  for name, kwargs in [
    ("0003_baseline.json", {"commit": "def"}),
    ("0005_baseline.json", {"dirty": True}),
    ("0006_baseline.json", {"jax": "0.10.1"}),
    ("0007_baseline.json", {"cpu": "Intel Xeon"}),
    ("0008_probe.json", {}),
    ("baseline.json", {}),
  ]:
    _saved(tmp_path, name, **kwargs)  # another commit, a dirty tree, versions, machine, name: not the same baseline
  assert [p.name for p, _ in baseline.pooled_runs(first, doc)] == [
    "0001_baseline.json",
    "0002_baseline.json",
    "0004_baseline.json",
  ]
  assert [p.name for p, _ in baseline.pooled_runs(tmp_path / "baseline.json", doc)] == ["baseline.json"]
  (tmp_path / "0009_baseline.json").write_text('{"benchmarks": [')  # a truncated sibling is a clear error
  with pytest.raises(baseline.BaselineError, match="0009_baseline.json is not valid JSON"):
    baseline.pooled_runs(first, doc)
