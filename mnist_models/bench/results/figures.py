"""The blog's two pictures, made honest: `python -m mnist_models.bench.results.figures {bars,curves} --out DIR`.

bars RUN.json   bar chart of train-step and epoch times per framework and variant, with their spread, from a saved run
curves          trains JAX and Keras for N epochs on the same batches; saves curves.json and curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnist_models.bench.table import ratio_cell

COLORS = {"jax": "tab:blue", "keras": "tab:orange", "torch": "tab:green"}
LABELS = {"jax": "JAX / Flax", "keras": "Keras", "torch": "PyTorch"}


def pyplot():
  """matplotlib.pyplot on its file-only backend (imported here: matplotlib is the plot extra)."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")  # files only: no display needed
  import matplotlib.pyplot as plt

  return plt


LOG_SPAN = 10  # a bar chart whose values span more than this factor gets a log axis


def bar_rows(doc: dict, group: str, batch_size: int = 64) -> list[dict]:
  """The comparison rows of a saved run's `group` at `batch_size`, fastest first, each with the spread of its timed
  rounds (`q1`, `q3`: pytest-benchmark's quartiles, where the run holds that benchmark's stats)."""
  from mnist_models.bench.baseline import benchmarks_by_key, row_key

  stats = {key: b.get("stats", {}) for key, b in benchmarks_by_key(doc).items()}
  picked = [r for r in doc["comparison"]["rows"] if r["group"] == group and r["batch_size"] == batch_size]
  return sorted(
    ({**r, **{q: stats.get(row_key(r), {}).get(q, r["median"]) for q in ("q1", "q3")}} for r in picked),
    key=lambda r: r["median"],
  )


def caption(doc: dict) -> str:
  """One line under a figure: where and with what the run was made."""
  info = doc.get("machine_info", {})
  versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if k != "numpy" and v)
  return (
    f"{info.get('cpu', {}).get('brand_raw', '?')}, {len(info.get('cpu_affinity') or ()) or '?'} CPU(s) used, "
    f"JAX on {info.get('jax_device_kind', '?')}; {versions}"
  )


def plot_bars(doc: dict, out: Path, batch_size: int = 64) -> Path:
  """Horizontal bars of median ms, whiskers from the first to the third quartile of the timed rounds, for the
  train_step and epoch groups at `batch_size` of a saved run; returns the PNG path."""
  plt = pyplot()
  groups = [g for g in ("train_step", "epoch") if bar_rows(doc, g, batch_size)]
  sizes = [len(bar_rows(doc, g, batch_size)) for g in groups]
  fig, axes = plt.subplots(
    len(groups),
    1,
    figsize=(9, 1.6 + 0.32 * sum(sizes) + 0.6 * len(groups)),
    squeeze=False,
    height_ratios=[max(n, 2) for n in sizes],
  )
  for ax, group in zip(axes[:, 0], groups, strict=True):
    _group_bars(ax, bar_rows(doc, group, batch_size), f"{group}, batch {batch_size}")
  fig.text(0.01, 0.005, caption(doc), fontsize=7, color="dimgray")
  fig.tight_layout(rect=(0, 0.025, 1, 1))
  return save(fig, out / "bars.png")


