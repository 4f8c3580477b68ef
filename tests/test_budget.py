"""The side-by-side command's budget: a first stage of every row, then the open rows' runs planned by their spread
(mnist_models.bench.upgrade.budget), within the minutes given."""

import json
import math

import numpy as np
import pytest

from mnist_models.bench.upgrade import budget, command
from mnist_models.bench.upgrade.sides import Place, Side

ROWS = {"quiet": 0.002, "noisy": 0.02, "hopeless": 0.5}  # each row's spread between runs (log units)
TEST_S, BESIDES_S = 5.0, 10.0  # each row's test, and a visit's start-up, in the fake clock's seconds


def test_a_rows_runs_are_the_fewest_expected_to_bound_it_within_the_target():
  n = budget.runs_for(0.02, 0.03, 3)
  assert budget.bound(0.02, n) <= math.log1p(0.03) < budget.bound(0.02, n - 1)
  assert budget.runs_for(0.001, 0.03, 3) == 3  # the first stage already does
  assert budget.runs_for(0.5, 0.03, 3) is None  # not within MAX_RUNS
  assert budget.bound(0.02, 10) > budget.bound(0.02, 20)  # more runs, a tighter bound


def test_the_plan_spends_each_run_where_it_narrows_a_bound_most_for_its_seconds():
  spreads, cost = {"a": 0.02, "b": 0.01, "c": 0.06}, {"a": 3.0, "b": 3.0, "c": 3.0}
  roomy, median = budget.plan(spreads, cost, 10.0, 1e5, 3, 0.03)
  assert roomy == {"a": budget.runs_for(0.02, 0.03, 3), "b": budget.runs_for(0.01, 0.03, 3), "c": budget.MAX_RUNS}
  planned = sorted(math.expm1(budget.bound(sd, roomy[k])) for k, sd in spreads.items())
  assert median == pytest.approx(planned[1]) and planned[1] <= 0.03 < planned[2]  # c: MAX_RUNS, still above 3%
  tight, _ = budget.plan(spreads, cost, 10.0, 200.0, 3, 0.03)
  assert budget.seconds(tight, 3, cost, 10.0) <= 200.0 and sum(tight.values()) < sum(roomy.values())
  assert len(tight) == 3  # every row narrowed before any row gets far ahead: the first runs narrow most
  costly, _ = budget.plan(spreads, {**cost, "c": 30.0}, 10.0, 200.0, 3, 0.03)
  assert costly.get("c", 3) < tight["c"]  # a costlier row's runs buy less: it gets fewer
  assert budget.plan(spreads, cost, 10.0, 20.0, 3, 0.03) == ({}, None)  # not even one more visit of one row
  # visit k runs every row planned for k runs or more: 2 sides x (start-up + its rows)
  assert budget.seconds({"a": 5, "b": 4}, 3, cost, 10.0) == 2 * (10 + 6) + 2 * (10 + 3)


