"""Stored compile/trace counts: each scenario's counts are checked against tests/compile_counts.json."""

import json
from pathlib import Path

import jax
import pytest

import mnist_models as mm

COUNTS_FILE = Path(__file__).with_name("compile_counts.json")
UPDATE_COMMAND = "pytest tests/test_recompilation.py --update-compile-counts"


def load_stored_counts(path: Path = COUNTS_FILE) -> dict:
  """The checked-in counts, or a clear error if the file is missing or malformed."""
  try:
    stored = json.loads(path.read_text())
  except FileNotFoundError:
    return {}
  except json.JSONDecodeError as e:
    raise pytest.UsageError(f"{path} is not valid JSON ({e}); restore it with git or re-record: {UPDATE_COMMAND}")
  if not isinstance(stored, dict):
    raise pytest.UsageError(f"{path} must hold a JSON object of scenarios; re-record: {UPDATE_COMMAND}")
  return stored


@pytest.fixture(scope="session")
def _recorded(request):
  """Counts measured this session; written to COUNTS_FILE at the end when updating."""
  recorded = {}
  yield recorded
  if request.config.getoption("--update-compile-counts") and recorded:
    merged = {**load_stored_counts(), **recorded}
    COUNTS_FILE.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")


@pytest.fixture
def check_counts(request, _recorded):
  """check_counts(scenario, measured_entry): fail if it differs from the stored entry (or record it)."""
  stored = load_stored_counts()

  def check(scenario: str, entry: dict, report: str = "") -> None:
    _recorded[scenario] = entry
    if request.config.getoption("--update-compile-counts"):
      return
    problem = mm.compare_counts(scenario, stored.get(scenario), entry, UPDATE_COMMAND)
    if problem:
      pytest.fail(f"{problem}\n{report}", pytrace=False)

  return check


@pytest.fixture
def cold_jax():
  """Empties jax's compilation caches, so a scenario counts the same whatever ran before it."""
  jax.clear_caches()

