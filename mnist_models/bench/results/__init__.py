"""mnist_models.bench.results: the tools that make and read the committed runs, each a `python -m` command.

  blog            the blog post's experiment, as written and then fair: `python -m mnist_models.bench.results.blog`
  to_accuracy     time to a target test accuracy over seeds: `... .results.to_accuracy`
  curves          both frameworks trained side by side on the same batches (the figures' and to_accuracy's trainer)
  answer          the README's answer and its figure, from committed runs: `... .results.answer`
  figures         the loss curves and a saved run's bar chart: `... .results.figures {curves,bars}`
  report          a saved run as Markdown tables (docs/results.md, docs/gpu.md): `... .results.report RUN.json`
  history         benchmarks across saved runs: `... .results.history RUN_OR_FOLDER...`

They import the harness (mnist_models.bench: baselines, machine info, timing helpers); the harness never imports them.
"""
