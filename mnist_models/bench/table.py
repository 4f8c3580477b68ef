"""The comparison table: each benchmark's median, rates and ratio to its group's JAX reference; the roofline line."""

from __future__ import annotations

# Every row is compared with its group's reference (mnist_models.bench.groups), measured in the same run at the same
# batch size.


def reference_ratios(rows: list[dict], reference: dict[str, str], stat: str) -> list[float | None]:
  """Each row's `stat` time over its group's reference row at the same batch size (None without one).

  Args:
    rows: dicts with group, variant, batch_size and the `stat` time (seconds).
    reference: group -> the variant every other is compared to (e.g. 'jax-jit').
    stat: the time to compare, 'median' or 'min'.
  """
  times = {(r["group"], r["variant"], r["batch_size"]): r[stat] for r in rows}
  refs = [times.get((r["group"], reference.get(r["group"]), r["batch_size"])) for r in rows]
  return [r[stat] / ref if ref else None for r, ref in zip(rows, refs, strict=True)]


def comparison_table(rows: list[dict], reference: dict[str, str]) -> list[dict]:
  """Adds `ratio` (median / the group's reference median at the same batch size) to each row."""
  out = [{**r, "ratio": ratio} for r, ratio in zip(rows, reference_ratios(rows, reference, "median"), strict=True)]
  return sorted(out, key=lambda r: (r["group"], r["batch_size"], r["median"]))


def format_table(rows: list[dict], reference: dict[str, str]) -> str:
  """The comparison table as text, one line per benchmark."""
  verdicts = any("verdict" in r for r in rows)
  head = f"{'group':<14}{'variant':<24}{'batch':>6}{'median ms':>11}{'images/s':>10}{'GFLOP/s':>9}{'% peak':>8}"
  head += f"  {'ratio':<15}"
  head = (head + "verdict vs baseline" if verdicts else head).rstrip()
  lines = [head, "-" * len(head)]
  for r in rows:
    ratio = ratio_cell(r, reference.get(r["group"]))
    pct = f"{100 * r['peak_fraction']:.1f}" if r.get("peak_fraction") is not None else "-"
    rate = f"{r['images_per_s']:>10.0f}{r['gflops']:>9.1f}" if "gflops" in r else f"{'-':>10}{'-':>9}"
    line = f"{str(r['group']):<14}{r['variant']:<24}{r['batch_size']:>6}{1e3 * r['median']:>11.2f}{rate}{pct:>8}"
    line += f"  {ratio:<15}"
    lines.append((line + short_verdict(r.get("verdict")) if verdicts else line).rstrip())
  return "\n".join(lines)


def short_verdict(v: dict | None) -> str:
  """'slower +11.8% confirmed' / 'same' / 'undecided -3.1%' / '-' (not judged); '(info)' when machines differ."""
  if not v:
    return "-"
  text = v["verdict"] if v["verdict"] == "same" else f"{v['verdict']} {v['change']:+.1%}"
  if "recheck" in v:
    text += " confirmed" if v["recheck"]["verdict"] == "slower" else " (not confirmed)"
  return text if v.get("judged", True) else f"{text} (info)"


def legend(peak_gflops: float) -> str:
  """The line under the table that says how to read it."""
  return (
    "ratio > 1: slower than the reference; GFLOP/s from the spec's FLOP count (train = 3x forward); % peak of "
    f"this machine's measured float32 matmul rate ({peak_gflops:.1f} GFLOP/s, the larger of a measurement at the "
    "start and one at the end of the run)"
  )


def roofline_line(rows: list[dict], batch_size: int, step_flops: int, peak_gflops: float) -> str | None:
  """One line: the train step's FLOPs, its floor at the matmul peak, and the variant closest to it."""
  train = [r for r in rows if r["group"] == "train_step" and r["batch_size"] == batch_size and "gflops" in r]
  if not train:
    return None
  best = max(train, key=lambda r: r["gflops"])
  return (
    f"roofline, train step at batch {batch_size}: {step_flops / 1e9:.2f} GFLOP; at the measured "
    f"{peak_gflops:.0f} GFLOP/s matmul peak the floor is {step_flops / peak_gflops / 1e6:.1f} ms; "
    f"closest: {best['variant']} at {best['gflops']:.1f} GFLOP/s ({100 * best['gflops'] / peak_gflops:.0f}% of peak)"
  )


def ratio_cell(row: dict, reference: str | None = None) -> str:
  """A row's ratio to its group's reference: '1.25x jax-jit', or '1.25x' without the reference's name; '-' if none.

  The one format of a ratio: the table, the Markdown, the report, the history and the figures all use it.
  """
  if not row.get("ratio"):
    return "-"
  return f"{row['ratio']:.2f}x {reference}" if reference else f"{row['ratio']:.2f}x"


def markdown_table(rows: list[dict], reference: dict[str, str]) -> str:
  """The comparison table as Markdown (a verdict column when any row has one)."""
  with_verdicts = any("verdict" in r for r in rows)
  lines = [
    "| group | variant | batch | median ms | images/s | ratio |" + (" verdict |" if with_verdicts else ""),
    "| --- | --- | ---: | ---: | ---: | --- |" + (" --- |" if with_verdicts else ""),
  ]
  for r in rows:
    images = f"{r['images_per_s']:.0f}" if "images_per_s" in r else "-"
    verdict = f" {short_verdict(r.get('verdict'))} |" if with_verdicts else ""
    lines.append(
      f"| {r['group']} | `{r['variant']}` | {r['batch_size']} | {1e3 * r['median']:.2f} | {images} | "
      f"{ratio_cell(r, reference.get(r['group']))} |{verdict}"
    )
  return "\n".join(lines)
