"""The two sides of a side-by-side comparison (mnist_models.bench.upgrade): what a side is, its virtual environment,
and one visit to it.

A side is written as one string of tokens: pins (`jax==0.4.33 jaxlib==0.4.33`), environment settings
(`XLA_FLAGS=--xla_cpu_use_thunk_runtime=false`, `TF_ENABLE_ONEDNN_OPTS=0`), a git revision of the project
(`@v0.1`, `@HEAD~3`), and after `--`, pytest arguments for that side only (`-- -p lab.slowdown`). A side
with neither pins nor a revision runs in this environment, on this checkout; otherwise in a virtual environment
built from the project's own files and the package index, cached under `.sides/` by what it installs (built
once; a build that did not finish is built again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
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


# Known upstream incompatibilities that a package's metadata does not state: where a side pins the first package
# within the range, the second constraint is added, so that pip does not pick a release that cannot import.
KNOWN_CONSTRAINTS = (
  # flax 0.10.4 imports jax.sharding.AbstractMesh, first in jax 0.4.32, while its metadata accepts jax 0.4.27
  ("jax", "<0.4.32", "flax<0.10.4"),
)
_MARKER = ".complete"  # written into a worktree once `git worktree add` finished


def constraints(side: Side) -> list[str]:
  """What pip holds every package of the side's environment to: its pins, and KNOWN_CONSTRAINTS' additions where a
  pin falls in their range."""
  pinned = {Requirement(pin).name.lower(): Requirement(pin).specifier for pin in side.pins}
  added = [
    extra
    for name, versions, extra in KNOWN_CONSTRAINTS
    if name in pinned
    and Requirement(extra).name.lower() not in pinned
    and all(
      Requirement(f"x{versions}").specifier.contains(spec.version) for spec in pinned[name] if spec.operator == "=="
    )
    and any(spec.operator == "==" for spec in pinned[name])
  ]
  return [*side.pins, *added]


def prepare(side: Side, root: Path, cache: Path | None = None) -> Place:
  """The side's interpreter and checkout: this ones, or a worktree of its revision and a virtual environment with
  the project and its pins installed (built once per key, under `cache`, by one process at a time). SideError with
  pip's message if the pins cannot be installed together, or the side's suite cannot even be collected there."""
  if not side.builds:
    return Place(Path(sys.executable), root)
  cache = _cache(root, cache)
  source = _worktree(root, commit(root, side.rev), cache) if side.rev else root
  venv = cache / f"venv-{_key(side, source)}"
  with _locked(venv.with_suffix(".lock")):
    if not (venv / ".ready").is_file():
      _build(side, venv, source)
  return Place(venv / "bin" / "python", source)


def _key(side: Side, source: Path) -> str:
  """What an environment is built from: the pins (and their additions), the checkout and its pyproject, and the
  interpreter that builds it."""
  parts = [*constraints(side), str(source), (source / "pyproject.toml").read_text(), sys.executable, sys.version]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(path: Path):
  """Holds an exclusive lock on `path` (made if needed): one build of an environment at a time, across threads and
  processes (two commands may share `.sides/`)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def prepare_all(sides: list[Side], root: Path, cache: Path | None = None) -> list[Place]:
  """Each side's place (`prepare`): the checkouts one after another (git locks its worktrees), then the environments
  to build all at once (pip waits on the disk as much as on a CPU; the two sides of a 2-core machine build in about
  the time of one), each built once where sides share one (the same pins on one commit, however it is named).
  Before anything is timed."""
  for side in sides:
    if side.rev:
      _worktree(root, commit(root, side.rev), _cache(root, cache))
  same = {_identity(s, root): s for s in reversed(sides)}  # the first side of each environment builds it
  with ThreadPoolExecutor(max_workers=len(same)) as pool:
    built = dict(zip(same, pool.map(lambda s: prepare(s, root, cache), same.values()), strict=True))
  return [built[_identity(s, root)] for s in sides]


def _identity(side: Side, root: Path) -> tuple:
  return (side.pins, side.rev and commit(root, side.rev))


def _cache(root: Path, cache: Path | None) -> Path:
  return (cache or root / CACHE).resolve()


