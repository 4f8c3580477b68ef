"""The README's answer is its committed runs rendered (mnist_models.bench.results.answer); its figure was drawn from
them."""

from pathlib import Path

import pytest

from mnist_models.bench.results import answer

ROOT = Path(__file__).parents[1]
REMAKE = "regenerate: python -m mnist_models.bench.results.answer (from the repository root)"


def test_the_readmes_answer_is_the_committed_runs_rendered():
  block = answer.markdown(answer.load(ROOT))
  assert block in (ROOT / "README.md").read_text(), f"the README's answer is stale; {REMAKE}"


def test_the_figure_was_drawn_from_the_committed_runs():
  assert answer.figure_digest(ROOT / "docs" / "answer.png") == answer.digest(ROOT), (
    f"docs/answer.png is stale; {REMAKE}"
  )


def test_a_readme_without_the_markers_is_a_clear_error():
  with pytest.raises(ValueError, match="the README has no answer block"):
    answer.rewrite("# a README\n", "block")
  assert answer.rewrite(f"a\n{answer.BEGIN}\nold\n{answer.END}\nb", "new") == "a\nnew\nb"


@pytest.mark.parametrize(
  ("ratio", "said"),
  [
    (1.01, "a tie (Keras/JAX 1.01x)"),
    (1.68, "JAX faster (Keras takes 1.68x its time)"),
    (0.8, "Keras faster (JAX takes 1.25x"),
  ],
)
def test_who_is_faster_is_said_from_the_ratio_and_the_noise(ratio, said):
  assert answer._who(ratio).startswith(said)


def test_the_figure_carries_the_digest_it_was_drawn_from(tmp_path):
  pytest.importorskip("matplotlib")
  path = answer.plot(answer.load(ROOT), tmp_path / "a.png", "0123456789abcdef")
  assert answer.figure_digest(path) == "0123456789abcdef"


def test_the_answer_says_when_its_rows_ran_on_another_machine():
  base = {"cpu": {"brand_raw": "AMD EPYC", "flags": ["avx2"]}, "cpu_affinity": [1], "host": "a", "cpu_count": 2}
  unpinned = {**base, "cpu_affinity": [0, 1], "blas_threads": 2, "env": {"XLA_PYTHON_CLIENT_PREALLOCATE": None}}
  other_host = {**unpinned, "host": "b"}
  other_kind = {**other_host, "cpu": {"brand_raw": "AMD EPYC", "flags": ["avx2", "avx512f"]}}
  assert answer._where(base, {"blog": {"machine": unpinned}, "accuracy": {"machine": unpinned}}) == (
    "all rows on one machine"
  )  # how they ran aside: the post's runs use both CPUs, outside the plugin
  said = answer._where(base, {"blog": {"machine": other_host}, "accuracy": {}})
  assert said == "the post's experiment ran on another host of that kind; time to accuracy did not record its machine"
  said = answer._where(base, {"blog": {"machine": unpinned}, "accuracy": {"machine": other_kind}})
  assert said == "time to accuracy ran on AMD EPYC, AVX-512, TF oneDNN off"
