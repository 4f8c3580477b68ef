"""Side by side: how a side is written, which rows a change cannot touch, B's visits judged against A's, and the
command end to end (two sides of this environment, one of them slowed; a side that cannot be installed)."""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mnist_models.bench import machine, verdict
from mnist_models.bench.upgrade import command, environments, judge, sides
from mnist_models.bench.upgrade.report import SAME_SIDES, Report
from mnist_models.bench.upgrade.sides import Side

JAX_ONLY = {"versions": {"jax": "0.4.33", "jaxlib": "0.4.33", "keras": "3.3.3"}}
BEFORE = {"versions": {"jax": "0.4.31", "jaxlib": "0.4.31", "keras": "3.3.3"}}


def test_a_side_is_pins_settings_a_revision_and_pytest_arguments():
  side = Side.parse("B", "jaxlib==0.4.33 jax==0.4.33 XLA_FLAGS='--xla_cpu_use_thunk_runtime=false' @HEAD -- -k jit")
  assert side.pins == ("jax==0.4.33", "jaxlib==0.4.33") and side.rev == "HEAD" and side.pytest_args == ("-k", "jit")
  assert side.settings == (("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=false"),) and side.builds
  assert not Side.parse("A", "TF_ENABLE_ONEDNN_OPTS=0").builds  # settings alone: this environment
  assert Side.parse("A", "").describe() == "this environment; this checkout"
  with pytest.raises(ValueError, match="'jax' is neither a pin"):
    Side.parse("B", "jax")
  with pytest.raises(ValueError, match="one revision at most"):
    Side.parse("B", "@v1 @v2")


@pytest.mark.parametrize(
  ("spec", "says"),
  [
    ("jax==", "'jax==' names no version: write it as jax==VERSION"),
    ("'jax==0.4.33\nflax==0.10.2'", "is not a pin pip can read"),  # one token with a newline in it
    ("jax[cuda]==0.4.33", "no extras, marker or URL"),
    ("jax==0.4.33 'XLA_FLAGS=--a", 'side B: "jax==0.4.33 \'XLA_FLAGS=--a" cannot be split into tokens'),
  ],
)
def test_a_side_that_pip_could_not_hold_to_its_pins_is_refused_naming_it(spec, says):
  with pytest.raises(ValueError, match=re.escape(says)):
    Side.parse("B", spec)


def test_the_readmes_upgrade_example_installs_a_flax_that_its_jax_can_import():
  """README's example, side by side from jax 0.4.31: flax 0.10.4 (the newest whose metadata accepts jax 0.4.31)
  imports jax.sharding.AbstractMesh, first in jax 0.4.32: side A is held below it (environments.KNOWN_CONSTRAINTS)."""
  readme = (Path(__file__).parents[1] / "README.md").read_text()
  line = next(x for x in readme.splitlines() if "mnist_models.bench.upgrade --a" in x)
  a, b = (Side.parse(n, shlex.split(line)[shlex.split(line).index(f"--{n.lower()}") + 1]) for n in "AB")
  assert environments.constraints(a) == ["jax==0.4.31", "jaxlib==0.4.31", "flax<0.10.4"]
  assert environments.constraints(b) == ["jax==0.4.33", "jaxlib==0.4.33"]  # jax 0.4.33 has it: no addition
  assert environments.constraints(Side.parse("A", "jax==0.4.31 flax==0.10.2")) == ["flax==0.10.2", "jax==0.4.31"]


def test_revisions_are_compared_as_commits_and_an_unknown_one_is_refused(tmp_path):
  root = tmp_path / "repo"
  subprocess.run(["git", "init", "-q", "-b", "trunk", str(root)], check=True)
  subprocess.run(["git", "-C", str(root), "commit", "-q", "--allow-empty", "-m", "x"], check=True, env=_git_env())
  assert Side.parse("A", "@HEAD").same_as(Side.parse("B", "@trunk"), root)  # two names of one commit
  assert not Side.parse("A", "@HEAD").same_as(Side.parse("B", "@trunk XLA_FLAGS=--foo"), root)
  with pytest.raises(sides.SideError, match="@nope names no commit"):
    sides.commit(root, "nope")


