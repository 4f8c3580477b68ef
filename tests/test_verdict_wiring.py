"""The verdicts wired into pytest: a benchmark made slower fails against its own baseline; unchanged, it does not.

Inner pytest runs (pytester, in this process, unpinned) time a chosen number of matmuls, save a
baseline, then judge runs against it.
"""

import json

import pytest
import threadpoolctl
from inner_runs import PLUGIN, TIMED

from mnist_models.bench import verdict
from mnist_models.bench.plugin import INCONCLUSIVE

BENCHMARK = """
import os
import numpy as np
import pytest
import mnist_models as mm
from mnist_models.bench import Workload

@pytest.mark.benchmark(group="train_step")
def test_work(timed):
  batch = mm.one_batch(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32))
  a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
  repeats, losses = int(os.environ["REPEATS"]), iter(np.linspace(2.0, 1.0, 100_000))

  def work():  # the yardstick's own kind of work, so that a busy machine slows both alike
    for _ in range(repeats):
      a @ a
    return next(losses)
  timed(work, workload=Workload.train(batch), framework="jax", variant="jax-jit", rates=False)
"""
# Judged however busy the machine is (a neighbour, or another xdist process): the busy rule has a test of its own.
ARGS = (*TIMED, "--verdict-busy-cpus=1000")


@pytest.fixture(autouse=True)
def _one_blas_thread():
  """One BLAS thread for work and yardstick, as a timed run has: with two, a busy other core makes every
  matmul wait for its second thread, and the inner runs' drift then swamps even a 2x change."""
  with threadpoolctl.threadpool_limits(1):
    yield


@pytest.fixture(autouse=True)
def _short_targets(monkeypatch):
  """Half a second of pairs a benchmark (4x fewer than a real run): a 2x change needs no more."""
  monkeypatch.setattr(verdict, "TARGET_S", 0.5)


@pytest.fixture(autouse=True)
def _no_ci_summary(monkeypatch):
  """Inner runs write no Markdown unless a test asks (and never into a real CI job's summary)."""
  monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def work_baseline(pytester, monkeypatch):
  """An inner run saved as a baseline: 2 matmuls a round, each round paired with the yardstick (1 matmul), in visits."""
  pytester.makepyfile(test_work=BENCHMARK)
  monkeypatch.setenv("REPEATS", "2")
  result = pytester.runpytest_inprocess(*ARGS, "--benchmark-json=base.json")
  result.assert_outcomes(passed=1)
  doc = json.loads((pytester.path / "base.json").read_text())
  assert len(doc["benchmarks"][0]["extra_info"]["paired"]["log_ratios"]) >= 5
  return pytester.path / "base.json"


@pytest.fixture
def pooled_baseline(pytester, monkeypatch, work_baseline):
  """Three inner runs saved as one baseline (0001-0003_base.json, pooled as runs of one clean commit): a fresh
  sample confirms a slowdown only against a baseline whose runs show how far a run moves (verdict.confirm)."""
  paths = [pytester.path / "0001_base.json"]
  work_baseline.rename(paths[0])
  for i in (2, 3):
    result = pytester.runpytest_inprocess(*ARGS, f"--benchmark-json=000{i}_base.json")
    result.assert_outcomes(passed=1)
    paths.append(pytester.path / f"000{i}_base.json")
  for path in paths:  # pytester's folder is no git checkout: the runs are given one clean commit
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "commit_info": {"id": "0" * 40, "dirty": False}}))
  return paths[0]


