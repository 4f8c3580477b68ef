"""The arguments of the tests' inner pytest runs (pytester, in the test's own process): the suite's plugin alone."""

PLUGIN = ("-p", "no:cacheprovider", "-p", "mnist_models.bench.plugin")
# Timed, and unpinned: pinning would confine the outer run's process, which the inner run shares.
TIMED = (*PLUGIN, "--benchmark-only", "--bench-pin=off")