def test_a_revisions_options_are_the_ones_its_own_pytest_declares(tmp_path):
  (tmp_path / "conftest.py").write_text("def pytest_addoption(parser):\n  parser.addoption('--bench-pairs-scale')\n")
  place, rev = sides.Place(Path(sys.executable), tmp_path), Side.parse("B", "@HEAD")
  assert sides.has_option(rev, place, "--bench-pairs-scale")
  assert not sides.has_option(rev, place, "--bench-pairs")  # a prefix of a declared option is not one
  assert not sides.has_option(rev, place, "--bench-no-such-option")
  assert sides.has_option(Side("A"), place, "--bench-no-such-option")  # this checkout's suite: this one's options


def _git_env():
  return {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
  }


def test_the_visits_alternate_so_that_a_steady_drift_falls_on_both_sides():
  assert command.order(3) == [0, 1, 1, 0, 0, 1]


@pytest.mark.parametrize(
  ("b_versions", "settings", "controls"),
  [
    ({"jax": "0.4.33", "jaxlib": "0.4.33"}, (), {"keras-on-tf"}),  # a jax upgrade cannot touch Keras on TF
    ({"tensorflow": "2.17.1", "keras": "3.5.0"}, (), {"jax"}),  # nor a TF/Keras one the JAX rows
    ({}, (("TF_ENABLE_ONEDNN_OPTS", "0"),), {"jax", "keras-on-jax"}),
    ({}, (("XLA_FLAGS", "--foo"),), set()),  # XLA compiles for TF too
    ({"numpy": "2.0.0"}, (), set()),  # a package no row is known by: everything may be touched
  ],
)
def test_the_rows_a_change_cannot_touch_are_its_controls(b_versions, settings, controls):
  base = {"jax": "0.4.31", "jaxlib": "0.4.31", "tensorflow": "2.16.2", "keras": "3.3.3", "numpy": "1.26.4"}
  names = judge.changed(
    {"versions": base}, {"versions": {**base, **b_versions}}, Side("A"), Side("B", settings=settings)
  )
  assert {k for k in ("jax", "keras-on-jax", "keras-on-tf") if judge.is_control(k, names)} == controls
  assert judge.uses({"framework": "keras", "variant": "keras-fit-jax"}) == "keras-on-jax"


def test_a_change_is_named_by_the_sides_pins_as_well_as_by_the_versions_they_recorded():
  same = {"versions": {"jax": "0.4.31", "keras": "3.3.3"}}  # neither side records the package its pins change
  names = judge.changed(same, same, Side.parse("A", ""), Side.parse("B", "torch==2.5.1"))
  assert names == {"torch"} and judge.is_control("jax", names) and not judge.is_control("torch", names)
  names = judge.changed(same, same, Side("A"), Side.parse("B", "ML_Dtypes==0.5.0"))  # PEP 503 names
  assert names == {"ml-dtypes"} and not judge.is_control("keras-on-tf", names)
  assert judge.changed(same, same, Side("A"), Side.parse("B", "scipy==1.14.1")) is None  # unknown: nothing a control
  recorded = machine.machine_info()["versions"]
  assert {"torch", "ml-dtypes"} <= recorded.keys() and recorded["ml-dtypes"]  # each side says which it ran


def _doc(machine_info, rows, seed):
  """A saved run of `rows` ({key parts: log-ratio level}), each 3 visits of 40 pairs around its level."""
  rng, benchmarks = np.random.default_rng(seed), []
  for (group, variant, framework), level in rows.items():
    values = (level + 0.01 * rng.standard_normal(120)).tolist()
    benchmarks.append(
      {
        "group": group,
        "fullname": f"benchmarks/test_bench_steps.py::test_{group}[{variant}]",
        "stats": {"median": float(np.exp(level))},
        "extra_info": {
          "variant": variant,
          "batch_size": 64,
          "framework": framework,
          "paired": {"log_ratios": values, "visits": [40, 40, 40], "others_cpu": 0.0},
        },
      }
    )
  return {"machine_info": machine_info, "benchmarks": benchmarks, "comparison": {"rows": []}}


