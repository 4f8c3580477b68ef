"""Verdicts: the paired samples' arithmetic and the decision at the threshold."""

import math

import numpy as np
import pytest

from mnist_models.bench import verdict

RNG = np.random.default_rng(0)
# Samples shaped like the measured ones: per-pair log-ratios with sd 0.07 (docs/methodology.md), 150 pairs.
BASE = np.log(13.4) + 0.07 * RNG.standard_normal(150)


def _now(factor, n=150, seed=1):
  return np.log(13.4 * factor) + 0.07 * np.random.default_rng(seed).standard_normal(n)


def test_log_ratios_pair_times_in_order():
  np.testing.assert_allclose(verdict.log_ratios([2.0, 3.0], [1.0, 3.0]), [math.log(2), 0.0])
  with pytest.raises(ValueError, match="as many"):
    verdict.log_ratios([1.0, 2.0], [1.0])


def test_the_bootstraps_row_quantile_is_numpys_nanquantile_exactly():
  """The vectorised quantile of each resample (NaN-padded rows of different lengths) gives np.nanquantile's bits."""
  rng = np.random.default_rng(2)
  values = rng.standard_normal((200, 40))
  values[np.arange(40) >= rng.integers(1, 41, (200, 1))] = np.nan
  rng.permuted(values, axis=1, out=values)  # padding anywhere in a row, not only at its end
  for q in (verdict.QUANTILE, 0.5, 0.9, 0.37):
    np.testing.assert_array_equal(verdict._row_quantile(values, q), np.nanquantile(values, q, axis=1))


@pytest.mark.parametrize(
  ("factor", "threshold", "expect"),
  [
    (1.15, verdict.THRESHOLD, "slower"),
    (1 / 1.15, verdict.THRESHOLD, "faster"),
    (1.0, verdict.THRESHOLD, "same"),
    (1.10, 0.05, "slower"),
    (1 / 1.10, 0.05, "faster"),
    (1.0, 0.05, "same"),
  ],
)
def test_a_change_beyond_the_threshold_is_seen_and_no_change_is_same(factor, threshold, expect):
  v = verdict.judge(BASE, _now(factor), threshold)
  assert v["verdict"] == expect, verdict.describe(v)
  assert v["low"] <= v["change"] <= v["high"]
  assert v["change"] == pytest.approx(factor - 1, abs=0.02)


def test_a_change_near_the_threshold_or_too_few_pairs_is_undecided():
  assert verdict.judge(BASE, _now(1 + 0.85 * verdict.THRESHOLD))["verdict"] == "undecided"  # its interval reaches past
  assert verdict.judge(BASE[:4], _now(1.10, n=4))["verdict"] == "undecided"


@pytest.mark.parametrize(
  ("est", "low", "high", "expect"),
  [
    (0.08, 0.01, 0.15, "slower"),
    (-0.08, -0.15, -0.01, "faster"),  # beyond the threshold, and significant
    (0.08, -0.01, 0.15, "undecided"),  # beyond, but the interval holds no change
    (0.04, 0.01, 0.07, "undecided"),  # significant, within the threshold, but the interval reaches past it
    (0.04, 0.01, 0.049, "same"),
    (0.0, -0.047, 0.05, "same"),
    (0.0, -0.1, 0.1, "undecided"),
  ],
)
def test_decide_needs_a_change_beyond_the_threshold_and_an_interval_clear_of_zero(est, low, high, expect):
  assert verdict.decide(est, low, high, 0.05) == expect


def test_visits_that_disagree_widen_the_interval():
  """Pairs that share their visit's moment (a slow phase shifts them together) are not independent."""
  visits = [list(_now(1.0, n=30, seed=i) + np.log(f)) for i, f in enumerate((1.0, 1.06, 0.95, 1.03))]
  flat = [x for v in visits for x in v]
  _, low_v, high_v = verdict.change(BASE, visits)
  _, low_f, high_f = verdict.change(BASE, flat)
  assert high_v - low_v > 1.2 * (high_f - low_f)
  v = verdict.judge([list(BASE[:75]), *np.split(BASE[75:], 3)], [list(_now(1.10, 75)), *np.split(_now(1.10, 75, 2), 3)])
  assert v["verdict"] == "slower" and v["visits"] == v["baseline_visits"] == 4 and v["pairs"] == 150, verdict.describe(
    v
  )


