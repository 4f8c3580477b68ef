"""docs/results.md is the committed baseline rendered by the report command, not numbers typed by hand."""

from pathlib import Path

from mnist_models.bench import report
from mnist_models.bench.baseline import load_baseline

ROOT = Path(__file__).parents[1]
BASELINE = ".benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json"
REGENERATE = f"python -m mnist_models.bench.report {BASELINE} --out docs/results.md"


def test_results_page_is_the_committed_baseline_rendered():
  expected = report.run_markdown(load_baseline(ROOT / BASELINE), BASELINE)
  assert (ROOT / "docs" / "results.md").read_text() == expected, f"docs/results.md is stale; regenerate: {REGENERATE}"


def test_every_group_of_the_baseline_has_a_table():
  text = (ROOT / "docs" / "results.md").read_text()
  groups = {row["group"] for row in load_baseline(ROOT / BASELINE)["comparison"]["rows"]}
  assert groups and all(f"## {group} (reference:" in text for group in groups)


def test_a_missing_run_is_a_clear_error(tmp_path, capsys):
  assert report.main([str(tmp_path / "nope.json")]) == 2
  assert "no baseline at" in capsys.readouterr().err
