"""What a run says at its end, in the terminal and as Markdown (for a CI page), from one list of notes.

The comparison table; with a verdict baseline, the notes on it (how many verdicts of each kind, the pooled
runs, another machine or versions, a busy machine, what was not judged), each verdict, the programs that
changed, and the regressions. The Markdown puts the regressions first, then the same notes, then the table.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import mnist_models as mm
from mnist_models.bench import table, verdict
from mnist_models.bench.session import BenchSession
from mnist_models.bench.workload import BATCH

_ORDER = {"slower": 0, "undecided": 1, "faster": 2, "same": 3}


@dataclasses.dataclass(frozen=True)
class Note:
  """One line of the summary; `color` for the terminal ('red', 'yellow', 'green' or None)."""

  text: str
  color: str | None = None


def tally(session: BenchSession) -> str:
  """'1 slower, 0 faster, 3 undecided, 28 same'."""
  kinds = [r.verdict["verdict"] for r in session.judged]
  return ", ".join(f"{kinds.count(k)} {k}" for k in ("slower", "faster", "undecided", "same"))


def notes(session: BenchSession) -> list[Note]:
  """The notes on a run judged against a baseline: for the terminal and the Markdown alike."""
  out = [_pool_note(session), *_machine_notes(session)]
  if busy := sum(bool(r.verdict.get("busy")) for r in session.judged):
    out.append(
      Note(
        f"BUSY MACHINE: other processes took more than {session.options.busy_cpus} CPUs while {busy} benchmarks were "
        "timed (in this run or the baseline's): their timing verdicts are information only; rerun on a "
        "quiet machine",
        "yellow",
      )
    )
  if not session.judged:
    out.append(
      Note(
        "NOTHING JUDGED: no benchmark of the baseline was timed in this run (tests only, or -k/-m chose "
        "none of them, or --benchmark-skip); run the benchmarks: pytest --benchmark-only "
        "--verdict-baseline=PATH",
        "red",
      )
    )
  return out


def _pool_note(session: BenchSession) -> Note:
  """How many runs the baseline pools."""
  pool = session.baseline.runs
  if len(pool) > 1:
    names = ", ".join(p.name for p, _ in pool)
    return Note(f"baseline: {len(pool)} runs of the same commit, saved at different moments, pooled ({names})")
  return Note(
    "baseline: one run, one moment of the machine (save two more, minutes or hours apart, under "
    "the same name to pool them: docs/methodology.md)"
  )


def _machine_notes(session: BenchSession) -> list[Note]:
  """What differs from the baseline's machine and versions, and what that leaves judged."""
  comparison, out = session.comparison, []
  if comparison.other_host:
    out.append(
      Note(
        f"BASELINE FROM ANOTHER MACHINE OR BOOT ({comparison.machine[0]}): timing verdicts are information only, "
        "fingerprints and compile counts judged; for timings, judge side by side (python -m "
        "mnist_models.bench.upgrade) or against baselines saved here since boot",
        "yellow",
      )
    )
  elif comparison.machine:
    out.append(
      Note(
        "OTHER MACHINE OR SETUP: timing verdicts are information only ("
        + "; ".join(map(str, comparison.machine))
        + ")",
        "yellow",
      )
    )
  if comparison.versions:
    out.append(Note("versions differ (an upgrade comparison): " + "; ".join(map(str, comparison.versions))))
  return out


def checks_note(session: BenchSession) -> Note:
  """Which of the three checks this run made: timings, fingerprints, compile counts (the stored scenarios of
  tests/test_recompilation.py, which `--benchmark-only` leaves out: `tox -e compare` runs them first)."""
  counts, differ = session.counts, session.counts.differ
  counted = (
    f"compile counts: {len(counts.recorded)} scenarios checked against {counts.stored_file}"
    + (f", {len(differ)} differ ({', '.join(differ)})" if differ else ", all as stored")
    if counts.recorded and not counts.update
    else "compile counts: not checked in this run (tests/test_recompilation.py did not run; tox -e compare runs it "
    "first)"
  )
  judged = (
    f"timings: {len(session.judged)} judged; fingerprints: {len(session.programs)} compared"
    if session.baseline is not None
    else "timings and fingerprints: not judged (no --verdict-baseline)"
  )
  return Note(
    f"checks: {judged}; {counted}",
    "red" if differ else None,
  )


def programs_note(session: BenchSession) -> Note:
  changed = [p for p in session.programs if p.changes]
  info_only = changed and not changed[0].exact
  return Note(
    f"fingerprints: {len(session.programs)} compiled programs compared with the baseline's, {len(changed)} "
    "changed" + (" (versions or machine differ: information only)" if info_only else "")
  )


def missing_notes(session: BenchSession) -> list[Note]:
  missing = sorted(set(session.baseline.samples) - {r.key for r in session.judged})
  return [Note(f"not judged (in the baseline, not timed in this run): {', '.join(missing)}")] if missing else []


