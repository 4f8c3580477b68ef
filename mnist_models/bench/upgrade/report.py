"""What a side-by-side comparison found, as one list of findings, rendered for the terminal, as Markdown and as JSON."""

from __future__ import annotations

import dataclasses

import numpy as np

from mnist_models.bench import comparability, verdict
from mnist_models.bench.upgrade.judge import Row
from mnist_models.bench.upgrade.sides import Side

SAME_SIDES = "A and B install, set and run the same: this is a control run (every verdict should be 'same')"


@dataclasses.dataclass(frozen=True)
class Finding:
  """One finding: a line, the judged rows under it (the terminal's lines, Markdown's table), then its items (each
  an indented line, or a Markdown list entry); `alarm` for what a reader must not miss (bold in Markdown)."""

  text: str
  rows: tuple[Row, ...] = ()
  items: tuple[str, ...] = ()
  alarm: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
  """What the comparison found, and how it was made."""

  a: Side
  b: Side
  same_sides: bool
  rows: list[Row]
  counts: list[str]  # the compile-count scenarios that differ (judge.counts_changes)
  versions: tuple[dict, dict]  # each side's machine_info
  visits: int
  wall_s: float
  runs: tuple[list[str], list[str]]
  rechecked: tuple[list[str], list[str]] = ([], [])  # the moved rows' fresh visits
  built_s: float = 0.0  # of wall_s, building the sides' environments
  one_side: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # benchmarks only A timed, only B timed
  minutes: float | None = None  # the budget it was given
  target: float | None = None  # the resolution the open rows' further runs were planned to reach (upgrade.budget)

  @property
  def controls_moved(self) -> list[str]:
    return [r.key for r in self.rows if r.control and r.moved]

  @property
  def exact(self) -> bool:
    """Whether programs and counts must hold: both sides on one kind of machine, set up alike, with the same
    compiler-side versions (comparability's rule for fingerprints)."""
    return comparability.compare(*self.versions).programs_comparable

  @property
  def slower(self) -> list[str]:
    """Rows the change can touch, confirmed slower by fresh visits, on a quiet machine whose controls held still."""
    if self.controls_moved:
      return []
    return [r.key for r in self.rows if not r.control and not r.busy and r.final == "slower"]

  @property
  def regressions(self) -> list[str]:
    """What fails the command: rows confirmed slower; changed programs and compile counts where they must hold."""
    changed = [f"{r.key} (program changed)" for r in self.rows if r.program] + [f"counts: {c}" for c in self.counts]
    return [f"{key} (slower, confirmed)" for key in self.slower] + (changed if self.exact else [])

  @property
  def inconclusive(self) -> list[str]:
    """Why the comparison does not know whether B is slower: each row or fact it could not judge."""
    why = [f"{r.key}: {r.final}" for r in self.rows if r.final in ("undecided", "unconfirmed") and not r.busy]
    why += [f"{r.key}: busy machine (information only)" for r in self.rows if r.busy]
    why += [f"the machine moved: controls {', '.join(self.controls_moved)} moved"] if self.controls_moved else []
    why += [f"{key}: timed on side {side} only" for side, keys in zip("AB", self.one_side, strict=True) for key in keys]
    why += ["no benchmark timed on both sides: nothing judged"] if not self.rows else []
    tuning = [info.get("jax_jit_compiler_options") or "none (plain jit)" for info in self.versions]
    if tuning[0] != tuning[1]:
      why.append(f"jax-jit's compiler options differ (A: {tuning[0]}; B: {tuning[1]}): its rows time two setups")
    return why

  @property
  def resolution(self) -> dict | None:
    """How far the rows not read to move are known not to have moved: the median and the worst row's bound (each
    row's: the furthest end of its interval); None where every row moved."""
    bounds = sorted(bound(r) for r in self.rows if r.final in ("same", "undecided"))
    if not bounds:
      return None
    return {"median": float(np.median(bounds)), "worst": bounds[-1], "rows": len(bounds)}

  @property
  def exit_status(self) -> int:
    """1: a regression; 3: inconclusive (`inconclusive` says why); 0: judged, no regression."""
    return 1 if self.regressions else 3 if self.inconclusive else 0

  def findings(self) -> list[Finding]:
    """Everything the report says, in order: the sides, the verdicts, the machine, the programs, the counts, the
    outcome."""
    tally = {v: sum(r.final == v for r in self.rows) for v in ("slower", "faster", "same", "undecided", "unconfirmed")}
    programs = [r for r in self.rows if r.program]
    moved = self.controls_moved
    return [
      Finding(
        f"side by side: B judged against A, {self._visits()}, alternating; {self._took()}",
        items=(
          f"A: {self.a.describe()}  ({_versions(self.versions[0])})",
          f"B: {self.b.describe()}  ({_versions(self.versions[1])})",
          *([SAME_SIDES] if self.same_sides else []),
        ),
      ),
      Finding(
        "verdicts, after the recheck: "
        + ", ".join(f"{n} {v}" for v, n in tally.items() if n or v != "unconfirmed")
        + f" of {len(self.rows)} judged",
        rows=tuple(self.rows),
      ),
      *([Finding(self._resolution())] if self.resolution else []),
      *(
        [
          Finding(
            f"the machine moved, not the change: controls {', '.join(moved)} moved though nothing that changed can "
            "touch them; timing verdicts are information only: run again on a quiet machine",
            alarm=True,
          )
        ]
        if moved
        else []
      ),
      Finding(
        f"fingerprints: {len(programs)} of {len(self.rows)} programs differ (what the compiler does differently)",
        items=tuple(f"{r.key}: {_first(r.program, 8)}" for r in programs),
      ),
      Finding(f"compile counts: {len(self.counts)} scenarios differ", items=tuple(self.counts)),
      *([Finding("INCONCLUSIVE: not known", items=tuple(self.inconclusive))] if self.inconclusive else []),
      Finding(self._outcome(), alarm=self.exit_status != 0),
    ]

  def _resolution(self) -> str:
    """'resolution: no change beyond +-2.9% in the median row, +-7.1% in the worst (28 rows not read to move)'."""
    r = self.resolution
    return (
      f"resolution: no change beyond +-{r['median']:.1%} in the median row, +-{r['worst']:.1%} in the worst "
      f"({r['rows']} rows not read to move)"
    )

  def _outcome(self) -> str:
    """The last line: what the exit status means here."""
    if self.regressions:
      return f"REGRESSIONS: {', '.join(self.regressions)} (exit 1)"
    if self.inconclusive:
      n = len(self.inconclusive)
      return f"no regression confirmed, but {n} thing{'s' * (n > 1)} not known (exit 3: inconclusive)"
    return "no regression: every row judged, none slower (exit 0)"

  def lines(self) -> list[str]:
    """The findings as plain text: each a line, its rows and items indented under it."""
    out = []
    for f in self.findings():
      out.append(f.text + (":" if f.items else ""))
      for r in f.rows:
        out.append(f"  {r.key:<36} {_verdict(r)}{' [control]' * r.control}{_busy(r)}")
        out += [f"  {'':<36} {_recheck(r)}"] if r.recheck else []
      out += [f"  {item}" for item in f.items]
    return out

  def markdown(self) -> str:
    """The findings as Markdown: each a paragraph, its rows a table (with both sides' medians), its items a list."""
    out = ["## Side by side: B judged against A", ""]
    for f in self.findings():
      out += [f"**{f.text}**" if f.alarm else f.text, ""]
      if f.rows:
        out += ["| benchmark | A median | B median | verdict | fingerprint changes |", "|---|---|---|---|---|"]
        out += [_table_row(r) for r in f.rows]
        out.append("")
      if f.items:
        out += [*(f"- {item}" for item in f.items), ""]
    return "\n".join(out)

  def record(self) -> dict:
    """The report as JSON."""
    return {
      "a": dataclasses.asdict(self.a),
      "b": dataclasses.asdict(self.b),
      "same_sides": self.same_sides,
      "versions": list(self.versions),
      "visits": self.visits,
      "minutes": self.minutes,
      "target": self.target,
      "resolution": self.resolution,
      "wall_s": self.wall_s,
      "built_s": self.built_s,
      "runs": list(self.runs),
      "rechecked": list(self.rechecked),
      "rows": [dataclasses.asdict(r) for r in self.rows],
      "counts": self.counts,
      "one_side": list(self.one_side),
      "controls_moved": self.controls_moved,
      "regressions": self.regressions,
      "inconclusive": self.inconclusive,
      "exit_status": self.exit_status,
    }

  def _visits(self) -> str:
    """'3 visits each, then 12 open rows up to 9 runs a side (planned to +-3.0%)'."""
    more = [n for n in (r.verdict.get("runs", self.visits) for r in self.rows) if n > self.visits]
    then = f", then {len(more)} open rows up to {max(more)} runs a side" if more else ""
    planned = f" (planned to +-{self.target:.1%})" if more and self.target else ""
    return f"{self.visits} visits each{then}{planned}"

  def _took(self) -> str:
    """'47.7 min (4.5 of them building the sides; a recheck of 2 rows)'."""
    parts = [f"{self.built_s / 60:.1f} of them building the sides"] if self.built_s >= 30 else []
    parts += [f"a budget of {self.minutes:g} min after building"] if self.minutes else []
    moved = sum(r.recheck is not None for r in self.rows)
    parts += [f"a recheck of {moved} row{'s' * (moved > 1)}"] if moved else []
    return f"{self.wall_s / 60:.1f} min" + (f" ({'; '.join(parts)})" if parts else "")