def _group_bars(ax, picked: list[dict], title: str) -> None:
  """One group's bars on `ax`: median ms, whiskers from q1 to q3, labelled with the ratio; a log axis if wide."""
  from matplotlib.patches import Patch

  ms = [1e3 * r["median"] for r in picked]
  spread = [[1e3 * (r["median"] - r["q1"]) for r in picked], [1e3 * (r["q3"] - r["median"]) for r in picked]]
  ax.barh(
    [r["variant"] for r in picked],
    ms,
    xerr=spread,
    capsize=3,
    color=[COLORS.get(r["framework"], "tab:gray") for r in picked],
  )
  for y, (r, value) in enumerate(zip(picked, ms, strict=True)):
    ax.text(
      1e3 * r["q3"],
      y,
      f"  {value:.1f} ms ({ratio_cell(r)})" if r.get("ratio") else f"  {value:.1f} ms",
      va="center",
    )
  log = max(ms) > LOG_SPAN * min(ms)
  ax.set_xscale("log" if log else "linear")
  ax.set_xlim(0.5 * min(ms) if log else 0, (4 if log else 1.4) * max(1e3 * r["q3"] for r in picked))
  ax.set_title(f"{title}: median time per call, whiskers: quartiles of the timed rounds")
  ax.set_xlabel("ms (log scale)" if log else "ms")
  ax.invert_yaxis()
  frameworks = dict.fromkeys(r["framework"] for r in picked)
  ax.legend(
    handles=[Patch(color=COLORS.get(f, "tab:gray"), label=LABELS.get(f, f)) for f in frameworks],
    loc="upper right",
    fontsize="small",
  )  # fastest first: the top right is free


def plot_curves(history: dict, out: Path) -> Path:
  """Train and validation loss, and validation accuracy, per epoch for both frameworks."""
  plt = pyplot()
  fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
  for name in ("jax", "keras"):
    epochs = [r["epoch"] for r in history[name]]
    loss_ax.plot(epochs, [r["train_loss"] for r in history[name]], "-o", color=COLORS[name], label=f"{name} train")
    loss_ax.plot(epochs, [r["val_loss"] for r in history[name]], "--s", color=COLORS[name], label=f"{name} validation")
    acc_ax.plot(epochs, [r["val_accuracy"] for r in history[name]], "-o", color=COLORS[name], label=name)
  loss_ax.set(
    xlabel="epoch", ylabel="cross-entropy", title=f"loss ({history['source']} data, batch {history['batch_size']})"
  )
  acc_ax.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
  for ax in (loss_ax, acc_ax):
    ax.set_xticks([r["epoch"] for r in history["jax"]])
    ax.legend()
    ax.grid(alpha=0.3)
  fig.tight_layout()
  return save(fig, out / "curves.png")


def save(fig, path: Path) -> Path:
  """Writes `fig` to `path` (its folder made) and closes it; the path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)
  pyplot().close(fig)
  return path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m mnist_models.bench.results.figures",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest="command", required=True)
  bars = sub.add_parser("bars", help="bar chart from a saved benchmark run (--benchmark-save or --benchmark-json)")
  bars.add_argument("run", type=Path)
  curves = sub.add_parser("curves", help="train both frameworks for N epochs and draw their curves")
  curves.add_argument("--epochs", type=int, default=5)
  curves.add_argument("--batch-size", type=int, default=64)
  curves.add_argument("--source", default="auto", help="auto (full MNIST if on disk, else bundled), full, bundled")
  curves.add_argument("--path", default=None, help="full MNIST .npz file or IDX folder")
  for p in (bars, curves):
    p.add_argument("--out", type=Path, required=True, help="folder for the PNG (and JSON) files")
  args = parser.parse_args(argv)
  try:
    written = _bars(args) if args.command == "bars" else _curves(args)
  except ValueError as e:  # BaselineError and MNISTDataError are ValueErrors with a message for the user
    print(f"error: {e}", file=sys.stderr)
    return 2
  print("\n".join(f"wrote {p}" for p in written))
  return 0


def _bars(args) -> list[Path]:
  from mnist_models.bench.baseline import load_baseline

  return [plot_bars(load_baseline(args.run), args.out)]


def _curves(args) -> list[Path]:
  from mnist_models import load_mnist
  from mnist_models.bench.results.curves import train_curves

  data = load_mnist(args.source, path=args.path)
  print(f"data: {data.source} ({data.origin}), {len(data.train_labels)} train / {len(data.test_labels)} test images")
  history = train_curves(data, epochs=args.epochs, batch_size=args.batch_size, progress=lambda s: print(s, flush=True))
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "curves.json").write_text(json.dumps(history, indent=2) + "\n")
  return [args.out / "curves.json", plot_curves(history, args.out)]


if __name__ == "__main__":
  sys.exit(main())
