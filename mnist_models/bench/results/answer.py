"""The README's answer to the blog's question, made from committed saved runs: its table, its sentences, its figure.

  python -m mnist_models.bench.results.answer [--readme README.md] [--figure docs/answer.png]

Reads the committed runs (RUNS: the CPU baseline, the post's experiment, time to accuracy, the GPU run), writes the
block between the README's `<!-- answer -->` markers and draws the figure; tests/test_answer.py fails when either
no longer matches the runs. The figure carries the digest of the runs it was drawn from (a PNG text field).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
from pathlib import Path

from mnist_models.bench.baseline import pooled_runs
from mnist_models.bench.comparability import machine_differences
from mnist_models.bench.verdict import THRESHOLD

RUNS = {
  "baseline": ".benchmarks/Linux-CPython-3.11-64bit/0001_baseline.json",  # with the runs pooled with it
  "blog": "docs/runs/blog.json",
  "accuracy": "docs/runs/to_accuracy.json",
  "gpu": "docs/runs/h200.json",
}
BEGIN, END = (
  "<!-- answer: made by python -m mnist_models.bench.results.answer from committed runs; do not edit -->",
  "<!-- /answer -->",
)
# the verdicts' threshold (three times the sd, 2%, between runs of unchanged code) is what a tie is
THRESHOLD_NOTE = f"{THRESHOLD:.0%}"


def load(root: Path) -> dict:
  """The runs by name, and under "pool" the baseline's pooled runs ((path, run) pairs: what the verdicts pool)."""
  runs = {name: json.loads((root / path).read_text()) for name, path in RUNS.items()}
  return {**runs, "pool": pooled_runs(root / RUNS["baseline"], runs["baseline"])}


def digest(root: Path) -> str:
  """The runs' digest: what the figure was drawn from."""
  h = hashlib.sha256()
  for path in RUNS.values():
    h.update((root / path).read_bytes())
  return h.hexdigest()[:16]


def _row(doc: dict, group: str, variant: str, batch: int = 64) -> dict | None:
  return next(
    (r for r in doc["comparison"]["rows"] if (r["group"], r["variant"], r["batch_size"]) == (group, variant, batch)),
    None,
  )


def _ms(docs: list[dict], group: str, variant: str, ref: str) -> str:
  """'50.6 ms (1.01x, 0.98-1.05x)': the median over the runs of the variant's median, and of its ratio to the
  reference measured in the same run (its range over the runs beside it)."""
  rows = [(_row(d, group, variant), _row(d, group, ref)) for d in docs]
  if any(row is None or base is None for row, base in rows):
    return "not run"
  ms = statistics.median(row["median"] for row, _ in rows) * 1e3
  if variant == ref:
    return f"{ms:.1f} ms"
  ratios = [row["median"] / base["median"] for row, base in rows]
  spread = f", {min(ratios):.2f}-{max(ratios):.2f}x" if len(ratios) > 1 else ""
  return f"{ms:.1f} ms ({statistics.median(ratios):.2f}x{spread})"


def _to_target(doc: dict, mode: str, ref: str = "jax-jit") -> str:
  m, r = doc["modes"].get(mode), doc["modes"].get(ref)
  if not m or not m["reached"]:
    return "not reached"
  ratio = "" if mode == ref else f", {m['median_s'] / r['median_s']:.2f}x"
  lo, hi = m["range_s"]
  return f"{m['median_s']:.1f} s ({lo:.1f}-{hi:.1f}{ratio})"


def _ratio(docs: list[dict], group: str, variant: str, ref: str) -> float:
  """The median over the runs of the variant's median over the reference's, each pair from one run."""
  return statistics.median(_row(d, group, variant)["median"] / _row(d, group, ref)["median"] for d in docs)


def _who(keras_over_jax: float, noise: float = THRESHOLD) -> str:
  """'a tie (Keras/JAX 1.01x)', 'JAX faster (Keras takes 1.68x)' or 'Keras faster (JAX takes 1.20x)'."""
  if abs(keras_over_jax - 1) <= noise:
    return f"a tie (Keras/JAX {keras_over_jax:.2f}x)"
  if keras_over_jax > 1:
    return f"JAX faster (Keras takes {keras_over_jax:.2f}x its time)"
  return f"Keras faster (JAX takes {1 / keras_over_jax:.2f}x its time)"


def _machine(info: dict) -> str:
  """'AMD EPYC, AVX-512, TF oneDNN off': the CPU and what changes its speed (docs/methodology.md)."""
  cpu = info.get("cpu") or {}
  name = " ".join((cpu.get("brand_raw") or "unknown CPU").split()[:2])
  avx = "AVX-512" if "avx512f" in (cpu.get("flags") or ()) else "no AVX-512"
  return f"{name}, {avx}, TF oneDNN {'on' if info.get('tf_onednn_enabled') else 'off'}"


