"""Where one side-by-side visit's wall time goes: one visit run as the upgrade command runs it, its time split.

  python lab/visit_profile.py [--out /tmp/visit] [-- pytest args]

A visit is one `pytest --benchmark-only` of the command's default selection at a quarter of each benchmark's pairs
(mnist_models.bench.upgrade.command: DEFAULT_ARGS, PAIRS_SCALE). The split: start-up and collection (the wall time
until the first test starts, from `--durations`' absence: the wall time less the tests' and the session end's), each
test's setup (fixtures: data, models, worker processes) and call, of which the timed rounds (the sum of each
benchmark's timed calls: pytest-benchmark's `stats.total`) and the yardstick rounds paired with them (pairs x the
yardstick's median time); the rest of the calls is warm-up, compiling, sizing, fingerprints and checks. Then the
session's end: revisits, rechecks, the matmul peak and saving (the wall time after the last test).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from mnist_models.bench.upgrade import command

_DURATION = re.compile(r"^\s*([0-9.]+)s (setup|call|teardown)\s+(\S+)", re.M)


def visit(out: Path, pytest_args: list[str]) -> tuple[float, str, dict, dict]:
  """(wall seconds, pytest's output, the saved run, its benchmarks' seconds by phase: lab/visit_phases.py) of one
  visit."""
  out.mkdir(parents=True, exist_ok=True)
  saved, phases = out / "visit.json", out / "phases.json"
  args = [*(pytest_args or command.DEFAULT_ARGS), f"--bench-pairs-scale={command.PAIRS_SCALE}"]
  cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "lab.visit_phases", *args, "--benchmark-only"]
  cmd += [f"--benchmark-json={saved}", "--durations=0", "--durations-min=0"]
  start = time.perf_counter()
  done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "VISIT_PHASES": str(phases)})
  wall = time.perf_counter() - start
  if done.returncode:
    raise SystemExit(f"the visit failed:\n{(done.stdout + done.stderr)[-3000:]}")
  return wall, done.stdout, json.loads(saved.read_text()), json.loads(phases.read_text())


def split(wall: float, output: str, doc: dict) -> dict[str, float]:
  """The visit's seconds by where they went (see the module's doc)."""
  phases = {"setup": 0.0, "call": 0.0, "teardown": 0.0}
  for seconds, phase, _ in _DURATION.findall(output):
    phases[phase] += float(seconds)
  paired = [(b["stats"], b["extra_info"]["paired"]) for b in doc["benchmarks"] if "paired" in b["extra_info"]]
  timed = sum(b["stats"]["total"] for b in doc["benchmarks"])  # the rounds pytest-benchmark timed, in the tests
  yardstick = sum(p["visits"][0] * p["yardstick_s"] for _, p in paired)
  revisits = sum(sum(p["visits"][1:]) * (stats["median"] + p["yardstick_s"]) for stats, p in paired)
  tests = sum(phases.values())
  return {
    "wall": wall,
    "start-up, collection; the session's end but its revisits": wall - tests - revisits,
    "tests' setup (data, models, worker processes)": phases["setup"],
    "tests' calls": phases["call"],
    "  timed rounds": timed,
    "  yardstick rounds paired with them": yardstick,
    "  the rest: warm-up, compiling, sizing, fingerprints, checks": phases["call"] - timed - yardstick,
    "revisits' pairs at the session's end (timed and yardstick)": revisits,
    "tests' teardown": phases["teardown"],
  }


def untimed_by_test(output: str, doc: dict) -> list[tuple[float, str]]:
  """Each test's call seconds outside its timed rounds (most first): where "the rest" goes."""
  totals = {b["fullname"]: b["stats"]["total"] for b in doc["benchmarks"]}
  calls = [(float(sec), name) for sec, phase, name in _DURATION.findall(output) if phase == "call"]
  return sorted(((sec - totals.get(name, 0.0), name) for sec, name in calls), reverse=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", type=Path, default=Path("/tmp/visit_profile"), help="where the visit's run is saved")
  parser.add_argument(
    "pytest_args", nargs="*", help=f"after --, what to run (default: {' '.join(command.DEFAULT_ARGS)})"
  )
  args = parser.parse_args()
  wall, output, doc, phases = visit(args.out, args.pytest_args)
  table = split(wall, output, doc)
  print("| where | seconds | share |\n| --- | --- | --- |")
  for name, seconds in table.items():
    print(
      f"| {name.strip() if not name.startswith('  ') else '- ' + name.strip()} | {seconds:.1f} | {seconds / wall:.0%} |"
    )
  print("\nthe benchmarks' own calls (`timed`, lab/visit_phases.py), by phase:")
  for name, seconds in phases.items():
    print(f"| {name} | {seconds:.1f} | {seconds / wall:.0%} |")
  print(f"\n{len(doc['benchmarks'])} benchmarks; {doc['machine_info'].get('cpu', {}).get('brand_raw')}")
  print("\nthe calls' seconds outside their timed rounds, most first:")
  for seconds, name in untimed_by_test(output, doc)[:12]:
    print(f"  {seconds:6.1f} s  {name}")


if __name__ == "__main__":
  main()
