"""How often the verdicts fail a whole run of unchanged code, and how often they catch a real change: null runs
simulated with the spread the committed runs measured (tests/test_calibration.py asserts the bounds).

  python lab/calibration.py [--runs 4000]

Side by side (the upgrade command, `upgrade.report.Report.exit_status` deciding): each null comparison is ROWS rows,
VISITS runs a side alternating A B B A ..., then a recheck of the rows read to move in VISITS fresh runs a side. The
runs' statistics follow the 100 runs of unchanged code in docs/notebook/runs/side_by_side_fixed10.json: each row's
standard deviation between runs, the correlation between rows of one run (a shared moment of the machine) and from
one run to the next (drift), with heavier tails than a normal's (Student's t, 5 degrees of freedom). A third of the
rows are controls (a jax-only change cannot touch them).

A compare run (the plugin against a saved baseline): a row fails only where its fresh sample is slower
(`verdict.confirm`), so the chance that any row of an unchanged run fails is at most the chance that any row's
fresh sample reads slower, whatever chose the rows: that is what is counted, every row rechecked. The rows and
their spread between runs are the committed baseline's (.benchmarks/, three runs), each baseline run and the fresh
sample shifted as far as they measured, and the whole fresh run by a drift of the machine since the baseline
(uniform within +-6.5%, the largest measured: docs/methodology.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mnist_models.bench import baseline, verdict
from mnist_models.bench.upgrade import budget, command
from mnist_models.bench.upgrade.judge import Row
from mnist_models.bench.upgrade.report import Report
from mnist_models.bench.upgrade.sides import Side

ROOT = Path(__file__).resolve().parents[1]
NULL_RUNS = ROOT / "docs/notebook/runs/side_by_side_fixed10.json"
BASELINE = ROOT / ".benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json"
ROWS, VISITS, CONTROLS = 30, 10, 10
DRIFT = 0.065
PAIR_SD = 0.003  # a pair's own noise: small, so that the runs' measured spread is the moment's


def measured_spread(path: Path = NULL_RUNS) -> dict:
  """Per row sd between runs, and the mean correlation between rows and from one run to the next, of the unchanged
  side's runs."""
  runs = json.loads(path.read_text())["runs"]["A"]
  keys = sorted(runs[0])
  x = np.array([[run[k]["stat"] for k in keys] for run in runs])
  z = (x - x.mean(0)) / x.std(0, ddof=1)
  across = np.corrcoef(z.T)[np.triu_indices(len(keys), 1)].mean()
  lag = np.mean([np.corrcoef(z[:-1, i], z[1:, i])[0, 1] for i in range(len(keys))])
  return {"sd": x.std(0, ddof=1), "across": float(across), "lag": float(lag), "keys": keys}


def _series(rng: np.random.Generator, spread: dict, sims: int, runs: int) -> np.ndarray:
  """[sims, rows, runs] statistics of unchanged code: a shared moment and each row's own, both AR(1) in time."""
  sd = np.resize(spread["sd"], ROWS)
  phi, rho = spread["lag"], spread["across"]
  shocks = rng.standard_t(5, (sims, ROWS + 1, runs)) / np.sqrt(5 / 3)  # unit variance, heavier tails
  out = np.empty_like(shocks)
  out[..., 0] = shocks[..., 0]
  for t in range(1, runs):
    out[..., t] = phi * out[..., t - 1] + np.sqrt(1 - phi**2) * shocks[..., t]
  mixed = np.sqrt(rho) * out[:, :1] + np.sqrt(1 - rho) * out[:, 1:]
  return sd[None, :, None] * mixed


