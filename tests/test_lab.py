"""The lab's drivers (lab/: the experiments behind the evidence pages) do what their pages say they did."""

import numpy as np
import pytest

from lab import budget_curve, paired_slots, recheck_windows, visit_phases, visit_profile
from mnist_models.bench import timed


def test_the_recheck_counted_on_saved_windows_keeps_a_finding_only_where_the_next_window_repeats_it():
  def window(i, verdict_, busy=False):
    return {"window": i, "side": "B", "rows": {"k": {"verdict": verdict_, "busy": busy}}}

  windows = [window(0, "slower"), window(1, "slower"), window(2, "slower"), window(3, "undecided"), window(4, "same")]
  assert [(f["window"], g["window"]) for f, g in recheck_windows.pairs(windows)] == [(0, 1), (2, 3)]  # 4 unpaired
  outcomes = [recheck_windows.outcome(f["rows"]["k"], g["rows"]["k"]) for f, g in recheck_windows.pairs(windows)]
  assert outcomes == [("slower", "slower"), ("slower", "-")]
  assert recheck_windows.outcome({"verdict": "slower", "busy": False}, {"verdict": "slower", "busy": True}) == (
    "busy",
    "busy",
  )


def test_a_visits_profile_splits_its_wall_time_into_what_the_page_names():
  output = "0.50s call     b.py::test_a\n0.20s setup    b.py::test_a\n1.00s call     b.py::test_b\n"
  paired = {"log_ratios": [0.0] * 6, "visits": [4, 2], "yardstick_s": 0.01}
  doc = {
    "benchmarks": [
      {"fullname": "b.py::test_a", "stats": {"total": 0.3, "median": 0.05}, "extra_info": {"paired": paired}},
      {"fullname": "b.py::test_b", "stats": {"total": 0.6, "median": 0.1}, "extra_info": {}},
    ]
  }
  table = visit_profile.split(3.0, output, doc)
  assert table["tests' calls"] == pytest.approx(1.5) and table["  timed rounds"] == pytest.approx(0.9)
  assert table["  yardstick rounds paired with them"] == pytest.approx(0.04)  # the test's 4 pairs
  assert table["revisits' pairs at the session's end (timed and yardstick)"] == pytest.approx(2 * 0.06)
  assert table["start-up, collection; the session's end but its revisits"] == pytest.approx(3.0 - 1.7 - 0.12)
  assert visit_profile.untimed_by_test(output, doc)[0] == (pytest.approx(0.4), "b.py::test_b")


def test_the_paired_slot_interval_is_students_on_the_differences():
  scipy_stats = pytest.importorskip("scipy.stats")
  a, b = np.array([0.0, 0.02, -0.01, 0.015, 0.005]), np.array([0.03, 0.05, 0.01, 0.04, 0.02])
  low, high, est = paired_slots.paired(a, b, 0.99)
  ci = scipy_stats.ttest_rel(b, a).confidence_interval(0.99)
  assert np.allclose([low, high], [ci.low, ci.high]) and np.isclose(est, (b - a).mean())


def test_the_phases_of_the_benchmarks_calls_make_the_warm_up_the_rest_of_run():
  phases = visit_phases.split({"run": 10.0, "sizing": 2.0, "fingerprint": 1.5, "timed rounds and pairing": 5.0})
  assert phases == {"warm-up (compiling)": 1.5, "sizing": 2.0, "fingerprint": 1.5, "timed rounds and pairing": 5.0}
  assert not hasattr(timed.Timed.run, "__wrapped__")  # importing the plugin wraps nothing by itself


def test_the_budget_curve_gives_both_designs_the_same_minutes_and_the_budgets_median_row_is_never_worse():
  spreads = {"quiet": 0.005, "gated": 0.02, "noisy": 0.06}
  costs = {"quiet": 2.0, "gated": 3.0, "noisy": 8.0}
  assert not budget_curve.curve(spreads, costs, 10.0, minutes=1, counts_s=30)["fits"]  # not even the first stage
  for minutes in (5, 10, 20):
    c = budget_curve.curve(spreads, costs, 10.0, minutes=minutes, counts_s=30)
    assert c["fits"] and c["budget"]["median"] <= max(c["uniform"]["median"], 0.03) + 1e-9, c  # it stops at 3%
  roomy = budget_curve.curve(spreads, costs, 10.0, minutes=60, counts_s=30)
  assert roomy["budget"]["median"] <= 0.03 < roomy["uniform"]["worst"]  # the quiet rows stop; the rest keep going