JAX_ROW, KERAS_ROW = ("train_step", "jax-jit", "jax"), ("train_step", "keras-graph", "keras")


def _confirmed(rows, again=None):
  """`rows` after a recheck that reads each moved row as `again`'s runs do (the same rows: confirmed)."""
  again = {r.key: r for r in (again or rows)}
  return [r.rechecked(again.get(r.key)) if r.read_to_move else r for r in rows]


def test_b_judged_against_a_names_a_slowdown_and_a_moved_control_says_the_machine_moved():
  a = [_doc(BEFORE, {JAX_ROW: 0.0, KERAS_ROW: 1.0}, seed) for seed in range(3)]
  slowed = [_doc(JAX_ONLY, {JAX_ROW: np.log(1.10), KERAS_ROW: 1.0}, 10 + seed) for seed in range(3)]
  rows = {r.key: r for r in judge.judge(a, slowed, Side("A"), Side("B"))}
  assert rows["train_step/jax-jit/b64"].verdict["verdict"] == "slower" and not rows["train_step/jax-jit/b64"].control
  assert rows["train_step/keras-graph/b64"].verdict["verdict"] == "same" and rows["train_step/keras-graph/b64"].control
  report = _report(_confirmed(judge.judge(a, slowed, Side("A"), Side("B"))))
  assert report.slower == ["train_step/jax-jit/b64"] and report.exit_status == 1
  assert "REGRESSIONS: train_step/jax-jit/b64 (slower, confirmed) (exit 1)" in report.lines()
  moved = [_doc(JAX_ONLY, {JAX_ROW: np.log(1.10), KERAS_ROW: 1.0 + np.log(1.10)}, 20 + s) for s in range(3)]
  report = _report(_confirmed(judge.judge(a, moved, Side("A"), Side("B"))))
  assert report.controls_moved == ["train_step/keras-graph/b64"] and report.regressions == []
  assert report.exit_status == 3  # not "no regression": the machine moved, so nothing is known
  assert any(line.startswith("the machine moved, not the change") for line in report.lines())
  assert "**the machine moved, not the change: controls train_step/keras-graph/b64 moved" in report.markdown()


def test_a_first_reading_fails_nothing_until_fresh_visits_read_it_the_same_way():
  a = [_doc(BEFORE, {JAX_ROW: 0.0, KERAS_ROW: 1.0}, seed) for seed in range(3)]
  slowed = [_doc(JAX_ONLY, {JAX_ROW: np.log(1.10), KERAS_ROW: 1.0}, 10 + seed) for seed in range(3)]
  rows = judge.judge(a, slowed, Side("A"), Side("B"))
  unrechecked = _report(rows)  # --recheck-visits 0: slower on its first reading only
  assert unrechecked.regressions == [] and unrechecked.exit_status == 3
  assert "train_step/jax-jit/b64: unconfirmed" in unrechecked.inconclusive
  missing = _report([r.rechecked(None) if r.read_to_move else r for r in rows])  # the recheck did not time it
  assert missing.regressions == [] and missing.exit_status == 3
  assert any("not timed by the recheck (not confirmed: the finding does not stand)" in x for x in missing.lines())


