"""Side by side, judged many times over from one session: how often identical sides are called slower, and how
often a known slowdown is caught, for runs of N visits a side (the evidence in docs/notebook/upgrades.md).

  python lab/side_by_side_windows.py OUT --runs 80 --slowdowns 0.05 0.10 --windows 4 8 -- PYTEST ARGS

Sides, each this environment and checkout: A, A2 (the same as A; `--no-identical` leaves it out), and one side
per slowdown with the slowdown plugin on it only (`-p lab.slowdown --slowdown-links=N`, which slows the
tuned JAX train step at batch 64 by N matmuls: the same work in every run, as a real change; N is calibrated once,
before the rounds, for the fraction F asked, by `python lab/slowdown.py F` in a process of its own, unless
`--links` gives it).
They are visited in turn, each run as the upgrade command runs a visit (`--bench-pairs-scale`, its default), the order
reversed every other round (A A2 B5 B10, B10 B5 A2 A, ...) so that a steady drift falls on all of them. Then each
window of N consecutive runs of every side is judged as the upgrade command judges N visits: A2, and each slowed side,
against A (`judge.judge`: Welch's interval of the runs' statistics, the busy rule). OUT/windows.json keeps
every run's statistic per benchmark (so that any window can be judged again: `verdict._welch` and `decide`) and the
verdicts; the saved runs themselves stay in OUT/runs.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mnist_models.bench import baseline, verdict
from mnist_models.bench.upgrade import command, judge
from mnist_models.bench.upgrade.environments import prepare_all
from mnist_models.bench.upgrade.sides import Side, visit


def sides(links: dict[float, int], identical: bool = True) -> list[Side]:
  slowed = [
    Side.parse(f"B{round(f * 100)}", f"-- -p lab.slowdown --slowdown={f} --slowdown-links={n}")
    for f, n in links.items()
  ]
  return [Side.parse("A", ""), *([Side.parse("A2", "")] if identical else []), *slowed]


def calibrated(fraction: float) -> int:
  """The links adding `fraction`, as `lab/slowdown.py` measures them in a process of its own (it pins
  itself to one CPU, which this process must not inherit)."""
  done = subprocess.run(
    [sys.executable, str(Path(__file__).with_name("slowdown.py")), str(fraction)], capture_output=True, text=True
  )
  line = [x for x in done.stdout.splitlines() if " links for " in x]
  if done.returncode or not line:
    raise SystemExit(f"calibrating +{fraction:.0%} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
  print(line[0], flush=True)
  return int(line[0].split()[0])


def _complete(path: Path) -> bool:
  """Whether a saved run finished with its suite passing (a run saved before the suite marked it counts as such)."""
  return json.loads(path.read_text()).get("session", {}).get("complete", True)


def measure(out: Path, runs: int, all_sides: list[Side], pytest_args: list[str]) -> dict[str, list[Path]]:
  """`runs` runs of every side, in turn, the order reversed each round."""
  root, saved = Path.cwd(), {s.name: [] for s in all_sides}
  places = dict(zip([s.name for s in all_sides], prepare_all(all_sides, root), strict=True))
  args = [*pytest_args, f"--bench-pairs-scale={command.PAIRS_SCALE}"]
  for i in range(runs):
    for side in all_sides if i % 2 == 0 else all_sides[::-1]:
      saved[side.name].append(visit(side, places[side.name], out / "runs" / side.name, args))
    print(f"round {i + 1}/{runs} done", flush=True)
  return saved


def statistics(doc: dict) -> dict[str, dict]:
  """Per benchmark: the run's statistic (verdict._stat), its pairs and visits, the CPU others took meanwhile."""
  found = {}
  for key, samples in baseline.paired_samples(doc).items():
    visits = verdict.as_visits(samples)
    info = baseline.benchmarks_by_key(doc)[key].get("extra_info", {}).get("paired", {})
    found[key] = {
      "stat": round(verdict._stat(visits), 6),
      "pairs": int(sum(v.size for v in visits)),
      "others_cpu": info.get("others_cpu"),
    }
  return found