def test_a_benchmark_made_twice_as_slow_fails_naming_it_and_heads_the_ci_summary(
  pytester, monkeypatch, pooled_baseline
):
  """GitHub's job summary ($GITHUB_STEP_SUMMARY, appended to) and --bench-summary get the same Markdown."""
  github = pytester.path / "step_summary.md"
  github.write_text("an earlier step's summary\n")
  monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(github))
  monkeypatch.setenv("REPEATS", "4")
  result = pytester.runpytest_inprocess(
    *ARGS, f"--verdict-baseline={pooled_baseline}", "--benchmark-json=slow.json", "--bench-summary=run.md"
  )
  assert result.ret == pytest.ExitCode.TESTS_FAILED  # the test passed; the run fails on the confirmed regression
  result.stdout.fnmatch_lines(
    [
      "*train_step/jax-jit/b2 * slower by*pairs in * visits vs * in 12 of 3 runs*",
      "*REGRESSIONS: train_step/jax-jit/b2 (slower, confirmed)*",
    ]
  )
  saved = json.loads((pytester.path / "slow.json").read_text())["benchmarks"][0]["extra_info"]
  # judged at the session's end on its test's pairs and 3 revisits (more while a busy machine leaves it undecided),
  # all saved
  visits = saved["verdict"]["visits"]
  assert saved["verdict"]["verdict"] == "slower" and visits == len(saved["paired"]["visits"]) >= 1 + verdict.REVISITS
  assert sum(saved["paired"]["visits"]) == len(saved["paired"]["log_ratios"]) == saved["verdict"]["pairs"]
  assert saved["verdict"]["recheck"]["verdict"] == "slower"  # it fails only once a fresh sample reads it so too
  earlier, appended = github.read_text().split("\n", 1)
  assert earlier == "an earlier step's summary" and appended == (pytester.path / "run.md").read_text()
  assert appended.startswith("### mnist-bench: 1 regression(s)\n\n- **train_step/jax-jit/b2 (slower, confirmed)**\n")
  assert "verdicts vs" in appended and "1 slower" in appended
  assert "| train_step | `jax-jit` | 2 |" in appended and "slower +" in appended.split("| train_step |")[1]


def test_a_baseline_timed_beside_a_busy_neighbour_judges_nothing_it_says_so(pytester, monkeypatch, work_baseline):
  """Timing verdicts are information only when either run was busy: here the baseline's, as if another process
  had kept a CPU busy while it was made (what the meter saves is tests/test_timing.py's)."""
  doc = json.loads(work_baseline.read_text())
  paired = doc["benchmarks"][0]["extra_info"]["paired"]
  assert paired["others_cpu"] is not None and paired["others_cpu"] >= 0  # measured and saved
  paired["others_cpu"] = 0.9
  work_baseline.write_text(json.dumps(doc))
  monkeypatch.setenv("REPEATS", "4")  # twice as slow: a regression on a quiet machine
  result = pytester.runpytest_inprocess(*ARGS[:-1], f"--verdict-baseline={work_baseline}", "--benchmark-json=busy.json")
  result.assert_outcomes(passed=1)
  assert result.ret == INCONCLUSIVE  # not "passed": whether it is slower is not known
  result.stdout.fnmatch_lines(
    [
      "*BUSY MACHINE: other processes took more than 0.25 CPUs while 1 benchmarks were timed*",
      "*train_step/jax-jit/b2 * slower by*information only:*busy machine: other processes "
      "took 0.90 CPUs while the baseline's runs timed it*",
      "*INCONCLUSIVE (exit 6): no regression confirmed, but not known for information only (busy machine: *"
      "train_step/jax-jit/b2*",
    ]
  )
  saved = json.loads((pytester.path / "busy.json").read_text())["benchmarks"][0]["extra_info"]["verdict"]
  assert (
    saved["verdict"] == "slower"
    and saved["judged"] is False
    and saved["busy"]
    and "busy machine" in saved["not_judged"]
  )


def test_against_another_hosts_baseline_nothing_more_is_timed_and_the_run_is_inconclusive(
  pytester, monkeypatch, work_baseline
):
  """Its timings are information only whatever they read: no extra visits are spent on them (they take a compare
  run to its cap), and the run says it does not know."""
  doc = json.loads(work_baseline.read_text())
  doc["machine_info"]["host"] = "another-host"
  work_baseline.write_text(json.dumps(doc))
  # a threshold no interval fits in: every verdict stays undecided, as most do against another host's 3 runs
  result = pytester.runpytest_inprocess(
    *ARGS, f"--verdict-baseline={work_baseline}", "--verdict-threshold=0.001", "--benchmark-json=other.json"
  )
  assert result.ret == INCONCLUSIVE
  result.stdout.fnmatch_lines(["*INCONCLUSIVE (exit 6)*information only (baseline made on another machine*"])
  saved = json.loads((pytester.path / "other.json").read_text())["benchmarks"][0]["extra_info"]
  assert len(saved["paired"]["visits"]) == 1 + verdict.REVISITS  # its test's visit and the revisits, no more