def test_the_exit_status_says_judged_regression_or_inconclusive_and_why():
  a = [_doc(BEFORE, {JAX_ROW: 0.0, KERAS_ROW: 1.0}, seed) for seed in range(3)]
  same = [_doc(JAX_ONLY, {JAX_ROW: 0.0, KERAS_ROW: 1.0}, 30 + seed) for seed in range(3)]
  rows = _confirmed(judge.judge(a, same, Side("A"), Side("B")))
  assert {r.final for r in rows} == {"same"} and _report(rows).exit_status == 0
  busy = [dataclasses.replace(rows[0], busy=True), rows[1]]
  assert _report(busy).inconclusive == ["train_step/jax-jit/b64: busy machine (information only)"]
  undecided = [dataclasses.replace(rows[0], verdict={**rows[0].verdict, "verdict": "undecided"}), rows[1]]
  assert _report(undecided).inconclusive == ["train_step/jax-jit/b64: undecided"]
  assert _report(undecided).exit_status == 3
  renamed = dataclasses.replace(_report(rows), one_side=(("train_step/jax-jit/b64",), ("train_step/jax-xla/b64",)))
  assert renamed.exit_status == 3 and renamed.inconclusive == [
    "train_step/jax-jit/b64: timed on side A only",
    "train_step/jax-xla/b64: timed on side B only",
  ]
  assert _report([]).inconclusive == ["no benchmark timed on both sides: nothing judged"]
  tuned = {**JAX_ONLY, "jax_jit_compiler_options": {"xla_cpu_experimental_ynn_fusion_type": "X"}}
  rejected = dataclasses.replace(_report(rows), versions=(tuned, JAX_ONLY))  # B's XLA rejected the tuning
  assert rejected.exit_status == 3 and rejected.inconclusive[0].startswith("jax-jit's compiler options differ")
  renamed_docs = [_doc(JAX_ONLY, {("train_step", "jax-xla", "jax"): 0.0, KERAS_ROW: 1.0}, 40 + s) for s in range(3)]
  assert judge.one_side(a, renamed_docs) == (("train_step/jax-jit/b64",), ("train_step/jax-xla/b64",))


def test_a_changed_program_fails_only_where_the_compiler_side_versions_match():
  a = [_doc(BEFORE, {JAX_ROW: 0.0, KERAS_ROW: 1.0}, seed) for seed in range(3)]
  rows = _confirmed(judge.judge(a, a[::-1], Side("A"), Side("B")))
  changed = [dataclasses.replace(rows[0], program=["fusion 3 -> 4"]), rows[1]]
  across = _report(changed)  # jax 0.4.31 -> 0.4.33: a new compiler may compile otherwise
  assert across.regressions == [] and across.exit_status == 0
  exact = dataclasses.replace(across, versions=(BEFORE, BEFORE), counts=["epoch: compiles 1 -> 2"])
  assert exact.regressions == ["train_step/jax-jit/b64 (program changed)", "counts: epoch: compiles 1 -> 2"]
  assert exact.exit_status == 1
  assert judge._program_changes({"ops": {"Add": 1}}, None) == ["a program fingerprinted on side A only"]


def test_a_row_that_moved_stands_only_where_its_recheck_reads_it_the_same_way():
  a = [_doc(BEFORE, {JAX_ROW: 0.0, KERAS_ROW: 1.0}, seed) for seed in range(3)]
  slowed = [_doc(JAX_ONLY, {JAX_ROW: np.log(1.10), KERAS_ROW: 1.0}, 10 + seed) for seed in range(3)]
  moved = [_doc(JAX_ONLY, {JAX_ROW: np.log(1.10), KERAS_ROW: 1.0 + np.log(1.10)}, 20 + s) for s in range(3)]
  rows = judge.judge(a, moved, Side("A"), Side("B"))
  assert command.only(a[0], ["train_step/jax-jit/b64"]) == [
    "--deselect=benchmarks/test_bench_steps.py::test_train_step[keras-graph]"
  ]
  # the control's move was chance: its recheck reads it the same, and the slowdown is a regression again
  report = _report(_confirmed(rows, judge.judge(a, slowed, Side("A"), Side("B"))))
  assert report.controls_moved == [] and report.slower == ["train_step/jax-jit/b64"]
  assert any("recheck, alone: same" in line and "not confirmed" in line for line in report.lines())
  assert "recheck, alone: slower by" in report.markdown() and "(confirmed) |" in report.markdown()
  # the slowdown itself was chance: its recheck reads no change, and nothing fails
  unmoved = judge.judge(a, a[::-1], Side("A"), Side("B"))
  report = _report(_confirmed(judge.judge(a, slowed, Side("A"), Side("B")), unmoved))
  assert report.regressions == [] and report.record()["rows"][0]["recheck"]["verdict"] != "slower"
  busy = dataclasses.replace(judge.judge(a, slowed, Side("A"), Side("B"))[0], busy=True)
  assert judge.judge(a, slowed, Side("A"), Side("B"))[0].rechecked(busy).busy  # a busy recheck: information