def _sides(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """A window's runs split as the command alternates them (A B B A ...)."""
  order = np.array([side for i in range(window.shape[-1] // 2) for side in ((0, 1) if i % 2 == 0 else (1, 0))])
  return window[..., order == 0], window[..., order == 1]


def _verdicts(a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
  """Each row's verdict (verdict.judge_runs' rule: Welch's interval, decide) of [sims, rows, runs] arrays."""
  low, high, est = verdict._welch(a, b, verdict.CONFIDENCE)
  return _decided(est, low, high, threshold)


def side_by_side(runs: int, change: float = 0.0, seed: int = 0, threshold: float = 0.03) -> dict:
  """How `runs` simulated comparisons end (the share of each exit status), B's jax-jit row (a row the change can
  touch, sd 2.2% between runs) slowed by `change` in every run of B, the recheck's included."""
  rng, spread = np.random.default_rng(seed), measured_spread()
  series = _series(rng, spread, runs, 4 * VISITS)
  (fa, fb), (ra, rb) = _sides(series[..., : 2 * VISITS]), _sides(series[..., 2 * VISITS :])
  slowed = spread["keys"].index("train_step/jax-jit/b64")
  fb[:, slowed] += np.log1p(change)
  rb[:, slowed] += np.log1p(change)
  first, again = _verdicts(fa, fb, threshold), _verdicts(ra, rb, threshold)
  status = np.array([_exit(first[i], again[i]) for i in range(runs)])
  unrechecked = np.mean((first[:, : ROWS - CONTROLS] == "slower").any(axis=1))  # a first reading failing the run
  return {
    "runs": runs,
    **{name: float(np.mean(status == code)) for code, name in _STATUS.items()},
    "first_reading_slower": float(unrechecked),
  }


def two_stage(runs: int, change: float = 0.0, seed: int = 0, threshold: float = 0.03) -> dict:
  """The command's design (upgrade.budget), simulated as `side_by_side` is: the first stage's budget.FIRST runs a
  side of every row judged at budget.LOOK_CONFIDENCE; each undecided row then runs to the runs its first-stage spread
  plans for +-`threshold` (budget.runs_for: an unlimited budget, the design's most adaptive case) and is judged again
  on all its runs; the rows read to move are rechecked in fresh runs, as many as they were judged on or as their
  spread plans for, whichever is more. The share of each exit status, how many
  rows a run left undecided, and the median row's bound."""
  rng, spread = np.random.default_rng(seed), measured_spread()
  most = budget.MAX_RUNS
  series = _series(rng, spread, runs, 4 * most)
  (ma, mb), (ra, rb) = _sides(series[..., : 2 * most]), _sides(series[..., 2 * most :])
  slowed = spread["keys"].index("train_step/jax-jit/b64")
  for b in (mb, rb):
    b[:, slowed] += np.log1p(change)
  first_n = command.VISITS
  low, high, est = verdict._welch(ma[..., :first_n], mb[..., :first_n], budget.LOOK_CONFIDENCE)
  stage1 = _decided(est, low, high, threshold)
  sd = np.sqrt((ma[..., :first_n].var(-1, ddof=1) + mb[..., :first_n].var(-1, ddof=1)) / 2)
  planned = np.vectorize(lambda s: budget.runs_for(s, threshold, first_n) or most)(sd)
  n = np.where(stage1 == "undecided", planned, first_n)
  final, again = stage1.copy(), np.full(stage1.shape, "undecided", dtype=object)
  bounds = np.zeros(stage1.shape)
  for k in np.unique(n):
    at = n == k
    low, high, est = verdict._welch(ma[..., :k][at], mb[..., :k][at], budget.LOOK_CONFIDENCE)
    final[at] = _decided(est, low, high, threshold)
    bounds[at] = np.maximum(np.abs(np.expm1(low)), np.abs(np.expm1(high)))
  recheck = np.maximum(n, planned)
  for k in np.unique(recheck):
    at = recheck == k
    low, high, est = verdict._welch(ra[..., :k][at], rb[..., :k][at], budget.LOOK_CONFIDENCE)
    again[at] = _decided(est, low, high, threshold)
  status = np.array([_exit(final[i], again[i]) for i in range(runs)])
  return {
    "runs": runs,
    **{name: float(np.mean(status == code)) for code, name in _STATUS.items()},
    "read_to_move": float(np.mean(np.isin(final, ["slower", "faster"]).any(axis=1))),
    "slowed_row_confirmed": float(np.mean((final[:, slowed] == "slower") & (again[:, slowed] == "slower"))),
    "undecided_rows": float(np.mean((final == "undecided").sum(axis=1))),
    "median_bound": float(np.median(bounds)),
    "mean_runs": float(n.mean()),
  }


def _decided(est: np.ndarray, low: np.ndarray, high: np.ndarray, threshold: float) -> np.ndarray:
  decide = np.vectorize(lambda e, lo, hi: verdict.decide(*np.expm1([e, lo, hi]), threshold), otypes=[object])
  return decide(est, low, high)


_STATUS = {0: "judged", 1: "regression", 3: "inconclusive"}


def _exit(first: np.ndarray, again: np.ndarray) -> int:
  """The command's exit status for one comparison's verdicts, as its Report decides it."""
  rows = []
  for k in range(ROWS):
    row = Row(f"row{k}", {"verdict": first[k]}, k >= ROWS - CONTROLS, False, (1.0, 1.0), [])
    recheck = Row(row.key, {"verdict": again[k]}, row.control, False, (1.0, 1.0), [])
    rows.append(row.rechecked(recheck) if row.read_to_move else row)
  same = {"versions": {"jax": "0.4.31"}}
  report = Report(
    a=Side("A"),
    b=Side("B"),
    same_sides=False,
    rows=rows,
    counts=[],
    versions=(same, same),
    visits=VISITS,
    wall_s=0.0,
    runs=([], []),
  )
  return report.exit_status


def baseline_spread(path: Path = BASELINE) -> dict[str, float]:
  """Each judged row of the committed baseline: the sd of its runs' statistics (verdict._moment_sd)."""
  pooled = baseline.Baseline.load(path)
  return {key: verdict._moment_sd(verdict.as_runs(runs)) for key, runs in pooled.samples.items()}


def _run(rng: np.random.Generator, level: float, visits: int, pairs: int) -> list[list[float]]:
  """One simulated run's log-ratios by visit: its `level` (its moment of the machine, and any change) and each pair's
  own noise (PAIR_SD)."""
  return [list(level + PAIR_SD * rng.standard_normal(pairs)) for _ in range(visits)]


def compare_run(runs: int, change: float = 0.0, seed: int = 0, base_runs: int = 3, family: bool = True) -> dict:
  """The share of `runs` simulated compare runs (every row of the committed baseline, `base_runs` runs of each)
  in which any row's fresh sample reads slower (an upper bound of the runs that fail), and the share in which row
  `train_step/jax-jit/b64`'s does, that row slowed by `change`. `family` False: each row at CONFIDENCE alone, no
  correction across rows (what the bound needs the correction against)."""
  rng, spread = np.random.default_rng(seed), baseline_spread()
  keys, slowed = sorted(spread), "train_step/jax-jit/b64"
  any_slower = row_slower = 0
  for _ in range(runs):
    drift = rng.uniform(-DRIFT, DRIFT)
    hits = []
    for key in keys:
      sd = spread[key]
      base = [_run(rng, sd * rng.standard_normal(), 1, 20) for _ in range(base_runs)]
      shift = drift + sd * rng.standard_normal() + (np.log1p(change) if key == slowed else 0.0)
      fresh = _run(rng, shift, 1, 20)
      hits.append(verdict.confirm(base, fresh, len(keys) if family else 1)["verdict"] == "slower")
    any_slower += any(hits)
    row_slower += hits[keys.index(slowed)]
  return {"runs": runs, "rows": len(keys), "any_row_slower": any_slower / runs, "jax_jit_slower": row_slower / runs}


def compare_run_before(runs: int, seed: int = 0, base_runs: int = 3) -> dict:
  """The rule before 2df4702, on the same simulated rows: a row failed on its own reading (`verdict.judge`, the
  baseline's moment drawn from a normal) once it had revisits, on the data that chose it. Its extra looks while
  undecided are left out, so this is a lower bound of how often it failed an unchanged run."""
  rng, spread = np.random.default_rng(seed), baseline_spread()
  normal = lambda runs_, resamples, rng_: verdict._moment_sd(runs_) * rng_.standard_normal(resamples)  # noqa: E731
  real, verdict._moments = verdict._moments, normal
  try:
    failed = 0
    for _ in range(runs):
      drift = rng.uniform(-DRIFT, DRIFT)
      for key in sorted(spread):
        sd = spread[key]
        base = [_run(rng, sd * rng.standard_normal(), 4, 10) for _ in range(base_runs)]  # 4 visits of 10 pairs
        now = _run(rng, drift + sd * rng.standard_normal(), 4, 10)
        if verdict.judge(base, now)["verdict"] == "slower":
          failed += 1
          break
  finally:
    verdict._moments = real
  return {"runs": runs, "rows": len(spread), "failed": failed / runs}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=4000, help="simulated comparisons (side by side)")
  parser.add_argument("--compare-runs", type=int, default=400, help="simulated compare runs")
  args = parser.parse_args()
  spread = measured_spread()
  print(
    f"measured: sd {np.round(spread['sd'], 4).tolist()}, across rows {spread['across']:.2f}, lag {spread['lag']:.2f}"
  )
  for change in (0.0, 0.05, 0.10):
    print(f"side by side, jax-jit slowed {change:.0%}: {side_by_side(args.runs, change)}")
  for change in (0.0, 0.05, 0.10):
    print(f"side by side in two stages (the command), jax-jit slowed {change:.0%}: {two_stage(args.runs, change)}")
  for change in (0.0, 0.10, 0.50):
    print(f"compare run, jax-jit slowed {change:.0%}: {compare_run(args.compare_runs, change)}")
  print(f"compare run, no correction across rows: {compare_run(args.compare_runs // 2, family=False)}")
  print(
    f"compare run, the rule before (a first reading after revisits fails): {compare_run_before(args.compare_runs // 4)}"
  )


if __name__ == "__main__":
  main()
