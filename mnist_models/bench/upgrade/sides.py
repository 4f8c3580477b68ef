"""The two sides of a side-by-side comparison (mnist_models.bench.upgrade): what a side is, where it runs, and one visit
to it (its environment is built by mnist_models.bench.upgrade.environments).

A side is written as one string of tokens: pins (`jax==0.4.33 jaxlib==0.4.33`), environment settings
(`XLA_FLAGS=--xla_cpu_use_thunk_runtime=false`, `TF_ENABLE_ONEDNN_OPTS=0`), a git revision of the project
(`@v0.1`, `@HEAD~3`), and after `--`, pytest arguments for that side only (`-- -p lab.slowdown`). A side
with neither pins nor a revision runs in this environment, on this checkout; otherwise in a virtual environment
built from the project's own files and the package index, cached under `.sides/` by what it installs (built
once; a build that did not finish is built again).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

CACHE = Path(".sides")  # relative to the project's root; ignored by git
_SETTING = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$", re.S)
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|<|>)")


class SideError(RuntimeError):
  """A side cannot be built, or its suite failed there; the message names the side and says why."""


@dataclasses.dataclass(frozen=True)
class Side:
  """One side: its name ('A' or 'B'), pins, settings, revision and pytest arguments (see the module's doc)."""

  name: str
  pins: tuple[str, ...] = ()
  settings: tuple[tuple[str, str], ...] = ()
  rev: str | None = None
  pytest_args: tuple[str, ...] = ()

  @classmethod
  def parse(cls, name: str, spec: str) -> Side:
    """The side `spec` writes; ValueError naming the side and the token that is neither a pin, a setting nor a
    revision, or the pin that names no version."""
    try:
      tokens = shlex.split(spec)
    except ValueError as e:
      raise ValueError(f"side {name}: {spec!r} cannot be split into tokens ({e}): close its quotes") from None
    ours, extra = (tokens[: tokens.index("--")], tokens[tokens.index("--") + 1 :]) if "--" in tokens else (tokens, [])
    pins, settings, revs = [], [], []
    for token in ours:
      if token.startswith("@") and len(token) > 1:
        revs.append(token[1:])
      elif m := _SETTING.match(token):
        settings.append((m[1], m[2]))
      elif _PIN.match(token):
        pins.append(_pin(name, token))
      else:
        raise ValueError(
          f"side {name}: {token!r} is neither a pin (jax==0.4.33), a setting (XLA_FLAGS=...) nor a git revision "
          "(@v0.1); pytest arguments go after --"
        )
    if len(revs) > 1:
      raise ValueError(f"side {name}: one revision at most, got {', '.join('@' + r for r in revs)}")
    return cls(name, tuple(sorted(pins)), tuple(sorted(settings)), revs[0] if revs else None, tuple(extra))

  def describe(self) -> str:
    """'jax==0.4.33 jaxlib==0.4.33; XLA_FLAGS=...; at @v0.1' ('this environment' for neither pins nor revision)."""
    parts = [" ".join(self.pins) or ("an environment of its own, unpinned" if self.rev else "this environment")]
    parts += [" ".join(f"{k}={v}" for k, v in self.settings)] if self.settings else []
    parts += [f"at @{self.rev}"] if self.rev else ["this checkout"]
    parts += [f"pytest {' '.join(self.pytest_args)}"] if self.pytest_args else []
    return "; ".join(parts)

  def same_as(self, other: Side, root: Path) -> bool:
    """Whether both sides install, set and run the same (revisions compared as commits)."""
    mine = (self.pins, self.settings, self.pytest_args, self.rev and commit(root, self.rev))
    return mine == (other.pins, other.settings, other.pytest_args, other.rev and commit(root, other.rev))

  @property
  def builds(self) -> bool:
    """Whether it needs an environment of its own (pins or a revision), rather than this one."""
    return bool(self.pins or self.rev)


@dataclasses.dataclass(frozen=True)
class Place:
  """Where a side runs: its interpreter and the project's checkout it runs in."""

  python: Path
  source: Path


def _pin(side: str, token: str) -> str:
  """`token` as a pin pip can hold every package to (a constraint): a name and a version, no extras, no marker."""
  if re.search(r"(==|>=|<=|~=|!=|<|>)\s*$", token):
    raise ValueError(f"side {side}: {token!r} names no version: write it as {token.rstrip('=<>!~ ')}==VERSION")
  try:
    req = Requirement(token)
  except InvalidRequirement as e:
    raise ValueError(f"side {side}: {token!r} is not a pin pip can read ({str(e).splitlines()[0]})") from None
  if req.extras or req.marker or req.url:
    raise ValueError(
      f"side {side}: {token!r}: a pin names a package and its version only (jax==0.4.33), no extras, marker or URL "
      "(pip's constraints cannot hold them)"
    )
  if not req.specifier or any(not spec.version for spec in req.specifier):
    raise ValueError(f"side {side}: {token!r} names no version: write {req.name}==VERSION")
  return str(req)


def commit(root: Path, rev: str) -> str:
  """The commit `rev` names in the repository at `root`; SideError if it names none."""
  out = subprocess.run(
    ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True, text=True
  )
  if out.returncode:
    raise SideError(f"@{rev} names no commit of {root}: give a branch, tag or commit (git log shows them)")
  return out.stdout.strip()


def visit(side: Side, place: Place, storage: Path, pytest_args: list[str]) -> Path:
  """One timed pytest run of the benchmarks on `side`, saved under `storage`; the saved run's path. SideError with
  the end of its output if its suite failed (nothing of it is then judged)."""
  before = set(storage.rglob(f"*_{side.name}.json"))
  done = _pytest(
    side,
    place,
    [*pytest_args, "--benchmark-only", f"--benchmark-storage=file://{storage}", f"--benchmark-save={side.name}"],
  )
  saved = sorted(set(storage.rglob(f"*_{side.name}.json")) - before)
  if done.returncode or len(saved) != 1:
    for path in saved:  # a failed visit's run is never judged, nor found on disk by a later judge
      path.unlink()
    raise SideError(
      f"side {side.name} ({side.describe()}): its benchmarks failed:\n{output_tail(done.stdout + done.stderr)}"
    )
  return saved[0]


def has_option(side: Side, place: Place, option: str) -> bool:
  """Whether the side's suite declares the pytest option `option` (an older revision may not), as its own pytest
  lists the options its plugins register (`--help`); a side on this checkout has what this one has."""
  if not side.rev:
    return True
  done = _pytest(side, place, ["--help"])
  return done.returncode == 0 and re.search(rf"^\s+{re.escape(option)}(?=[=\s,])", done.stdout, re.M) is not None


def record_counts(side: Side, place: Place, path: Path) -> Path:
  """The side's compile counts (tests/test_recompilation.py's scenarios, untimed), recorded into `path`."""
  done = _pytest(
    side,
    place,
    ["tests/test_recompilation.py", "--benchmark-disable", "--update-compile-counts", f"--compile-counts={path}"],
  )
  if done.returncode or not path.is_file():
    raise SideError(
      f"side {side.name} ({side.describe()}): its compile counts failed:\n{output_tail(done.stdout + done.stderr)}"
    )
  return path


def _pytest(side: Side, place: Place, args: list[str]) -> subprocess.CompletedProcess:
  """pytest on the side, in a session of its own: an outer pytest's worker variables are not passed on (under a
  pytest-xdist worker's PYTEST_XDIST_WORKER pytest-benchmark would disable timing)."""
  own = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}
  env = {**own, **dict(side.settings)}
  command = [str(place.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, *side.pytest_args]
  return subprocess.run(command, cwd=place.source, env=env, capture_output=True, text=True)


def output_tail(text: str, chars: int = 3000) -> str:
  """The end of a command's output, for an error message."""
  return text.strip()[-chars:]
