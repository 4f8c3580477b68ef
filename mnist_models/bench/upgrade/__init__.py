"""mnist_models.bench.upgrade: an upgrade judged side by side: `python -m mnist_models.bench.upgrade --a ... --b ...`.

  sides         what a side is (pins, settings, a git revision, pytest arguments); one visit to it
  environments  a side's checkout and virtual environment: built once, by one process, from what it must install
  judge         B's runs against A's, row by row: verdicts, controls, fingerprints, compile counts
  report        what the comparison found, one list of findings: the terminal's lines, Markdown, JSON
  command       the command line as one Plan; the visits alternated, the moved rows rechecked; the exit status

It imports the harness (mnist_models.bench: the verdicts, baselines, fingerprints, compile counts) and runs each
side's suite in a pytest process of its own; the harness never imports it.
"""