HOW_IT_RAN = {"pinned_cpus", "blas_threads", "env"}


def _where(base_info: dict, runs: dict[str, dict]) -> str:
  """Whether the post's experiment and time to accuracy ran on the baseline's machine: its host and kind; how they
  ran (unpinned, so BLAS on both CPUs, and without the plugin's GPU-memory settings) is said beside it."""
  other = []
  for name, what in (("blog", "the post's experiment"), ("accuracy", "time to accuracy")):
    info = runs[name].get("machine")
    moved = {d.key for d in machine_differences(base_info, info)} - HOW_IT_RAN if info else None
    if moved is None:
      other.append(f"{what} did not record its machine")
    elif moved:
      other.append(f"{what} ran on {'another host of that kind' if moved == {'host'} else _machine(info)}")
  return "; ".join(other) or "all rows on one machine"


def markdown(runs: dict[str, dict]) -> str:
  """The README's answer block (between the markers): the answer, its table, the GPU and the post's experiment, the
  figure, the sources."""
  figure = "![JAX and Keras wall times for the post's experiment, step by step, and time to accuracy](docs/answer.png)"
  sources = (
    f"Sources: {', '.join(f'`{p}`' for p in RUNS.values())}; the baseline pooled with "
    f"{', '.join(f'`{path.name}`' for path, _ in runs['pool'][1:]) or 'no other run'}."
  )
  return "\n".join([BEGIN, _headline(runs), "", *_table(runs), "", *_beyond(runs), "", figure, "", sources, END])


def _fastest_keras(acc: dict) -> str:
  """The Keras mode that reached the target soonest (median over seeds)."""
  return min((k for k in acc["modes"] if k.startswith("keras")), key=lambda k: acc["modes"][k]["median_s"] or 1e9)


def _step(blog: dict, name: str) -> dict:
  """The post's experiment at one of its steps (blog.STEPS)."""
  return next(s for s in blog["steps"] if s["step"] == name)


def _headline(runs: dict[str, dict]) -> str:
  """The answer in words: who is faster per step, per epoch and to accuracy, and how the rows were measured."""
  pool, acc = [doc for _, doc in runs["pool"]], runs["accuracy"]
  info, fastest_keras = pool[0]["machine_info"], _fastest_keras(acc)
  step_ratio = _ratio(pool, "train_step", "keras-graph", "jax-jit")
  epoch_ratio = _ratio(pool, "epoch", "keras-fit-graph", "jax-loop")
  plain_ratio = _ratio(pool, "train_step", "jax-jit-plain", "jax-jit")
  acc_ratio = (acc["modes"][fastest_keras]["median_s"] or float("nan")) / acc["modes"]["jax-jit"]["median_s"]
  return (
    f"**The answer** (this 2-core CPU, {_machine(info)}; {acc['source']} digits): per train step at batch 64,"
    f" {_who(step_ratio)}; per epoch, {_who(epoch_ratio)}; to {acc['target']:.0%} test accuracy, {_who(acc_ratio)}."
    f" Runs of unchanged code differ by up to {THRESHOLD_NOTE}: a smaller ratio is a tie. The step and epoch rows are"
    f" the committed baseline's {len(pool)} runs (one CPU, pinned; the median, and the range of the ratio each run"
    f" measured side by side). Plain `jax.jit`, per step: {_ms(pool, 'train_step', 'jax-jit-plain', 'jax-jit')} of"
    " the tuned `jax-jit`'s time"
    + (": the suite's tuning costs time on this CPU" if plain_ratio < 1 else "")
    + ". The last two rows ran unpinned on both CPUs, as the post ran"
    f" ({_where(info, runs)})."
  )


def _table(runs: dict[str, dict]) -> list[str]:
  """The answer's table: a step, an epoch, time to accuracy and the post's experiment made fair, per framework."""
  pool, blog, acc = [doc for _, doc in runs["pool"]], runs["blog"], runs["accuracy"]
  best, fastest_keras, seeds = _step(blog, "best"), _fastest_keras(acc), acc["modes"]["jax-jit"]["seeds"]
  return [
    "| on this 2-core CPU | JAX + Flax (`jax-jit`) | Keras on TensorFlow | PyTorch (`torch-eager`) |",
    "| --- | --- | --- | --- |",
    f"| one train step, batch 64 (median) | {_ms(pool, 'train_step', 'jax-jit', 'jax-jit')} "
    f"| {_ms(pool, 'train_step', 'keras-graph', 'jax-jit')} | {_ms(pool, 'train_step', 'torch-eager', 'jax-jit')} |",
    f"| one epoch of 16 batches (median) | {_ms(pool, 'epoch', 'jax-loop', 'jax-loop')} "
    f"| {_ms(pool, 'epoch', 'keras-fit-graph', 'jax-loop')} (`fit`) "
    f"| {_ms(pool, 'epoch', 'torch-loop-eager', 'jax-loop')} |",
    f"| to {acc['target']:.0%} test accuracy (median of {seeds} seeds, range) | {_to_target(acc, 'jax-jit')} "
    f"| {_to_target(acc, fastest_keras)} (`{fastest_keras}`) | not run |",
    f"| the post's experiment, made fair (`best`) | {best['jax_s']:.1f} s "
    f"| {best['keras_s']:.1f} s ({best['keras_over_jax']:.2f}x) | not run |",
  ]


