"""B's runs judged against A's, row by row: the verdict, whether the row is a control, what else changed.

Rows the change cannot touch (the Keras-on-TensorFlow rows of a jax-only change, the JAX rows of a TensorFlow/Keras
one) are the control: if one moves, the machine moved, not the change. A row read slower or faster is timed again,
alone, and its finding stands only where that recheck reads it the same way (`Row.moved`).
"""

from __future__ import annotations

import dataclasses
import re

from mnist_models.bench import baseline, comparability, fingerprint, verdict
from mnist_models.bench.compile_counts import count_changes
from mnist_models.bench.upgrade.sides import Side

# What each kind of row runs on: a change of one of these packages or settings can touch it.
_USES = {
  "jax": {"jax", "jaxlib", "flax", "optax", "ml-dtypes", "XLA_FLAGS"},
  "keras-on-jax": {"jax", "jaxlib", "keras", "ml-dtypes", "XLA_FLAGS"},
  "keras-on-tf": {"tensorflow", "keras", "ml-dtypes", "XLA_FLAGS", "TF_*"},
  "torch": {"torch"},
}


@dataclasses.dataclass(frozen=True)
class Rule:
  """How rows are judged: changes within `threshold` are noise; above `busy_cpus` of other processes' load a row's
  verdict is information only; each interval at `confidence`."""

  threshold: float = verdict.SIDE_BY_SIDE_THRESHOLD
  busy_cpus: float = verdict.BUSY_CPUS
  confidence: float = verdict.CONFIDENCE  # each look's (the command looks twice: upgrade.budget)


@dataclasses.dataclass(frozen=True)
class Row:
  """One benchmark judged: its verdict of B against A, whether it is a control, and what else changed."""

  key: str
  verdict: dict
  control: bool
  busy: bool
  medians: tuple[float, float]  # A's and B's median seconds per call (median over their visits)
  program: list[str]  # the fingerprint's changes, A -> B
  recheck: dict | None = None  # the verdict of its fresh visits, where it was read to move

  @property
  def read_to_move(self) -> bool:
    """Its first reading is slower or faster: it is timed again, alone, before that can stand."""
    return self.verdict["verdict"] in ("slower", "faster")

  @property
  def final(self) -> str:
    """Its verdict once the recheck is read: a first reading of slower or faster stands only where fresh visits read
    it the same way ('unconfirmed' where none were timed); fresh visits that read no change make it 'same'; any
    other second reading leaves it 'undecided'."""
    first = self.verdict["verdict"]
    if not self.read_to_move:
      return first
    if self.recheck is None:
      return "unconfirmed"
    again = self.recheck["verdict"]
    return again if again in (first, "same") else "undecided"

  @property
  def moved(self) -> bool:
    """Read slower or faster, and read so again by its recheck."""
    return self.final in ("slower", "faster")

  @property
  def held(self) -> str:
    """What its recheck made of the first reading: 'confirmed' or 'not confirmed' ('' where it had none)."""
    return "" if self.recheck is None else "confirmed" if self.moved else "not confirmed"

  def rechecked(self, again: Row | None) -> Row:
    """This row with `again`'s verdict as its recheck (busy if either reading was); None: the recheck did not time
    it (its suite dropped it), so its first reading does not stand."""
    if again is None:
      return dataclasses.replace(self, recheck={"verdict": "missing", "why": "not timed by the recheck"})
    return dataclasses.replace(self, recheck=again.verdict, busy=self.busy or again.busy)


def uses(extra_info: dict) -> str:
  """What a row runs on (a key of _USES), from its extra_info."""
  framework = extra_info.get("framework")
  if framework == "keras":
    on_jax = extra_info.get("keras_backend") == "jax" or str(extra_info.get("variant", "")).endswith("-jax")
    return "keras-on-jax" if on_jax else "keras-on-tf"
  return framework if framework in _USES else "jax"


