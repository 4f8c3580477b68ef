"""The suite's options, hooks, fixtures and markers all live in one plugin: mnist_models/bench/plugin.py."""

# pytester lets tests run an inner pytest to prove that a guard really fails.
pytest_plugins = ["pytester", "mnist_models.bench.plugin"]
