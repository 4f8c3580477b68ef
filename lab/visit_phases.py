"""A pytest plugin that splits the suite's benchmark calls by phase: `python -m pytest -p lab.visit_phases ...`.

Each `timed` benchmark's `Timed.run` is timed whole and by its parts: sizing (`_plan`: the yardstick made, the pair
timed), the timed rounds with their pairing (`_measure`), the fingerprint (`_fingerprint`, which lowers and compiles
the program again), the checks (`_guard`, `_check`) and the result; the warm-up call (where the step compiles) is
the rest of `run`. The seconds, summed over the session, go as JSON to $VISIT_PHASES (lab/visit_profile.py reads them).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import defaultdict

from mnist_models.bench import timed

PHASES = {
  "_plan": "sizing",
  "_measure": "timed rounds and pairing",
  "_fingerprint": "fingerprint",
  "_guard": "checks",
  "_check": "checks",
  "_result": "result",
}
seconds: dict[str, float] = defaultdict(float)


def _timed(name: str, method):
  @functools.wraps(method)
  def wrapper(*args, **kwargs):
    start = time.perf_counter()
    try:
      return method(*args, **kwargs)
    finally:
      seconds[name] += time.perf_counter() - start

  return wrapper


def split(totals: dict[str, float]) -> dict[str, float]:
  """The phases' seconds, with the warm-up (the rest of `run`) made explicit."""
  parts = {k: v for k, v in totals.items() if k != "run"}
  return {"warm-up (compiling)": totals.get("run", 0.0) - sum(parts.values()), **parts}


def pytest_configure(config):
  """Wraps the phases' methods, in the run that loads this plugin only."""
  for method, phase in PHASES.items():
    setattr(timed.Timed, method, _timed(phase, getattr(timed.Timed, method)))
  timed.Timed.run = _timed("run", timed.Timed.run)


def pytest_sessionfinish(session):
  if path := os.environ.get("VISIT_PHASES"):
    with open(path, "w") as f:
      json.dump(split(dict(seconds)), f, indent=1)
