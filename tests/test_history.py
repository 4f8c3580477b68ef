"""The history of benchmarks across saved runs: order, ratios, and runs that do not compare marked."""

import json

from mnist_models.bench.results import history

MACHINE = {
  "cpu": {"brand_raw": "CPU A", "flags": ["avx2"]},
  "cpu_count": 2,
  "cpu_affinity": [1],
  "jax_backend": "cpu",
  "versions": {"jax": "0.10.2"},
}


def _run(folder, name, jit_ms, keras_ms, machine=MACHINE, flagged=False):
  """A saved run with train_step jax-jit (the reference) and keras-graph at batch 64."""
  rows = [
    {"group": "train_step", "variant": v, "batch_size": 64, "median": ms / 1e3, "min": ms / 1e3, "ratio": ms / jit_ms}
    for v, ms in [("jax-jit", jit_ms), ("keras-graph", keras_ms)]
  ]
  verdict = {"verdict": "slower", "judged": True, "recheck": {"verdict": "slower"}} if flagged else {"verdict": "same"}
  benches = [
    {
      "group": "train_step",
      "extra_info": {"variant": "jax-jit", "batch_size": 64, "verdict": verdict},
      "stats": {"q1": 0.9 * jit_ms / 1e3, "q3": 1.2 * jit_ms / 1e3},
    }
  ]
  doc = {
    "benchmarks": benches,
    "comparison": {"rows": rows},
    "machine_info": machine,
    "commit_info": {"id": f"{name}cafe"},
    "datetime": "2026-11-26T05:00:00",
  }
  (folder / f"{name}.json").write_text(json.dumps(doc))


def test_history_of_three_saved_runs(tmp_path, capsys):
  other = {**MACHINE, "cpu": {"brand_raw": "CPU B", "flags": ["avx2", "avx512f"]}}
  _run(tmp_path, "0002_b", 55.0, 66.0, flagged=True)  # written out of order: the folder's name order counts
  _run(tmp_path, "0001_a", 50.0, 60.0)
  _run(tmp_path, "0003_c", 40.0, 30.0, machine=other)
  docs = [(p.stem, history.load_baseline(p)) for p in history.run_files([tmp_path])]
  keys = ("train_step/jax-jit/b64", "train_step/keras-graph/b64")
  entries = history.history(docs, keys)
  assert [e["label"].split()[0] for e in entries] == ["0001_a", "0002_b", "0003_c"]
  assert [e["machine_differs"] for e in entries] == [False, False, True]
  assert [round(e["points"]["train_step/keras-graph/b64"]["ratio"], 3) for e in entries] == [1.2, 1.2, 0.75]
  assert [e["points"]["train_step/jax-jit/b64"]["flagged"] for e in entries] == [False, True, False]
  assert entries[0]["points"]["train_step/jax-jit/b64"]["q3"] == 0.06  # the quartiles of its timed rounds
  assert history.main([str(tmp_path), "--bench", keys[0], "--bench", keys[1]]) == 0
  text = capsys.readouterr().out
  assert "  ! 0002_b 0002_bc 2026-11-26" in text and "M   0003_c" in text and "[45.00..60.00]  1.00x" in text


def test_no_runs_or_unknown_benchmarks_are_clear_errors(tmp_path, capsys):
  assert history.main([str(tmp_path)]) == 2
  assert "no saved runs in" in capsys.readouterr().err
  _run(tmp_path, "0001_a", 50.0, 60.0)
  assert history.main([str(tmp_path), "--bench", "train_step/jax-jit/b65"]) == 2
  assert "none of train_step/jax-jit/b65 is in these runs" in capsys.readouterr().err


def test_history_png(tmp_path):
  for i, ms in enumerate((50.0, 52.0), start=1):
    _run(tmp_path, f"000{i}_run", ms, 60.0)
  assert history.main([str(tmp_path), "--out", str(tmp_path / "figs")]) == 0
  assert (tmp_path / "figs" / "history.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