def judge_windows(docs: dict[str, list[dict]], all_sides: list[Side], size: int) -> list[dict]:
  """Every window of `size` consecutive runs: each side but A judged against A, as the upgrade command judges."""
  a, out = all_sides[0], []
  for start in range(0, len(docs[a.name]) - size + 1, size):
    for side in all_sides[1:]:
      rows = judge.judge(docs[a.name][start : start + size], docs[side.name][start : start + size], a, side)
      out.append(
        {
          "window": start // size,
          "side": side.name,
          "rows": {
            r.key: {"busy": r.busy, **{k: r.verdict[k] for k in ("verdict", "change", "low", "high")}} for r in rows
          },
        }
      )
  return out


def tally(judged: list[dict]) -> list[str]:
  """Per side and benchmark: how many windows called it slower, faster, same, undecided (busy ones apart)."""
  lines, keys = [], sorted({k for j in judged for k in j["rows"]})
  for side in sorted({j["side"] for j in judged}):
    for key in keys:
      found = [j["rows"][key] for j in judged if j["side"] == side and key in j["rows"]]
      counted = [r["verdict"] for r in found if not r["busy"]]
      kinds = ", ".join(f"{counted.count(k)} {k}" for k in ("slower", "faster", "same", "undecided"))
      lines.append(f"{side} {key}: {kinds} of {len(counted)} windows ({len(found) - len(counted)} busy)")
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("out")
  parser.add_argument("--runs", type=int, default=80)
  parser.add_argument("--slowdowns", type=float, nargs="*", default=[0.05, 0.10])
  parser.add_argument("--links", type=int, nargs="*", help="the matmuls of each slowdown (default: calibrated)")
  parser.add_argument("--windows", type=int, nargs="*", default=[4, 8])
  parser.add_argument("--no-identical", action="store_true", help="no A2: time only A and the slowed sides")
  parser.add_argument("--judge-only", action="store_true", help="judge the runs already saved in OUT, time nothing")
  argv = sys.argv[1:]
  split = argv.index("--") if "--" in argv else len(argv)
  args, pytest_args = parser.parse_args(argv[:split]), argv[split + 1 :]
  out, start = Path(args.out), time.time()
  saved_links = out / "links.json"
  if args.links:
    links = dict(zip(args.slowdowns, args.links, strict=True))
  elif saved_links.is_file():  # a re-judged or resumed session keeps its work
    links = {float(f): n for f, n in json.loads(saved_links.read_text()).items()}
  else:
    links = {f: calibrated(f) for f in args.slowdowns}
  out.mkdir(parents=True, exist_ok=True)
  saved_links.write_text(json.dumps({str(f): n for f, n in links.items()}) + "\n")
  all_sides = sides(links, identical=not args.no_identical)
  if args.judge_only:  # the runs an earlier (perhaps interrupted) session saved: whole rounds only
    found = {
      s.name: [p for p in sorted((out / "runs" / s.name).rglob(f"*_{s.name}.json")) if _complete(p)] for s in all_sides
    }
    rounds = min(len(paths) for paths in found.values())
    saved = {name: paths[:rounds] for name, paths in found.items()}
  else:
    saved = measure(out, args.runs, all_sides, pytest_args)
  docs = {name: [json.loads(p.read_text()) for p in paths] for name, paths in saved.items()}
  result = {
    "pytest_args": pytest_args,
    "pairs_scale": command.PAIRS_SCALE,
    "threshold": verdict.SIDE_BY_SIDE_THRESHOLD,
    "links": {str(f): n for f, n in links.items()},
    "added": {
      s.name: [d.get("slowdown", {}).get("measured") for d in docs[s.name]] for s in all_sides if s.name.startswith("B")
    },
    "wall_s": None if args.judge_only else time.time() - start,
    "rounds": len(saved["A"]),
    "versions": docs["A"][-1].get("machine_info", {}).get("versions"),
    "runs": {name: [statistics(d) for d in ds] for name, ds in docs.items()},
    "windows": {str(n): judge_windows(docs, all_sides, n) for n in args.windows},
  }
  (out / "windows.json").write_text(json.dumps(result, indent=1) + "\n")
  for n in args.windows:
    print(f"windows of {n} runs a side:")
    print("\n".join("  " + line for line in tally(result["windows"][str(n)])))


if __name__ == "__main__":
  main()
