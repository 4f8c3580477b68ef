"""The false alarm rate of a whole run, held: null runs simulated with the spread the committed runs measured
(lab/calibration.py: the model, and the numbers it prints), judged by the suite's own rules.

Side by side: ~30 rows, 10 runs a side alternating, the recheck of the rows read to move; a compare run: every row of
the committed baseline, each row's fresh sample judged at the family's level (verdict.confirm).
"""

import pytest

from lab import calibration
from mnist_models.bench import verdict


def test_an_unchanged_side_by_side_comparison_fails_at_most_one_run_in_a_hundred():
  null = calibration.side_by_side(runs=1500, seed=1)
  assert null["regression"] <= verdict.FAMILY_ALPHA, null
  # what the recheck holds it against: a first reading alone would fail many more runs of unchanged code
  assert null["first_reading_slower"] > verdict.FAMILY_ALPHA, null


@pytest.mark.parametrize(("change", "caught"), [(0.05, 0.85), (0.10, 0.99)])
def test_a_real_slowdown_of_one_row_is_caught_at_the_documented_rate(change, caught):
  """docs/upgrades.md: a 5% slowdown of the jax-jit row fails about 90% of comparisons, 10% all but 1 in 1000."""
  slowed = calibration.side_by_side(runs=500, change=change, seed=2)
  assert slowed["regression"] >= caught, slowed


def test_an_unchanged_compare_run_fails_at_most_one_run_in_a_hundred():
  null = calibration.compare_run(runs=150, seed=3)
  assert null["any_row_slower"] <= verdict.FAMILY_ALPHA, null
  uncorrected = calibration.compare_run(runs=50, seed=3, family=False)  # each row at 99% alone: the bound fails
  assert uncorrected["any_row_slower"] > 5 * verdict.FAMILY_ALPHA, uncorrected


def test_the_commands_two_looks_fail_at_most_one_unchanged_comparison_in_a_hundred():
  """upgrade.budget: the first stage and the open rows' planned runs are two looks at a row, each at 99.5%; the
  rows read to move are rechecked. Unchanged: no regression; a real slowdown of one row caught as documented."""
  null = calibration.two_stage(runs=600, seed=4)
  assert null["regression"] <= verdict.FAMILY_ALPHA and null["read_to_move"] > verdict.FAMILY_ALPHA, null
  assert null["median_bound"] < 0.045 and null["mean_runs"] > 3  # the open rows were run further, and bounded
  assert calibration.two_stage(runs=300, change=0.05, seed=5)["regression"] >= 0.75
  assert calibration.two_stage(runs=300, change=0.10, seed=6)["regression"] >= 0.95
