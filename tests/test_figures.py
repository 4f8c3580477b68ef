"""The figures: a bar chart from a saved run, and loss curves from training both frameworks."""

import dataclasses
import json

import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench.results import curves, figures
from mnist_models.bench.results.curves import train_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _saved_run(tmp_path):
  rows = [
    {"group": g, "variant": v, "framework": v.split("-")[0], "batch_size": 64, "median": t, "min": t, "ratio": r}
    for g, v, t, r in [
      ("train_step", "jax-jit", 0.04, 1.0),
      ("train_step", "keras-graph", 0.025, 0.62),
      ("epoch", "jax-loop", 0.7, 1.0),
      ("epoch", "keras-fit-graph", 0.68, 0.97),
    ]
  ]
  jit = {
    "group": "train_step",
    "extra_info": {"variant": "jax-jit", "batch_size": 64},
    "stats": {"q1": 0.035, "q3": 0.047},
  }
  info = {"versions": {"jax": "0.10.2", "tensorflow": "2.21.0"}, "cpu": {"brand_raw": "Some CPU"}, "cpu_affinity": [1]}
  path = tmp_path / "run.json"
  path.write_text(json.dumps({"benchmarks": [jit], "comparison": {"rows": rows}, "machine_info": info}))
  return path


def test_bars_from_a_saved_run(tmp_path, capsys):
  assert figures.main(["bars", str(_saved_run(tmp_path)), "--out", str(tmp_path / "figs")]) == 0
  assert (tmp_path / "figs" / "bars.png").read_bytes().startswith(PNG_MAGIC)
  assert "wrote" in capsys.readouterr().out


def test_bars_carry_the_spread_of_the_timed_rounds_and_the_machine(tmp_path):
  doc = json.loads(_saved_run(tmp_path).read_text())
  fastest, jit = figures.bar_rows(doc, "train_step")
  assert (fastest["variant"], jit["variant"]) == ("keras-graph", "jax-jit")
  assert (jit["q1"], jit["q3"]) == (0.035, 0.047)  # pytest-benchmark's quartiles of its rounds
  assert fastest["q1"] == fastest["q3"] == fastest["median"]  # no stats saved for it: no whisker drawn
  assert figures.caption(doc) == "Some CPU, 1 CPU(s) used, JAX on ?; jax 0.10.2, tensorflow 2.21.0"


def test_bars_from_a_missing_run_is_a_clear_error(tmp_path, capsys):
  assert figures.main(["bars", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
  assert "no baseline at" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small(bundled):
  return dataclasses.replace(
    bundled,
    train_images=bundled.train_images[:320],
    train_labels=bundled.train_labels[:320],
    test_images=bundled.test_images[:128],
    test_labels=bundled.test_labels[:128],
  )


def test_curves_train_both_frameworks_on_the_same_batches(small, tmp_path):
  lines = []
  history = train_curves(small, epochs=2, progress=lines.append)
  assert [r["epoch"] for r in history["jax"]] == [r["epoch"] for r in history["keras"]] == [1, 2]
  for name in ("jax", "keras"):
    values = [v for r in history[name] for v in (r["train_loss"], r["val_loss"], r["seconds"])]
    assert np.isfinite(values).all()
  # same start, same batches: the first epoch's mean training loss agrees closely (see test_keras_train)
  assert history["keras"][0]["train_loss"] == pytest.approx(history["jax"][0]["train_loss"], rel=0.05)
  assert len(lines) == 2 and lines[0].startswith("epoch 1/2")
  assert figures.plot_curves(history, tmp_path).read_bytes().startswith(PNG_MAGIC)


def test_curves_command_writes_json_and_png(tmp_path, monkeypatch, small):
  """The command's wiring (data, training, files); the training itself is the test above's."""
  history = {
    "source": "bundled",
    "batch_size": 64,
    **{
      name: [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.9, "val_accuracy": 0.5, "seconds": 1.0}]
      for name in ("jax", "keras")
    },
  }
  monkeypatch.setattr(mm, "load_mnist", lambda source, path=None: small)
  monkeypatch.setattr(
    curves, "train_curves", lambda data, **kwargs: history if data is small and kwargs["epochs"] == 1 else None
  )
  assert figures.main(["curves", "--epochs", "1", "--out", str(tmp_path)]) == 0
  assert json.loads((tmp_path / "curves.json").read_text())["source"] == "bundled"
  assert (tmp_path / "curves.png").read_bytes().startswith(PNG_MAGIC)


def test_zero_epochs_is_a_clear_error(small):
  with pytest.raises(ValueError, match="epochs must be >= 1"):
    train_curves(small, epochs=0)
