"""Pure helpers of the benchmark table."""

from mnist_models.bench import summary, table


def test_roofline_line_names_the_closest_variant():
  rows = [{"group": "train_step", "variant": v, "batch_size": 64, "gflops": g} for v, g in [("a", 40.0), ("b", 90.0)]]
  line = table.roofline_line(rows, 64, 1_800_000_000, 180.0)
  assert "1.80 GFLOP" in line and "floor is 10.0 ms" in line and "closest: b at 90.0 GFLOP/s (50% of peak)" in line
  assert table.roofline_line(rows, 128, 1, 1.0) is None


def test_comparison_table_ratios_are_per_group_and_batch():
  rows = [
    {"group": "train_step", "variant": v, "batch_size": b, "median": t}
    for v, b, t in [("jax-jit", 64, 0.04), ("keras-graph", 64, 0.02), ("keras-graph", 128, 0.05)]
  ]
  ratios = {
    (r["variant"], r["batch_size"]): r["ratio"] for r in table.comparison_table(rows, {"train_step": "jax-jit"})
  }
  assert ratios == {("jax-jit", 64): 1.0, ("keras-graph", 64): 0.5, ("keras-graph", 128): None}  # no b128 reference


def test_markdown_summary_without_a_baseline_is_the_table():
  rows = table.comparison_table(
    [
      {"group": "train_step", "variant": v, "batch_size": 64, "median": t, "images_per_s": 64 / t}
      for v, t in [("jax-jit", 0.04), ("keras-graph", 0.05)]
    ],
    {"train_step": "jax-jit"},
  )
  text = summary.markdown(rows, {"train_step": "jax-jit"}, [], [])
  assert text.splitlines() == [
    "### mnist-bench: no regression",
    "",
    "| group | variant | batch | median ms | images/s | ratio |",
    "| --- | --- | ---: | ---: | ---: | --- |",
    "| train_step | `jax-jit` | 64 | 40.00 | 1600 | 1.00x jax-jit |",
    "| train_step | `keras-graph` | 64 | 50.00 | 1280 | 1.25x jax-jit |",
  ]
