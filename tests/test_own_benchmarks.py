"""The worked example of docs/own-benchmarks.md, run as written: a model of one's own, timed and judged.

Its two files are taken from the page's code blocks (each names its file on its first line), so the page
cannot drift from what works. Inner pytest runs (pytester, in this process, unpinned) time them.
"""

import json
import re
from pathlib import Path

import pytest
import threadpoolctl
from inner_runs import TIMED

from mnist_models.bench import verdict
from mnist_models.bench.plugin import INCONCLUSIVE

PAGE = Path(__file__).parents[1] / "docs" / "own-benchmarks.md"
ARGS = (*TIMED, "--verdict-busy-cpus=1000")  # judged however busy (the busy rule has a test of its own)


def _files() -> dict[str, str]:
  """file name -> its code, for every Python block of the page that starts with '# NAME.py'."""
  blocks = re.findall(r"^```python\n# (\S+\.py)\n(.*?)^```", PAGE.read_text(), re.S | re.M)
  return dict(blocks)


@pytest.fixture
def example(pytester, monkeypatch):
  """The page's files in an inner run's folder; a fifth of a second of pairs a benchmark (a real run takes 2 s), and
  one BLAS thread for the yardstick, as a timed run has (tests/test_verdict_wiring.py says why)."""
  monkeypatch.setattr(verdict, "TARGET_S", 0.2)
  monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
  files = _files()
  assert sorted(files) == ["conftest.py", "test_bench_mlp.py"]
  for name, code in files.items():
    (pytester.path / name).write_text(code)
  with threadpoolctl.threadpool_limits(1):
    yield pytester


def test_a_benchmark_of_ones_own_gets_paired_timings_a_fingerprint_a_ratio_and_verdicts_in_its_declared_group(example):
  base = example.runpytest_inprocess(*ARGS, "--benchmark-json=base.json")
  base.assert_outcomes(passed=2)
  doc = json.loads((example.path / "base.json").read_text())
  saved = {b["extra_info"]["variant"]: b["extra_info"] for b in doc["benchmarks"]}
  assert saved["mlp-jit"]["fingerprint"]["ops"] and "fingerprint" not in saved["mlp-nojit"]
  assert len(saved["mlp-jit"]["paired"]["visits"]) == 1 + verdict.REVISITS  # its test's pairs, then the revisits
  assert all(info["paired"]["log_ratios"] and info["gflops"] > 0 for info in saved.values())
  ratios = {r["variant"]: r["ratio"] for r in doc["comparison"]["rows"]}
  assert doc["comparison"]["reference"]["mlp"] == "mlp-jit" and ratios["mlp-jit"] == 1.0 and ratios["mlp-nojit"] > 1
  # A wide threshold: this is about the wiring (a declared group is judged), not about how noisy a 1 ms step is.
  judged = example.runpytest_inprocess(*ARGS, "--verdict-baseline=base.json", "--verdict-threshold=0.9")
  judged.assert_outcomes(passed=2)
  # every timing judged and none slower (exit 0), or a row left undecided (exit 6): mlp-nojit's 8 pairs, 2 a visit,
  # on a machine the other test process keeps busy
  assert judged.ret in (pytest.ExitCode.OK, INCONCLUSIVE), judged.stdout.str()[-2000:]
  judged.stdout.fnmatch_lines(
    [
      "*verdicts: * slower, *",
      "*fingerprints: 1 compiled programs compared with the baseline's, 0 changed*",
      "*no regression*",
    ]
  )
  lines = judged.stdout.lines
  assert all(any(line.startswith(f"  mlp/{v}/b64 ") for line in lines) for v in saved)  # a verdict each, any order
  (example.path / "conftest.py").unlink()  # the group undeclared: its samples are no judged group's
  undeclared = example.runpytest_inprocess(*ARGS, "--verdict-baseline=base.json")
  assert undeclared.ret == pytest.ExitCode.USAGE_ERROR
  undeclared.stderr.fnmatch_lines(["*base.json has no paired timing samples of a judged group*pytest_bench_groups*"])