def _beyond(runs: dict[str, dict]) -> list[str]:
  """The GPU's step, and the post's own experiment from as written to fair."""
  gpu, blog = [runs["gpu"]], runs["blog"]
  as_written = _step(blog, "as-written")["keras_over_jax"]
  return [
    "On an H200 GPU (JAX and PyTorch only; Keras on TF never ran there): one train step "
    f"{_ms(gpu, 'train_step', 'jax-jit', 'jax-jit')} for `jax-jit`, "
    f"{_ms(gpu, 'train_step', 'torch-eager', 'jax-jit')} for `torch-eager` ([docs/gpu.md](docs/gpu.md)).",
    f"The post's own experiment ({blog['epochs']} epochs at batch 64, a validation pass each, all of it timed),"
    f" as written: {_who(as_written)}"
    + (": its picture does not reproduce on this CPU" if as_written < 1 else "")
    + "; Keras' wall time over JAX's at each step from as written to fair: "
    + ", ".join(f"{s['step']} {s['keras_over_jax']:.2f}x" for s in blog["steps"])
    + " (`python -m mnist_models.bench.results.blog`; what each step changes: [docs/blog.md](docs/blog.md)).",
  ]


def rewrite(readme: str, block: str) -> str:
  """`readme` with its answer block replaced by `block`; ValueError if the markers are missing."""
  pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
  if not pattern.search(readme):
    raise ValueError(f"the README has no answer block: put {BEGIN!r} ... {END!r} where it goes")
  return pattern.sub(lambda _: block, readme, count=1)


def plot(runs: dict[str, dict], out: Path, source_digest: str) -> Path:
  """Two panels: the post's experiment step by step (JAX and Keras wall times), and time to accuracy per mode."""
  from mnist_models.bench.results.figures import COLORS, pyplot  # noqa: PLC0415 - matplotlib only here

  plt = pyplot()
  blog, acc = runs["blog"], runs["accuracy"]
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  steps = [s["step"] for s in blog["steps"]]
  for i, (name, key) in enumerate((("JAX / Flax", "jax_s"), ("Keras", "keras_s"))):
    values = [s[key] for s in blog["steps"]]
    left.barh([y + 0.4 * i for y in range(len(steps))], values, 0.4, label=name, color=list(COLORS.values())[i])
  left.set_yticks([y + 0.2 for y in range(len(steps))], steps)
  left.invert_yaxis()
  left.set(
    xlabel="wall time of the whole training, s", title=f"the post's experiment ({blog['epochs']} epochs), step by step"
  )
  left.legend(fontsize="small")
  modes = list(acc["modes"])
  medians = [acc["modes"][m]["median_s"] or 0 for m in modes]
  spans = [acc["modes"][m]["range_s"] or [0, 0] for m in modes]
  colors = [COLORS["keras" if m.startswith("keras") else "jax"] for m in modes]
  err = [
    [md - lo for md, (lo, _) in zip(medians, spans, strict=True)],
    [hi - md for md, (_, hi) in zip(medians, spans, strict=True)],
  ]
  right.barh(modes, medians, xerr=err, color=colors, capsize=3)
  right.invert_yaxis()
  right.set(
    xlabel="s (median, range over seeds)", title=f"time to {acc['target']:.0%} test accuracy ({acc['source']} digits)"
  )
  for ax in (left, right):
    ax.grid(axis="x", alpha=0.3)
  fig.tight_layout()
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=110, metadata={"Source": f"mnist-bench runs {source_digest}"})
  plt.close(fig)
  return out


def figure_digest(path: Path) -> str | None:
  """The runs' digest the figure says it was drawn from (its PNG text field), or None."""
  found = re.search(rb"Source\x00mnist-bench runs ([0-9a-f]{16})", path.read_bytes())
  return found.group(1).decode() if found else None


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m mnist_models.bench.results.answer", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--readme", default="README.md")
  parser.add_argument("--figure", default="docs/answer.png")
  args = parser.parse_args(argv)
  root = Path.cwd()
  try:
    runs = load(root)
    readme = Path(args.readme)
    readme.write_text(rewrite(readme.read_text(), markdown(runs)))
  except (OSError, ValueError, KeyError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {readme} and {plot(runs, Path(args.figure), digest(root))}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