INTERRUPTED = """
def test_zz_interrupted(benchmark):
  benchmark(lambda: None)
  raise KeyboardInterrupt  # Ctrl-C before the session's end
"""


def test_an_interrupted_run_is_saved_as_incomplete_and_refused_as_a_baseline(pytester, monkeypatch):
  pytester.makepyfile(test_work=BENCHMARK, test_zz=INTERRUPTED)
  monkeypatch.setenv("REPEATS", "2")
  result = pytester.runpytest_inprocess(*ARGS, "--benchmark-json=0001_baseline.json", no_reraise_ctrlc=True)
  assert result.ret == pytest.ExitCode.INTERRUPTED
  saved = json.loads((pytester.path / "0001_baseline.json").read_text())
  session = saved["session"]
  assert (session["exit_status"], session["complete"]) == (2, False)
  assert session["test_seconds"]["test_work.py::test_work"] > 0  # what running it cost: the upgrade command's budget
  assert len(saved["benchmarks"][0]["extra_info"]["paired"]["visits"]) == 1  # no revisits after the interrupt
  result = pytester.runpytest_inprocess(*ARGS, "--verdict-baseline=0001_baseline.json", "test_work.py")
  assert result.ret == pytest.ExitCode.USAGE_ERROR
  result.stderr.fnmatch_lines(["*0001_baseline.json was saved by a run that did not finish cleanly (exit 2*"])


def test_a_benchmark_the_baseline_does_not_have_leaves_the_run_inconclusive(pytester, monkeypatch, work_baseline):
  doc = json.loads(work_baseline.read_text())
  doc["benchmarks"][0]["extra_info"]["variant"] = "jax-renamed"  # the baseline knows it under another name
  work_baseline.write_text(json.dumps(doc))
  result = pytester.runpytest_inprocess(*ARGS, f"--verdict-baseline={work_baseline}")
  assert result.ret == INCONCLUSIVE
  result.stdout.fnmatch_lines(
    ["*INCONCLUSIVE (exit 6)*not in the baseline (no samples to judge against): train_step/jax-jit/b2*"]
  )


@pytest.mark.parametrize(
  "args, match",
  [
    (("--verdict-threshold=-0.1",), "*--verdict-threshold must be a fraction between 0 and 1*"),
    (("--verdict-busy-cpus=-1",), "*--verdict-busy-cpus must be a number of CPUs, 0 or more, got -1.0*"),
    (("--benchmark-disable", "--verdict-baseline=base.json"), "*--benchmark-disable times nothing*"),
    (("--bench-pairs-scale=0",), "*--bench-pairs-scale must be a factor above 0 and at most 10*got 0.0"),
  ],
  ids=["negative-threshold", "negative-busy-cpus", "verdict-without-timing", "no-pairs"],
)
def test_options_that_would_judge_nothing_are_refused(pytester, args, match):
  pytester.makepyfile(test_work=BENCHMARK)
  result = pytester.runpytest_inprocess(*PLUGIN, *args)
  assert result.ret == pytest.ExitCode.USAGE_ERROR
  result.stderr.fnmatch_lines([match])


def test_the_pairs_scale_takes_that_share_of_a_benchmarks_pairs(pytester, monkeypatch):
  """Side by side takes many short runs (--bench-pairs-scale=0.25): a quarter of the pairs, in the same visits."""
  pytester.makepyfile(test_work=BENCHMARK)
  monkeypatch.setenv("REPEATS", "2")
  # a pair's cost fixed, as a quiet machine measures it: beside other tests one run's estimate may be twice another's
  monkeypatch.setattr("mnist_models.bench.timed.seconds_per_pair", lambda fn, yardstick: 0.004)
  pairs = {}
  for scale in (1, 0.25):
    result = pytester.runpytest_inprocess(*ARGS, f"--bench-pairs-scale={scale}", f"--benchmark-json=s{scale}.json")
    result.assert_outcomes(passed=1)
    paired = json.loads((pytester.path / f"s{scale}.json").read_text())["benchmarks"][0]["extra_info"]["paired"]
    pairs[scale] = (len(paired["log_ratios"]), len(paired["visits"]))
  assert pairs[1][1] == pairs[0.25][1] == 1 + verdict.REVISITS
  assert 0.2 < pairs[0.25][0] / pairs[1][0] < 0.3  # a quarter, as the pairs' sizing rounds