def verdict_notes(session: BenchSession) -> list[Note]:
  """One line per judged benchmark, confirmed regressions first."""
  out = []
  for r in sorted(
    session.judged, key=lambda r: (not verdict.confirmed(r.verdict), _ORDER[r.verdict["verdict"]], r.key)
  ):
    v, confirmed = r.verdict, verdict.confirmed(r.verdict)
    again = f"; fresh sample: {verdict.describe(v['recheck'])}" if "recheck" in v else ""
    again += f" [information only: {v['not_judged']}]" if "not_judged" in v else ""
    color = (
      "red" if confirmed else "yellow" if v["verdict"] == "slower" else "green" if v["verdict"] == "same" else None
    )
    out.append(Note(f"  {r.key:<36} {verdict.describe(v)}{again}", color))
  return out


def regressions_note(session: BenchSession) -> Note:
  """The outcome: the regressions (exit 1), what is not known (exit 6: inconclusive), or no regression."""
  regressions, unknown = session.regressions(), session.inconclusive()
  if regressions:
    return Note(f"REGRESSIONS: {', '.join(regressions)}", "red")
  if unknown:
    return Note(
      "INCONCLUSIVE (exit 6): no regression confirmed, but not known for "
      + "; ".join(unknown)
      + ": rerun on a quiet machine, beside a baseline saved here (or side by side: "
      "python -m mnist_models.bench.upgrade)",
      "yellow",
    )
  return Note("no regression: every timing judged, none slower; no changed program", "green")


def write_terminal(reporter: Any, session: BenchSession) -> None:
  """The table (with its legend and roofline line), then the verdicts."""
  rows = session.table_rows()
  if rows:
    reporter.write_sep("-", "comparison: median per call, and its ratio to the group's JAX reference")
    reporter.write_line(table.format_table(rows, session.references))
    reporter.write_line(table.legend(session.peak()))
    if roofline := table.roofline_line(rows, BATCH, mm.train_flops(mm.DEFAULT_SPEC, BATCH), session.peak()):
      reporter.write_line(roofline)
  if session.baseline is None and session.counts.recorded and not session.counts.update:
    _write(reporter, checks_note(session))
  if session.baseline is not None:
    reporter.write_sep(
      "-",
      f"verdicts vs {session.options.baseline_path}: paired with the yardstick "
      f"({verdict.YARDSTICK}), threshold {session.options.threshold:.0%}",
    )
    changed = [
      Note(
        f"  {p.key}: " + ", ".join(p.changes[:8]) + (" ..." if len(p.changes) > 8 else ""), "red" if p.exact else None
      )
      for p in session.programs
      if p.changes
    ]
    lines = [
      Note(f"verdicts: {tally(session)}"),
      checks_note(session),
      *notes(session),
      *verdict_notes(session),
      programs_note(session),
      *changed,
      *missing_notes(session),
      regressions_note(session),
    ]
    for note in lines:
      _write(reporter, note)


def _write(reporter: Any, note: Note) -> None:
  reporter.write_line(note.text, **({note.color: True} if note.color else {}))


def markdown(
  rows: list[dict], references: dict[str, str], regressions: list[str], lines: list[str], inconclusive: list[str] = ()
) -> str:
  """A run's result as Markdown for a CI page: `regressions` first (or what is `inconclusive`), then `lines` (the
  notes), then the table."""
  if regressions:
    head = f"### mnist-bench: {len(regressions)} regression(s)\n\n" + "\n".join(f"- **{r}**" for r in regressions)
  elif inconclusive:
    head = "### mnist-bench: inconclusive (not known)\n\n" + "\n".join(f"- **{r}**" for r in inconclusive)
  else:
    head = "### mnist-bench: no regression"
  parts = [head, *(f"- {line}" for line in lines)]
  if rows:
    parts += ["", table.markdown_table(rows, references)]
  return "\n".join(parts) + "\n"


def session_markdown(session: BenchSession) -> str:
  """The session's result as Markdown (`markdown`)."""
  lines = []
  if session.baseline is not None:
    notes_ = [checks_note(session), *notes(session), programs_note(session), *missing_notes(session)]
    lines = [f"verdicts vs `{session.options.baseline_path}`: {tally(session)}", *(n.text for n in notes_)]
  return markdown(session.table_rows(), session.references, session.regressions(), lines, session.inconclusive())


def write_markdown(reporter: Any, session: BenchSession) -> None:
  """The Markdown to --bench-summary and to $GITHUB_STEP_SUMMARY (appended: it collects every step's summary)."""
  own, github = session.options.summary_path, os.environ.get("GITHUB_STEP_SUMMARY")
  paths = [p for p in (own, github) if p]
  if not paths or not (session.table_rows() or session.baseline is not None):
    return
  text = session_markdown(session)
  for path in paths:
    with open(path, "w" if path == own else "a") as f:
      f.write(text)
  reporter.write_line(f"Markdown summary written to {', '.join(paths)}")


def write_counts(reporter: Any, session: BenchSession) -> None:
  """With --update-compile-counts: what the update changed in the stored counts."""
  if not session.options.update_counts:
    return
  changes = session.counts.changes
  reporter.write_sep("-", f"--update-compile-counts: {session.counts.stored_file}")
  reporter.write_line(
    "\n".join(changes or ["no change"])
    if changes is not None
    else "nothing recorded: no test that checks counts ran; the file is unchanged",
    yellow=True,
  )
