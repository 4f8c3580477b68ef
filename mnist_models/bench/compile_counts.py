"""Stored compile and trace counts: tests/compile_counts.json (today's pins; other pins' in files of their own,
--compile-counts), compared per scenario, re-recorded on request."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

COUNTS_FILE = Path("tests") / "compile_counts.json"  # relative to the suite's root
UPDATE_COMMAND = "pytest tests/test_recompilation.py --update-compile-counts"


class CountsFileError(ValueError):
  """The stored counts file is malformed; the message says how to restore or re-record it."""


def update_command(path: Path | str = COUNTS_FILE) -> str:
  """The command that re-records the counts stored in `path` (relative to the suite's root)."""
  return UPDATE_COMMAND if Path(path) == COUNTS_FILE else f"{UPDATE_COMMAND} --compile-counts={path}"


def load_stored_counts(path: Path, update: str = UPDATE_COMMAND) -> dict:
  """The checked-in counts ({} if there is no file yet), or a clear error (naming `update`, the command that
  re-records them) if the file is malformed."""
  try:
    stored = json.loads(path.read_text())
  except FileNotFoundError:
    return {}
  except json.JSONDecodeError as e:
    raise CountsFileError(f"{path} is not valid JSON ({e}); restore it with git or re-record: {update}") from e
  if not isinstance(stored, dict):
    raise CountsFileError(f"{path} must hold a JSON object of scenarios; re-record: {update}")
  return stored


def _numbers(entry: dict) -> dict:
  """The counts an entry holds: its integer fields, and by_function's, as 'by_function.train_step'."""
  out = {k: v for k, v in entry.items() if isinstance(v, int) and not isinstance(v, bool)}
  out.update({f"by_function.{k}": v for k, v in (entry.get("by_function") or {}).items()})
  return out


def count_changes(stored: dict, measured: dict) -> list[tuple[str, int, int]]:
  """(count, stored, measured) for every count that differs, e.g. ('by_function.relu', 0, 6): 0 where one lacks it."""
  before, after = _numbers(stored), _numbers(measured)
  return [
    (k, before.get(k, 0), after.get(k, 0))
    for k in sorted(before.keys() | after.keys())
    if before.get(k, 0) != after.get(k, 0)
  ]


def _describe(changes: list[tuple[str, int, int]]) -> str:
  return ", ".join(f"{k} {a} -> {b}" for k, a, b in changes)


def update_counts(path: Path, recorded: dict, is_obsolete: Callable[[dict], bool]) -> list[str]:
  """Writes this session's counts over the stored ones, drops the stored scenarios whose entry `is_obsolete`
  (unless recorded again); returns what changed.

  Scenarios stored but neither recorded nor obsolete (their tests did not run) are kept, and said so.
  """
  stored = load_stored_counts(path)
  obsolete = {name for name, entry in stored.items() if is_obsolete(entry)}
  merged = {k: v for k, v in {**stored, **recorded}.items() if k not in obsolete - recorded.keys()}
  lines, kept = [], sorted(stored.keys() - recorded.keys() - obsolete)
  for name in sorted(stored.keys() | recorded.keys()):
    if name not in recorded:
      if name in obsolete:
        lines.append(f"deleted {name} (its test no longer records it)")
    elif name not in stored:
      lines.append(f"new     {name}: " + ", ".join(f"{k} {v}" for k, v in _numbers(recorded[name]).items()))
    elif changes := count_changes(stored[name], recorded[name]):
      lines.append(f"changed {name}: {_describe(changes)}")
  if kept:
    lines.append(f"kept    {len(kept)} scenario{'s' * (len(kept) > 1)} whose test did not run: {', '.join(kept)}")
  path.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")
  return lines


def compare_counts(scenario: str, stored: dict | None, measured: dict, update_command: str) -> str | None:
  """None if `measured` has the stored entry's counts, else a message that says what changed and what to do.

  Args:
    scenario: the entry's name.
    stored: the checked-in entry ({'compiles': n, 'traces': n, 'by_function': {...}, ...}), or None.
    measured: this run's entry: every integer field is a count, and so is every by_function entry.
    update_command: the command that records new counts, quoted in the message.
  """
  if stored is None:
    return f"no stored counts for scenario {scenario!r}; record them with: {update_command}"
  keys = sorted(k for k in _numbers(measured) if not k.startswith("by_function."))
  if any(not isinstance(stored.get(k), int) for k in keys) or not isinstance(stored.get("by_function", {}), dict):
    return (
      f"stored entry for {scenario!r} is malformed (needs integer {', '.join(keys)}): {stored}; "
      f"re-record with: {update_command}"
    )
  changes = count_changes(stored, measured)
  if any(after > before for _, before, after in changes):
    return f"recompilation regression in {scenario!r}: {_describe(changes)} (more than stored)"
  if changes:
    return (
      f"{scenario!r} now compiles less than stored ({_describe(changes)}): an improvement; "
      f"record it with: {update_command}"
    )
  return None


@dataclasses.dataclass
class CountsRecorder:
  """A session's compile-count checks: what each test measured, which tests ran and passed, and what an update
  (--update-compile-counts) changed in the stored file."""

  update: bool = False
  stored_file: Path = COUNTS_FILE  # relative to the suite's root: today's pins' file, or --compile-counts
  recorded: dict = dataclasses.field(default_factory=dict)  # scenario -> its entry, with the test that made it
  collected: set = dataclasses.field(default_factory=set)  # every test collected, before -k and -m deselect
  passed: set = dataclasses.field(default_factory=set)
  differ: list = dataclasses.field(default_factory=list)  # the scenarios whose counts differ from the stored ones
  changes: list[str] | None = None  # what the update changed; None before one

  @property
  def update_command(self) -> str:
    return update_command(self.stored_file)

  def load(self, root: Path) -> dict:
    """The stored counts this session checks; CountsFileError if the file is malformed."""
    return load_stored_counts(root / self.stored_file, self.update_command)

  def check(self, stored: dict, scenario: str, entry: dict, test: str) -> str | None:
    """Records `entry`, measured by `test`; unless updating, what differs from the `stored` counts (None if nothing)."""
    self.recorded[scenario] = {**entry, "test": test}
    if self.update:
      return None
    problem = compare_counts(scenario, stored.get(scenario), entry, self.update_command)
    if problem:
      self.differ.append(scenario)
    return problem

  def write(self, root: Path) -> None:
    """Writes the recorded counts into the stored file under `root`; drops a stored scenario whose test ran and
    passed without recording it, or is gone."""
    if self.recorded:
      self.changes = update_counts(root / self.stored_file, self.recorded, self._is_obsolete)

  def _is_obsolete(self, entry: dict) -> bool:
    test, files = entry.get("test"), {nodeid.split("::")[0] for nodeid in self.collected}
    return test in self.passed or (str(test).split("::")[0] in files and test not in self.collected)