def test_runs_that_differ_more_than_their_pairs_leave_a_change_undecided_and_few_runs_are_refused():
  rng = np.random.default_rng(0)
  # each run (process) at its own level, sd 2% between runs; 100 pairs a run, 0.5% apart within it
  runs = [[(m + 0.005 * rng.standard_normal(100)).tolist()] for m in 0.02 * rng.standard_normal(8)]
  same, moved = (
    verdict.judge_runs(runs[:4], runs[4:]),
    verdict.judge_runs(runs[:4], [[[x + 0.1 for x in r[0]]] for r in runs[4:]]),
  )
  assert same["verdict"] == "undecided" and same["low"] < 0 < same["high"] and same["runs"] == 4
  assert same["high"] - same["low"] > 0.04  # the runs' spread is in the interval, not only the pairs' (0.5%)
  assert moved["verdict"] == "slower" and 0.07 < moved["change"] < 0.14
  with pytest.raises(ValueError, match="at least 2 runs a side"):
    verdict.judge_runs(runs[:1], runs[1:3])


def test_the_interval_between_runs_is_welchs():
  scipy_stats = pytest.importorskip("scipy.stats")
  a, b = np.array([0.0, 0.02, -0.01, 0.015]), np.array([0.05, 0.03, 0.08])
  low, high, est = verdict._welch(a, b, 0.99)
  ci = scipy_stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.99)
  assert np.allclose([low, high], [ci.low, ci.high]) and np.isclose(est, b.mean() - a.mean())


def _report(rows):
  return Report(
    a=Side("A"),
    b=Side("B"),
    same_sides=False,
    rows=rows,
    counts=[],
    versions=(BEFORE, JAX_ONLY),
    visits=3,
    wall_s=60.0,
    runs=([], []),
  )


def test_sides_that_install_set_and_run_the_same_are_reported_as_a_control_run():
  same = dataclasses.replace(_report([]), same_sides=True)
  for report, says in ((same, True), (_report([]), False)):
    assert (SAME_SIDES in "\n".join(report.lines())) is says
    assert (SAME_SIDES in report.markdown()) is says


def test_the_compile_counts_that_differ_are_named():
  a = {"epoch": {"compiles": 1, "by_function": {"step": 1}}, "old": {"compiles": 1}}
  b = {"epoch": {"compiles": 2, "by_function": {"step": 2}}, "new": {"compiles": 1}}
  assert judge.counts_changes(a, b) == [
    "epoch: by_function.step 1 -> 2, compiles 1 -> 2",
    "new: only on side B",
    "old: only on side A",
  ]


BENCHMARK = """
import os
import numpy as np
import pytest
import mnist_models as mm
from mnist_models.bench import Workload

@pytest.mark.benchmark(group="train_step")
def test_matmul(timed):
  x = np.ones((64, 64), np.float32)
  repeat = 1 + 999 * int(os.environ.get("SLOWER", "0"))  # a side's setting: the work done a thousand times
  batch = mm.one_batch(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32))
  losses = iter(np.linspace(2, 1, 10**5))

  def call():
    for _ in range(repeat):
      x @ x
    return next(losses)
  timed(call, workload=Workload.train(batch), framework="jax", variant="jax-jit", rates=False, rounds=60)
"""