def test_pooled_runs_are_the_reference_and_their_spread_is_the_noise_of_a_moment():
  """Runs of the same code at three moments of the machine (their medians 4% apart) judge a run at a fourth."""
  runs = [[list(_now(f, seed=10 + i))] for i, f in enumerate((1.0, 1.04, 1 / 1.04))]  # each run: one visit
  assert verdict.change(runs, _now(1.0))[0] == pytest.approx(0.0, abs=0.01)  # the mean of the runs' medians
  moment = verdict.judge(runs, _now(1.07))  # within one moment's reach of the runs: not a regression
  assert moment["verdict"] == "undecided" and moment["baseline_runs"] == 3, verdict.describe(moment)
  assert verdict.judge(runs[0], _now(1.07))["verdict"] == "slower"  # one run alone cannot tell a moment from a change
  # three runs know their spread poorly (a t with 2 degrees of freedom: its 99% quantile is 9.9 standard deviations,
  # a normal's 2.6): 15% is within what a fourth moment may do, 80% is not
  assert verdict.judge(runs, _now(1.15))["verdict"] == "undecided"
  slower = verdict.judge(runs, _now(1.8))
  assert slower["verdict"] == "slower" and "of 3 runs" in verdict.describe(slower), verdict.describe(slower)


@pytest.mark.parametrize("bad", [[0.1], [0.1, float("nan")], [[0.1, 0.2], []], [[0.1], [0.2, float("inf")]]])
def test_samples_that_cannot_be_judged_are_refused(bad):
  with pytest.raises(ValueError, match="at least 2 finite"):
    verdict.change(bad, [0.1, 0.2])


def test_sampling_stops_when_decided_or_at_the_cap():
  calls = []
  undecided, decided = {"verdict": "undecided"}, {"verdict": "same"}
  answers = iter([undecided, undecided, decided])
  assert verdict.sample_until_decided(lambda: next(answers), calls.append, 20, 0.001) == decided
  assert calls == [10, 15]  # half as many pairs again each time
  calls.clear()
  assert verdict.sample_until_decided(lambda: undecided, calls.append, 20, 1.0, cap_s=12)["verdict"] == "undecided"
  assert calls == [10]  # 15 more pairs at 1 s each would pass the 12 s cap


def test_a_faster_amount_reads_in_the_direction_of_its_interval():
  """B taking 57% of A's time is 'faster by 43.2%', its interval -44.3%..-42.0% beside it (not 'by 76%')."""
  faster = {"verdict": "faster", "change": -0.432, "low": -0.443, "high": -0.42, "pairs": 8, "baseline_pairs": 8}
  assert verdict.describe({**faster, "threshold": 0.03}).startswith("faster by 43.2% (95% CI -44.3%..-42.0%;")


def test_describe_says_the_amount_and_interval():
  text = verdict.describe(
    {
      "verdict": "slower",
      "change": 0.118,
      "low": 0.095,
      "high": 0.14,
      "pairs": 120,
      "visits": 4,
      "baseline_pairs": 100,
      "baseline_visits": 1,
      "threshold": 0.05,
      "confidence": 0.99,
    }
  )
  assert text == "slower by 11.8% (99% CI +9.5%..+14.0%; 120 pairs in 4 visits vs 100 in 1, threshold 5.0%)"


def test_a_benchmark_that_drifts_within_a_run_is_judged_with_its_drift_as_threshold():
  drifting = np.concatenate([BASE[:75], BASE[75:] + np.log(1.12)])  # the second half 12% slower
  assert verdict.drift(BASE) < 0.03 and verdict.drift(drifting) == pytest.approx(0.12, abs=0.03)
  v = verdict.judge(drifting, _now(1.10))
  assert v["threshold"] == pytest.approx(verdict.drift(drifting)) and v["verdict"] == "undecided"
  # a run that drifts itself (a step made bimodal: half its pairs 12% slower) is never called the same for it
  bimodal = verdict.judge(BASE, np.concatenate([_now(1.0)[:75], _now(1.12)[75:]]))
  assert bimodal["threshold"] > 0.06 and bimodal["verdict"] == "undecided", verdict.describe(bimodal)
  assert verdict.drift(BASE[:9]) == 0.0  # too few pairs to split: the interval speaks for them
