"""Stored compile and trace counts: tests/compile_counts.json, compared per scenario, re-recorded on request."""

from __future__ import annotations

import json
from pathlib import Path

COUNTS_FILE = Path("tests") / "compile_counts.json"  # relative to the suite's root
UPDATE_COMMAND = "pytest tests/test_recompilation.py --update-compile-counts"


class CountsFileError(ValueError):
  """The stored counts file is malformed; the message says how to restore or re-record it."""


def load_stored_counts(path: Path) -> dict:
  """The checked-in counts ({} if there is no file yet), or a clear error if the file is malformed."""
  try:
    stored = json.loads(path.read_text())
  except FileNotFoundError:
    return {}
  except json.JSONDecodeError as e:
    raise CountsFileError(f"{path} is not valid JSON ({e}); restore it with git or re-record: {UPDATE_COMMAND}") from e
  if not isinstance(stored, dict):
    raise CountsFileError(f"{path} must hold a JSON object of scenarios; re-record: {UPDATE_COMMAND}")
  return stored


def record_counts(path: Path, recorded: dict) -> None:
  """Writes this session's counts over the stored ones (other scenarios kept), sorted by name."""
  merged = {**load_stored_counts(path), **recorded}
  path.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")


def compare_counts(scenario: str, stored: dict | None, measured: dict, update_command: str) -> str | None:
  """None if `measured` equals the stored entry, else a message that says what changed and what to do.

  Args:
    scenario: the entry's name.
    stored: the checked-in entry ({'compiles': n, 'traces': n, ...}), or None if there is none.
    measured: this run's entry, same keys.
    update_command: the command that records new counts, quoted in the message.
  """
  if stored is None:
    return f"no stored counts for scenario {scenario!r}; record them with: {update_command}"
  keys = ("compiles", "traces")
  if any(not isinstance(stored.get(k), int) for k in keys):
    return f"stored entry for {scenario!r} is malformed (needs integer {keys}): {stored}; re-record with: {update_command}"
  more = [k for k in keys if measured[k] > stored[k]]
  fewer = [k for k in keys if measured[k] < stored[k]]
  changes = ", ".join(f"{k} {stored[k]} -> {measured[k]}" for k in keys if measured[k] != stored[k])
  if more:
    return f"recompilation regression in {scenario!r}: {changes} (more than stored)"
  if fewer:
    return (f"{scenario!r} now compiles less than stored ({changes}): an improvement; record it with: {update_command}")
  return None