@pytest.mark.long  # 12 short pytest runs, about 2 minutes
def test_the_command_judges_a_slowed_side_and_refuses_a_side_it_cannot_install(tmp_path, monkeypatch, capsys):
  (tmp_path / "test_bench.py").write_text(BENCHMARK)
  (tmp_path / "conftest.py").write_text('pytest_plugins = ["mnist_models.bench.plugin"]\n')
  # a project of no packages (its tests and conftest are not a package): pip builds it into an empty wheel
  (tmp_path / "pyproject.toml").write_text(
    '[project]\nname = "tiny"\nversion = "0"\n[tool.setuptools]\npy-modules = []\n'
  )
  monkeypatch.chdir(tmp_path)
  summary = tmp_path / "summary.md"
  args = ["--a", "", "--b", "SLOWER=1", "--visits=3", "--no-counts", "--busy-cpus=1000", f"--summary={summary}"]
  args += ["--out=out", "--recheck-visits=3"]
  args += ["test_bench.py"]  # judged however busy: the test runs beside others
  # a thousand times the work beside a busy test run: confirmed slower, the command fails. Beside a busy run, a run's
  # statistic moved by up to 0.9 log units (its pairs' yardstick preempted or not, measured), and the recheck's
  # prediction interval from 3 runs is then about 4 log units wide each way: the change must be far larger (1000x: 6.9)
  assert command.main(args) == 1
  (report,) = (tmp_path / "out").glob("*/report.json")
  saved = json.loads(report.read_text())
  assert saved["regressions"] == ["train_step/jax-jit/b2 (slower, confirmed)"] and saved["exit_status"] == 1
  assert saved["rows"][0]["verdict"]["verdict"] == "slower"
  assert len(saved["runs"][0]) == len(saved["runs"][1]) == 3 and "| train_step/jax-jit/b2 |" in summary.read_text()
  assert len(saved["rechecked"][1]) == 3 and saved["rows"][0]["recheck"]["verdict"] == "slower"  # timed again
  bad = ["--b", "mnist-bench-no-such-package==0.0.1", "--visits=3", "--no-counts", "--out=out2", "test_bench.py"]
  assert command.main(bad) == 2
  assert "side B (mnist-bench-no-such-package==0.0.1; this checkout) cannot be installed" in capsys.readouterr().err
  assert not list((tmp_path / "out2").glob("*"))  # nothing half-done is kept


def test_the_sides_are_built_at_once_and_an_environment_they_share_once(tmp_path, monkeypatch):
  (tmp_path / "pyproject.toml").write_text('[project]\nname = "tiny"\nversion = "0"\n')
  built, barrier = [], [threading.Barrier(2, timeout=10)]

  def build(side, venv, source):  # a real build is pip's; here what is built, and that the builds wait for each other
    built.append(side.name)
    barrier[0].wait()
    (venv / "bin").mkdir(parents=True)
    (venv / ".ready").write_text("")

  monkeypatch.setattr(environments, "_build", build)
  a, b = Side.parse("A", "jax==0.4.31"), Side.parse("B", "jax==0.4.33")
  places = environments.prepare_all([a, b], tmp_path, tmp_path / "cache")  # a BrokenBarrierError if built one by one
  assert sorted(built) == ["A", "B"] and places[0].python != places[1].python
  barrier[0] = threading.Barrier(1)
  again = environments.prepare_all([a, Side.parse("B", "jax==0.4.31"), Side("C")], tmp_path, tmp_path / "cache2")
  assert built[2:] == ["A"] and again[0] == again[1] and again[2] == sides.Place(Path(sys.executable), tmp_path)


def test_one_environment_is_built_once_however_its_commit_is_named_and_a_half_made_checkout_is_made_again(
  tmp_path, monkeypatch
):
  root = tmp_path / "repo"
  subprocess.run(["git", "init", "-q", "-b", "trunk", str(root)], check=True)
  (root / "pyproject.toml").write_text('[project]\nname = "tiny"\nversion = "0"\n')
  subprocess.run(["git", "-C", str(root), "add", "."], check=True)
  subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "x"], check=True, env=_git_env())
  built = []

  def build(side, venv, source):
    built.append(side.name)
    (venv / "bin").mkdir(parents=True)
    (venv / ".ready").write_text("")

  monkeypatch.setattr(environments, "_build", build)
  places = environments.prepare_all([Side.parse("A", "@HEAD"), Side.parse("B", "@trunk")], root, tmp_path / "cache")
  assert built == ["A"] and places[0] == places[1]  # two names of one commit: one build, not two at once
  checkout = places[0].source
  (checkout / environments.MARKER).unlink()  # as if `git worktree add` had been interrupted after pyproject.toml
  (checkout / "stale").write_text("")
  environments.prepare(Side.parse("A", "@HEAD"), root, tmp_path / "cache")
  assert (checkout / environments.MARKER).is_file() and not (checkout / "stale").exists()


