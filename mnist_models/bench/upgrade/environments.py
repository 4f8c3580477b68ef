"""A side's place to run (mnist_models.bench.upgrade.sides): its checkout of a revision and its virtual environment,
built from the project's own files and the package index, cached under `.sides/` by what it installs (built once, by
one process at a time; a build that did not finish is built again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mnist_models.bench.upgrade.sides import CACHE, Place, Side, SideError, commit, output_tail

# Known upstream incompatibilities that a package's metadata does not state: where a side pins the first package
# within the range, the second constraint is added, so that pip does not pick a release that cannot import.
KNOWN_CONSTRAINTS = (
  # flax 0.10.4 imports jax.sharding.AbstractMesh, first in jax 0.4.32, while its metadata accepts jax 0.4.27
  ("jax", "<0.4.32", "flax<0.10.4"),
)
MARKER = ".complete"  # written into a worktree once `git worktree add` finished


def constraints(side: Side) -> list[str]:
  """What pip holds every package of the side's environment to: its pins, and KNOWN_CONSTRAINTS' additions where a
  package is pinned to a version (==) in their range and the addition's package is not pinned itself."""
  pins = [Requirement(pin) for pin in side.pins]
  names = {req.name.lower() for req in pins}
  exact = {req.name.lower(): spec.version for req in pins for spec in req.specifier if spec.operator == "=="}
  added = [
    extra
    for name, versions, extra in KNOWN_CONSTRAINTS
    if name in exact and Requirement(extra).name.lower() not in names and SpecifierSet(versions).contains(exact[name])
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
    if not (path / MARKER).is_file():
      shutil.rmtree(path, ignore_errors=True)
      subprocess.run(["git", "-C", str(root), "worktree", "prune"], check=False)
      done = subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", "--force", str(path), sha],
        capture_output=True,
        text=True,
      )
      if done.returncode:
        raise SideError(f"cannot check out {sha[:12]} for a side: git says: {done.stderr.strip()[-800:]}")
      (path / MARKER).write_text(sha + "\n")
  return path


def _build(side: Side, venv: Path, source: Path) -> None:
  """A fresh virtual environment with the project (and its test extra) installed under `constraints(side)`, which
  hold for every package pip installs (as tox's constrain_package_deps); marked ready only once it is complete and
  the side's suite imports there. The project is installed from a wheel built from a copy of `source`,
  so that the checkout is left as it was (no build/ or egg-info in it) and two builds never share a build folder."""
  shutil.rmtree(venv, ignore_errors=True)
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  pins = venv / "constraints.txt"
  pins.write_text("\n".join(constraints(side)) + "\n")
  pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
  with tempfile.TemporaryDirectory() as scratch:
    built = wheel(source, Path(scratch))
    done = subprocess.run([*pip, f"{built}[test]", *side.pins, "-c", str(pins)], capture_output=True, text=True)
  if done.returncode:
    shutil.rmtree(venv, ignore_errors=True)
    raise SideError(
      f"side {side.name} ({side.describe()}) cannot be installed; pip says:\n{output_tail(done.stderr or done.stdout)}"
    )
  _check_imports(side, venv, source)
  (venv / ".ready").write_text(side.describe() + "\n")


def wheel(source: Path, scratch: Path) -> Path:
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
    raise SideError(f"cannot build the project from {source}; pip says:\n{output_tail(built.stderr or built.stdout)}")
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