def _worktree(root: Path, sha: str, cache: Path) -> Path:
  """A checkout of commit `sha`, under `cache`; made again where an earlier one did not finish."""
  path = cache / f"src-{sha[:12]}"
  with _locked(cache / f"src-{sha[:12]}.lock"):
    if not (path / _MARKER).is_file():
      shutil.rmtree(path, ignore_errors=True)
      subprocess.run(["git", "-C", str(root), "worktree", "prune"], check=False)
      done = subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", "--force", str(path), sha],
        capture_output=True,
        text=True,
      )
      if done.returncode:
        raise SideError(f"cannot check out {sha[:12]} for a side: git says: {done.stderr.strip()[-800:]}")
      (path / _MARKER).write_text(sha + "\n")
  return path


def _build(side: Side, venv: Path, source: Path) -> None:
  """A fresh virtual environment with the project (and its test extra) installed under `constraints(side)`, which
  hold for every package pip installs (as tox's constrain_package_deps); marked ready only once it is complete and
  the side's suite can be collected there. The project is installed from a wheel built from a copy of `source`,
  so that the checkout is left as it was (no build/ or egg-info in it) and two builds never share a build folder."""
  shutil.rmtree(venv, ignore_errors=True)
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  pins = venv / "constraints.txt"
  pins.write_text("\n".join(constraints(side)) + "\n")
  pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
  with tempfile.TemporaryDirectory() as scratch:
    wheel = _wheel(source, Path(scratch))
    done = subprocess.run([*pip, f"{wheel}[test]", *side.pins, "-c", str(pins)], capture_output=True, text=True)
  if done.returncode:
    shutil.rmtree(venv, ignore_errors=True)
    raise SideError(
      f"side {side.name} ({side.describe()}) cannot be installed; pip says:\n{_tail(done.stderr or done.stdout)}"
    )
  _check_imports(side, venv, source)
  (venv / ".ready").write_text(side.describe() + "\n")


def _wheel(source: Path, scratch: Path) -> Path:
  """The project's wheel, built from a copy of `source`'s files (without its environments, caches and git)."""
  copy = scratch / "src"
  shutil.copytree(
    source,
    copy,
    ignore=shutil.ignore_patterns(
      ".git", ".venv", ".sides", ".tox", "build", "*.egg-info", "__pycache__", ".benchmarks"
    ),
  )
  built = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "wheel",
      "-q",
      "--no-deps",
      "--disable-pip-version-check",
      "-w",
      str(scratch),
      str(copy),
    ],
    capture_output=True,
    text=True,
  )
  wheels = list(scratch.glob("*.whl"))
  if built.returncode or len(wheels) != 1:
    raise SideError(f"cannot build the project from {source}; pip says:\n{_tail(built.stderr or built.stdout)}")
  return wheels[0]


def _check_imports(side: Side, venv: Path, source: Path) -> None:
  """SideError naming what cannot be imported where the side's environment cannot import the suite's packages (a
  release pip picked that needs a newer one: pin it)."""
  code = "import jax, flax, optax, mnist_models"
  done = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=source, capture_output=True, text=True)
  if done.returncode:
    shutil.rmtree(venv, ignore_errors=True)
    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise SideError(
      f"side {side.name} ({side.describe()}) installs, but cannot import the suite: {last}; pin the package it "
      f"names to a release that works with the side's pins (pip installed: {_installed(venv)})"
    )


def _installed(venv: Path) -> str:
  out = subprocess.run(
    [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze", "-q"], capture_output=True, text=True
  )
  keep = ("jax", "jaxlib", "flax", "optax", "tensorflow", "keras", "numpy", "ml-dtypes", "ml_dtypes")
  return ", ".join(line for line in out.stdout.split() if line.split("==")[0].lower() in keep)


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
    raise SideError(f"side {side.name} ({side.describe()}): its benchmarks failed:\n{_tail(done.stdout + done.stderr)}")
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
      f"side {side.name} ({side.describe()}): its compile counts failed:\n{_tail(done.stdout + done.stderr)}"
    )
  return path


def _pytest(side: Side, place: Place, args: list[str]) -> subprocess.CompletedProcess:
  """pytest on the side, in a session of its own: an outer pytest's worker variables are not passed on (under a
  pytest-xdist worker's PYTEST_XDIST_WORKER pytest-benchmark would disable timing)."""
  own = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}
  env = {**own, **dict(side.settings)}
  command = [str(place.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, *side.pytest_args]
  return subprocess.run(command, cwd=place.source, env=env, capture_output=True, text=True)


def _tail(text: str, chars: int = 3000) -> str:
  return text.strip()[-chars:]