class Clock:
  """A fake time: each fake visit advances it by what the visit's tests and start-up take."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def _fake(tmp_path, monkeypatch, levels=None):
  """The command with its sides, builds and visits faked: each visit saves a run of the rows it was not told to
  deselect, each row at its level plus a moment drawn with its spread; returns (the clock, the visits' arguments)."""
  clock, calls, rng = Clock(), [], np.random.default_rng(0)
  levels = levels or {}
  monkeypatch.setattr(command.time, "perf_counter", clock)
  monkeypatch.setattr(command, "prepare_all", lambda sides, root: [Place(None, tmp_path)] * 2)

  def visit(side, place, storage, args):
    calls.append((side.name, args))
    skipped = {a.split("=", 1)[1] for a in args if a.startswith("--deselect=")}
    benchmarks, seconds = [], {}
    for key, sd in ROWS.items():
      fullname = f"benchmarks/test_bench_steps.py::test_{key}"
      if fullname in skipped:
        continue
      level = levels.get((side.name, key), 0.0) + sd * rng.standard_normal()
      seconds[fullname] = TEST_S
      ratios = (level + 0.001 * rng.standard_normal(20)).tolist()
      info = {"variant": key, "batch_size": 64, "framework": "jax"}
      paired = {"log_ratios": ratios, "visits": [20], "others_cpu": 0.0}
      bench = {"group": "train_step", "fullname": fullname, "stats": {"median": 0.01}}
      benchmarks.append({**bench, "extra_info": {**info, "paired": paired}})
    clock.now += BESIDES_S + sum(seconds.values())
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / f"{len(calls):04d}_{side.name}.json"
    doc = {"machine_info": {"versions": {"jax": "0.10.2"}}, "benchmarks": benchmarks}
    path.write_text(json.dumps({**doc, "session": {"test_seconds": seconds, "exit_status": 0, "complete": True}}))
    return path

  monkeypatch.setattr(command, "visit", visit)
  return clock, calls


def _plan(tmp_path, minutes):
  b = Side("B", settings=(("XLA_FLAGS", "--xla_cpu_example"),))  # the JAX rows are not controls of this change
  return command.Plan(a=Side("A"), b=b, root=tmp_path, out=tmp_path, minutes=minutes, counts=False)


def test_the_open_rows_alone_are_visited_again_within_the_budget(tmp_path, monkeypatch):
  clock, calls = _fake(tmp_path, monkeypatch)
  report = command.run(_plan(tmp_path, minutes=15))
  first = calls[: 2 * command.VISITS]
  assert all(not any(a.startswith("--deselect") for a in args) for _, args in first)  # every row, first
  later = [args for _, args in calls[2 * command.VISITS :]]
  assert later and all("--deselect=benchmarks/test_bench_steps.py::test_quiet" in args for args in later)
  rows = {r.key.split("/")[1]: r for r in report.rows}
  assert rows["quiet"].verdict["verdict"] == "same" and rows["quiet"].verdict["runs"] == command.VISITS
  assert rows["noisy"].verdict["runs"] > command.VISITS  # visited again, and judged on all its runs
  assert clock.now <= 15 * 60 and report.target is not None and report.resolution["rows"] == 3
  assert [side for side, _ in calls] == [["A", "B"][i] for i in command.order(len(calls) // 2)]  # still alternating


def test_a_budget_that_cannot_hold_the_first_stage_says_how_many_minutes_would(tmp_path, monkeypatch, capsys):
  _fake(tmp_path, monkeypatch)  # a visit of all three rows: 25 s; the first stage six of them
  monkeypatch.setattr(command, "plan_of", lambda argv: _plan(tmp_path / "out", minutes=1.5))
  (tmp_path / "out").mkdir()
  assert command.main([]) == 2
  assert (
    "--minutes 1.5 cannot hold the first stage (3 visits a side of every row, 25 s a visit here, measured): "
    "give --minutes 3 or more" in capsys.readouterr().err
  )
  assert not list((tmp_path / "out").glob("*"))  # nothing half-done is kept


def test_a_slower_side_is_rechecked_in_as_many_runs_as_its_row_was_judged_on(tmp_path, monkeypatch):
  clock, calls = _fake(tmp_path, monkeypatch, levels={("B", "noisy"): math.log(1.5)})
  report = command.run(_plan(tmp_path, minutes=30))
  rows = {r.key.split("/")[1]: r for r in report.rows}
  assert rows["noisy"].final == "slower" and rows["noisy"].recheck["runs"] >= command.VISITS
  assert rows["noisy"].recheck["runs"] == max(command.VISITS, budget.runs_for(rows["noisy"].verdict["spread"], 0.03, 3))
  assert len(report.rechecked[1]) == rows["noisy"].recheck["runs"]
  assert report.regressions == ["train_step/noisy/b64 (slower, confirmed)"] and report.exit_status == 1


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf"])
def test_a_budget_of_no_time_is_refused(minutes, capsys):
  with pytest.raises(SystemExit) as exit:
    command.plan_of(["--b", "jax==0.4.33", f"--minutes={minutes}"])
  assert exit.value.code == 2 and "--minutes must be a number of minutes above 0" in capsys.readouterr().err