def test_the_project_is_built_from_a_copy_so_the_checkout_is_left_as_it_was(tmp_path):
  source = tmp_path / "tiny"
  (source / "tiny").mkdir(parents=True)
  (source / "tiny" / "__init__.py").write_text("")
  (source / "pyproject.toml").write_text(
    '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    '[project]\nname = "tiny"\nversion = "0"\n'
  )
  before = sorted(p.name for p in source.rglob("*"))
  wheel = environments.wheel(source, tmp_path / "scratch")
  assert wheel.name == "tiny-0-py3-none-any.whl" and sorted(p.name for p in source.rglob("*")) == before


def test_an_interrupted_comparison_leaves_nothing_to_judge_later(tmp_path, monkeypatch, capsys):
  def interrupted(plan):
    (plan.out / "runs").mkdir()
    (plan.out / "runs" / "0001_A.json").write_text("{}")  # a visit's run, saved before the interrupt
    raise KeyboardInterrupt

  monkeypatch.setattr(command, "run", interrupted)
  assert command.main(["--b", "", "--out", str(tmp_path)]) == 2
  assert "nothing judged: interrupted" in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []  # neither the half-done runs nor a report


@pytest.mark.parametrize(
  ("option", "says"),
  [
    ("--threshold=nan", "--threshold must be a fraction"),
    ("--threshold=-1", "--threshold must be a fraction"),
    ("--busy-cpus=-1", "--busy-cpus must be a number of CPUs"),
    ("--busy-cpus=inf", "--busy-cpus must be a number of CPUs"),
    ("--recheck-visits=-2", "--recheck-visits must be 0"),
    ("--summary=/no/such/folder/s.md", "--summary /no/such/folder/s.md: cannot write there"),
  ],
)
def test_a_bad_option_is_refused_before_anything_is_built(option, says, capsys):
  with pytest.raises(SystemExit) as exit:
    command.plan_of(["--b", "jax==0.4.33", option])
  assert exit.value.code == 2 and says in capsys.readouterr().err


def test_a_bad_option_is_refused_without_importing_jax_or_tensorflow():
  """The command's own modules import neither JAX nor TF (the library loads each name at first use): a bad option or
  pin is refused in the time Python starts, not after seconds of imports."""
  code = (
    "import sys\nfrom mnist_models.bench.upgrade.command import main\n"
    "try:\n  main(['--b', 'jax=='])\nexcept SystemExit as e:\n  assert e.code == 2\n"
    "heavy = {'jax', 'tensorflow', 'keras', 'torch'} & set(sys.modules)\nassert not heavy, heavy\n"
  )
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert done.returncode == 0 and "names no version" in done.stderr, done.stderr[-2000:]


def test_the_output_folder_is_absolute_so_that_a_side_in_its_own_checkout_saves_where_the_command_reads(
  tmp_path, monkeypatch
):
  monkeypatch.chdir(tmp_path)
  assert command.plan_of(["--b", "@HEAD"]).out == tmp_path / ".sides" / "reports"


def test_a_crash_exits_2_and_keeps_nothing_and_two_comparisons_get_folders_of_their_own(tmp_path, monkeypatch, capsys):
  folders = []

  def crashes(plan):
    folders.append(plan.out)
    (plan.out / "runs").mkdir()
    raise ZeroDivisionError("a bug")

  monkeypatch.setattr(command, "run", crashes)
  assert command.main(["--b", "", "--out", str(tmp_path)]) == 2
  assert command.main(["--b", "", "--out", str(tmp_path)]) == 2  # in the same second
  err = capsys.readouterr().err
  assert "nothing judged: the command failed" in err and "ZeroDivisionError: a bug" in err
  assert len(set(folders)) == 2 and list(tmp_path.iterdir()) == []


def test_a_visit_whose_suite_fails_names_the_side(tmp_path):
  (tmp_path / "test_fails.py").write_text(
    "import pytest\n\n@pytest.mark.benchmark(group='x')\ndef test_fails(benchmark):\n"
    "  benchmark(lambda: None)\n  raise AssertionError('broken on this side')\n"
  )
  with pytest.raises(sides.SideError, match="side B .*its benchmarks failed"):
    sides.visit(Side("B"), sides.Place(sys.executable, tmp_path), tmp_path / "runs", ["test_fails.py"])
  assert not list((tmp_path / "runs").rglob("*.json"))  # saved by pytest-benchmark, then removed: never judged
