"""A real, known slowdown of the tuned JAX train step, for proving that the verdicts see it (docs/notebook/method.md).

Not part of the suite: load it into a benchmark run with `-p lab.slowdown --slowdown=0.10`. It
replaces `mnist_models.train_step`, for this session only, with the same step followed by a chain of
256x256 float32 matmuls whose result enters the returned loss at 1e-30 (far below a float32 ulp of the
loss, so every loss check still holds; XLA cannot drop work whose result is used). The chain's length
is calibrated at the start, on this machine, from paired times of the jitted step and of one
matmul, then corrected once from the slowed step's time measured as the verdicts measure it
(consecutive calls paired with the yardstick, `_as_judged`), so that the work added is the asked
fraction of the step at batch 64; the terminal summary prints the fraction then measured, and the saved run keeps
it (`"slowdown"`: fraction, links, measured, calibrated). `--slowdown-links=N` skips the calibration and adds N
matmuls: the same work in every process, as a real change is (a calibration reads a process's own speed, which
varies between processes by more than the 5% asked). `python lab/slowdown.py 0.05` finds that N once, on one
CPU as the suite runs: the median over several processes' worth of measurements of one link's share of the step.
The library does not know: only this plugin changes what it runs.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench import BATCH, host_batch, pairing, verdict

_ADDED = pytest.StashKey[tuple]()


def pytest_addoption(parser):
  parser.addoption("--slowdown", type=float, default=0.10, help="the fraction of the train step's time to add")
  parser.addoption("--slowdown-links", type=int, default=None, help="add this many matmuls (no calibration)")


def _ratio(a, b, pairs=60):
  """Median over alternating calls of time(b) / time(a): paired, so that the machine's phases cancel."""
  a(), b()
  logs = []
  for _ in range(pairs):
    times = []
    for fn in (a, b):
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times.append(time.perf_counter() - start)
    logs.append(np.log(times[1] / times[0]))
  return float(np.exp(np.median(logs)))


def _as_judged(a, b, blocks=4, per_block=20):
  """time(b) / time(a) as the verdicts see it: consecutive calls, each after the suite's yardstick, in
  alternating blocks of `per_block` (so that the machine's phases cancel); the ratio of their median log-ratios.

  Alternating single calls (`_ratio`) put each slowed call after an unslowed one, not as the benchmarks run them.
  """
  yardstick, logs = verdict.Yardstick(), {a: [], b: []}
  for block in range(2 * blocks):
    fn = (a, b)[block % 2]
    fn()
    logs[fn] += pairing.log_ratio_pairs(_synced(fn), yardstick, per_block)
  return float(np.exp(np.median(logs[b]) - np.median(logs[a])))


def _synced(fn):
  """`fn`, returning once the device has finished."""
  return lambda: jax.block_until_ready(fn())


def slowed(step, links: int):
  """`step`, then `links` dependent 256x256 matmuls seeded from its loss, their sum added at 1e-30."""

  def slowed_step(state, batch):
    state, loss = step(state, batch)
    x = jnp.full((256, 256), loss / 256)
    x = jax.lax.fori_loop(0, links, lambda _, x: jnp.tanh(x @ x), x)
    return state, loss + 1e-30 * jnp.sum(x)

  return slowed_step


@pytest.fixture(scope="session", autouse=True)
def _slow_train_step(pytestconfig, request):
  """Calibrates the chain on this machine (after the suite pinned its CPU), then patches mm.train_step. Nothing
  where nothing is timed (the compile counts the upgrade command records on each side, whose tests define data
  fixtures of their own: what is counted must be the step as the suite compiles it)."""
  if pytestconfig.getoption("benchmark_disable"):
    yield
    return
  batches = request.getfixturevalue("batches")
  fraction, original = pytestconfig.getoption("slowdown"), mm.train_step
  batch, state = jax.device_put(host_batch(batches, BATCH)), mm.create_train_state(rng=jax.random.key(0))
  step = mm.tuned_jit(original)
  x, link = jnp.ones((256, 256)) / 256, jax.jit(lambda x: jnp.tanh(x @ x))
  unslowed = functools.partial(step, state, batch)
  fixed = pytestconfig.getoption("slowdown_links")
  if fixed:
    mm.train_step = slowed(original, fixed)
    asked, measured = fixed, _as_judged(unslowed, functools.partial(mm.tuned_jit(mm.train_step), state, batch)) - 1
  else:
    links = max(1, round(fraction * _ratio(lambda: link(x), lambda: step(state, batch))))
    for _ in range(2):  # the chain costs more or less inside the step than alone: measure it there, correct once
      mm.train_step = slowed(original, links)
      measured = _as_judged(unslowed, functools.partial(mm.tuned_jit(mm.train_step), state, batch)) - 1
      links, asked = max(1, round(links * fraction / max(measured, 1e-3))), links
  pytestconfig.stash[_ADDED] = {"fraction": fraction, "links": asked, "measured": measured, "calibrated": not fixed}
  yield
  mm.train_step = original


def pytest_benchmark_update_json(config, benchmarks, output_json):
  if _ADDED in config.stash:
    output_json["slowdown"] = config.stash[_ADDED]


def pytest_terminal_summary(terminalreporter, config):
  if _ADDED in config.stash:
    added = config.stash[_ADDED]
    how = f"asked +{added['fraction']:.0%}" if added["calibrated"] else "fixed by --slowdown-links"
    terminalreporter.write_line(
      f"slowdown plugin: the tuned JAX train step got {added['links']} matmuls, {how}, "
      f"measured +{added['measured']:.1%} (4 alternating blocks of 20 calls, each paired with the yardstick, "
      "before the benchmarks)"
    )


def calibrate(fraction: float, repeats: int = 9, trial: int = 16) -> tuple[int, list[float]]:
  """The links adding `fraction` to the step, from `repeats` measurements (`_as_judged`) of `trial` links' share."""
  from mnist_models.bench import EPOCH_BATCHES, machine

  machine.pin_to_one_cpu()
  data = mm.load_mnist("auto")
  batches = mm.make_batches(data.train_images, data.train_labels, BATCH, num_batches=EPOCH_BATCHES, seed=0)
  batch, state = jax.device_put(host_batch(batches, BATCH)), mm.create_train_state(rng=jax.random.key(0))
  step, slow = mm.tuned_jit(mm.train_step), mm.tuned_jit(slowed(mm.train_step, trial))
  fast, slower = functools.partial(step, state, batch), functools.partial(slow, state, batch)
  shares = [_as_judged(fast, slower) - 1 for _ in range(repeats)]
  return max(1, round(fraction * trial / float(np.median(shares)))), shares


if __name__ == "__main__":
  import sys

  wanted = float(sys.argv[1])
  links, shares = calibrate(wanted)
  print(f"{links} links for +{wanted:.0%}: 16 links measured " + " ".join(f"{s:+.1%}" for s in shares))