def changed(a_info: dict, b_info: dict, a: Side, b: Side) -> set[str] | None:
  """What differs between the sides: package names (from the versions each side recorded and from the pins each was
  built with: a package the suite does not record is still named by its pin) and setting names; None where everything
  may be touched (a revision of the project, a package or setting no row is known by)."""
  if a.rev != b.rev:
    return None
  versions = comparability.differences(a_info.get("versions") or {}, b_info.get("versions") or {})
  names = {_name(d.key) for d in versions} | {_name(pin) for pin in set(a.pins) ^ set(b.pins)}
  names |= {k for k, _ in set(a.settings) ^ set(b.settings)}
  names |= {"pytest arguments"} if a.pytest_args != b.pytest_args else set()
  known = set().union(*_USES.values())
  if any(n not in known and not n.startswith("TF_") for n in names):
    return None
  return names


def _name(requirement: str) -> str:
  """A package's normalized name (PEP 503: 'ml_dtypes' and 'ML-Dtypes' are 'ml-dtypes') of a pin or a version key."""
  return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~ ]", requirement, maxsplit=1)[0]).lower()


def is_control(kind: str, names: set[str] | None) -> bool:
  """Whether nothing that changed can touch a row of `kind`."""
  if names is None:
    return False
  touched = _USES[kind]
  return not any(n in touched or (n.startswith("TF_") and "TF_*" in touched) for n in names)


def judge(a_docs: list[dict], b_docs: list[dict], a: Side, b: Side, rule: Rule = Rule()) -> list[Row]:
  """Every benchmark both sides timed: B's runs against A's (verdict.judge_runs), each side's runs read as one
  pooled baseline (`baseline.Baseline.of_runs`)."""
  sa, sb = (
    baseline.Baseline.of_runs(side.name, [(f"side {side.name}'s run {i + 1}", doc) for i, doc in enumerate(docs)])
    for side, docs in ((a, a_docs), (b, b_docs))
  )
  names = changed(sa.runs[-1][1].get("machine_info") or {}, sb.runs[-1][1].get("machine_info") or {}, a, b)
  rows = []
  for key in sorted(sa.samples.keys() & sb.samples.keys()):
    info_a, info_b = sa.extra_info(key), sb.extra_info(key)
    fp_a, fp_b = info_a.get("fingerprint"), info_b.get("fingerprint")
    rows.append(
      Row(
        key,
        verdict.judge_runs(sa.samples[key], sb.samples[key], rule.threshold, rule.confidence),
        is_control(uses(info_a), names),
        max(sa.others_cpu(key) or 0.0, sb.others_cpu(key) or 0.0) > rule.busy_cpus,
        (_median(a_docs, key), _median(b_docs, key)),
        _program_changes(fp_a, fp_b),
      )
    )
  return rows


def _program_changes(a: dict | None, b: dict | None) -> list[str]:
  """The fingerprints' differences, A -> B; a program only one side could fingerprint is one."""
  if a and b:
    return fingerprint.diff(a, b)
  return [f"a program fingerprinted on side {'A' if a else 'B'} only"] if a or b else []


def one_side(a_docs: list[dict], b_docs: list[dict]) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """The benchmarks that only A's runs timed, and those that only B's did (a renamed variant, a test one side lacks):
  never judged, and said."""
  a, b = (
    {key for doc in docs for key, bench in baseline.benchmarks_by_key(doc).items() if "paired" in bench["extra_info"]}
    for docs in (a_docs, b_docs)
  )
  return tuple(sorted(a - b)), tuple(sorted(b - a))


def _median(docs: list[dict], key: str) -> float:
  found = (baseline.benchmarks_by_key(doc).get(key) for doc in docs)
  values = sorted(b["stats"]["median"] for b in found if b)
  return values[len(values) // 2]


def counts_changes(a_counts: dict, b_counts: dict) -> list[str]:
  """Each scenario whose counts differ between the sides: 'name: compiles 2 -> 3'."""
  out = []
  for name in sorted(a_counts.keys() | b_counts.keys()):
    if name not in a_counts or name not in b_counts:
      out.append(f"{name}: only on side {'A' if name in a_counts else 'B'}")
    elif moves := count_changes(a_counts[name], b_counts[name]):
      out.append(f"{name}: " + ", ".join(f"{k} {x} -> {y}" for k, x, y in moves))
  return out
