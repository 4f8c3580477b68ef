"""The results pages are committed runs rendered by the report command, not numbers typed by hand."""

from pathlib import Path

import pytest

from mnist_models.bench import report
from mnist_models.bench.baseline import load_baseline

ROOT = Path(__file__).parents[1]
BASELINE = ".benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json"
PAGES = {"docs/results.md": BASELINE, "docs/gpu.md": "docs/runs/h200.json"}  # page -> the saved run it shows


@pytest.mark.parametrize("page", list(PAGES))
def test_results_pages_are_their_saved_runs_rendered(page):
  expected = report.run_markdown(load_baseline(ROOT / PAGES[page]), PAGES[page], page)
  assert (ROOT / page).read_text() == expected, (
    f"{page} is stale; regenerate: python -m mnist_models.bench.report {PAGES[page]} --out {page}"
  )


def test_every_group_of_the_baseline_has_a_table():
  text = (ROOT / "docs" / "results.md").read_text()
  groups = {row["group"] for row in load_baseline(ROOT / BASELINE)["comparison"]["rows"]}
  assert groups and all(f"## {group} (reference:" in text for group in groups)


def test_a_missing_run_is_a_clear_error(tmp_path, capsys):
  assert report.main([str(tmp_path / "nope.json")]) == 2
  assert "no baseline at" in capsys.readouterr().err
