"""The results pages are committed runs rendered by the report command, not numbers typed by hand."""

from pathlib import Path

import pytest

from mnist_models.bench.baseline import load_baseline
from mnist_models.bench.results import report

ROOT = Path(__file__).parents[1]
BASELINE = ".benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json"
PAGES = {"docs/results.md": BASELINE, "docs/gpu.md": "docs/runs/h200.json"}  # page -> the saved run it shows


@pytest.mark.parametrize("page", list(PAGES))
def test_results_pages_are_their_saved_runs_rendered(page):
  expected = report.run_markdown(load_baseline(ROOT / PAGES[page]), PAGES[page], page)
  assert (ROOT / page).read_text() == expected, (
    f"{page} is stale; regenerate: python -m mnist_models.bench.results.report {PAGES[page]} --out {page}"
  )


def test_every_group_of_the_baseline_has_a_table():
  text = (ROOT / "docs" / "results.md").read_text()
  groups = {row["group"] for row in load_baseline(ROOT / BASELINE)["comparison"]["rows"]}
  assert groups and all(f"## {group} (reference:" in text for group in groups)


def test_a_missing_run_is_a_clear_error(tmp_path, capsys):
  assert report.main([str(tmp_path / "nope.json")]) == 2
  assert "no baseline at" in capsys.readouterr().err


def test_the_methodologys_quotes_of_the_baseline_are_its_numbers():
  rows = {
    (r["group"], r["variant"]): r["median"]
    for r in load_baseline(ROOT / BASELINE)["comparison"]["rows"]
    if r["batch_size"] == 64
  }

  def x(group, variant, ref):
    return f"{rows[group, variant] / rows[group, ref]:.2f}x"

  text = " ".join((ROOT / "docs" / "methodology.md").read_text().split())  # its line breaks aside
  quotes = [
    f"plain `jax.jit` takes {x('train_step', 'jax-jit-plain', 'jax-jit')} its time",
    f"`jax-jit-plain` takes {x('train_step', 'jax-jit-plain', 'jax-jit')} `jax-jit`'s time in the committed baseline",
    f"`torch-eager` {x('train_step', 'torch-eager', 'jax-jit')} and `torch-compile` "
    f"{x('train_step', 'torch-compile', 'jax-jit')} `jax-jit`; eval {x('eval_step', 'torch-eager', 'jax-jit')} and "
    f"{x('eval_step', 'torch-compile', 'jax-jit')}; epoch {x('epoch', 'torch-loop-eager', 'jax-loop')} and "
    f"{x('epoch', 'torch-loop-compile', 'jax-loop')} `jax-loop`; compile {rows['compile', 'torch-compile']:.1f} s "
    f"against `jax-jit`'s {rows['compile', 'jax-jit']:.1f} s",
  ]
  stale = [q for q in quotes if q not in text]
  assert not stale, f"docs/methodology.md quotes the committed baseline; say instead: {stale}"