def bound(r: Row) -> float:
  """How far `r` may have moved, either way, as far as its interval shows: its furthest end."""
  return max(abs(r.verdict["low"]), abs(r.verdict["high"]))


def _verdict(r: Row) -> str:
  """Its verdict; an undecided row's with the bound it did reach."""
  found = verdict.describe(r.verdict)
  return found + (f": no change beyond +-{bound(r):.1%}" if r.verdict["verdict"] == "undecided" else "")


def _busy(r: Row) -> str:
  return " [busy machine: information only]" if r.busy else ""


def _recheck(r: Row) -> str:
  """'recheck, alone: slower by 9.8% [...] (confirmed)', or '(not confirmed: the finding does not stand)'."""
  stands = "" if r.moved else ": the finding does not stand"
  again = r.recheck.get("why") or verdict.describe(r.recheck)
  return f"recheck, alone: {again} ({r.held}{stands})"


def _table_row(r: Row) -> str:
  again = f"; {_recheck(r)}" if r.recheck else ""
  return (
    f"| {r.key}{' (control)' * r.control} | {r.medians[0] * 1e3:.2f} ms | {r.medians[1] * 1e3:.2f} ms "
    f"| {_verdict(r)}{_busy(r)}{again} | {_first(r.program, 4) or '-'} |"
  )


def _first(changes: list[str], n: int) -> str:
  return ", ".join(changes[:n]) + (" ..." if len(changes) > n else "")


def _versions(machine_info: dict) -> str:
  v = machine_info.get("versions") or {}
  return ", ".join(f"{k} {v[k]}" for k in ("jax", "flax", "tensorflow", "keras") if k in v)
