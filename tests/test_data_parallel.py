"""Data-parallel training (8 simulated CPU devices, in a fresh process) equals single-device training."""

import os

import jax
import numpy as np
import pytest

import mnist_models as mm
from mnist_models.bench import processes, runs

BATCH = 60  # not a multiple of 8: the 8-device runs pad it to 64 with masked-out examples
STEPS = 3
DEVICES = [1, 2, 8]
# The all-reduce sums gradients in another float32 order than one device does. Measured after 3
# steps: losses within 5e-7 (rtol ~2e-7), weights within 5.3e-6 (JAX) and 5.6e-7 (Keras). Adam moves a
# weight by about lr = 1e-3 per step whatever the gradient's size, so 1e-4 (a tenth of one step) still
# catches a wrong split of the batch, a missing all-reduce or a wrongly scaled loss.
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-4
# Adam normalises the gradient away: gradients N times too large (local means summed over N replicas)
# change its steps only through eps (5.9e-5 in weights: under WEIGHT_ATOL). With b1 = b2 = 0 and eps = 1
# a step is lr * g / (|g| + 1): this batch's gradients are at most 0.106 (measured), so it is SGD with
# step lr to within 10%, and a wrong gradient scale moves every weight that many times too far (3 steps
# move weights up to 0.024; data parallel vs one device differ by 3e-8, measured). Same in both frameworks.
SGD_LIKE = mm.TrainConfig(learning_rate=0.1, b1=0.0, b2=0.0, eps=1.0)
CONFIGS = {"adam": mm.DEFAULT_TRAIN, "sgd-like": SGD_LIKE}


@pytest.fixture(scope="module")
def batch(bundled) -> mm.Batches:
  return mm.one_batch(bundled.train_images[:BATCH], bundled.train_labels[:BATCH])


def _repeated(batch: mm.Batches) -> mm.Batches:
  """`batch` stacked STEPS times: [STEPS, BATCH, ...]."""
  return mm.make_batches(batch.images, batch.labels, BATCH, num_batches=STEPS)


def _remote_steps(process, factory, batch, devices, config):
  """STEPS steps of `factory`'s run in `process`: (info, losses, final weights)."""
  info = process.call(runs.make_run, factory, batch, num_devices=devices, config=config)
  return info, process.call(runs.steps, STEPS), process.call(runs.weights)


@pytest.fixture(scope="module", params=list(CONFIGS))
def config(request) -> mm.TrainConfig:
  return CONFIGS[request.param]


@pytest.fixture(scope="module")
def jax_single_device(batch, config):
  """STEPS plain single-device steps in this process: losses and final weights."""
  state = mm.create_train_state(rng=jax.random.key(0), config=config)
  state, losses = mm.train_steps(state, mm.device_batches(_repeated(batch)), mm.tuned_jit(mm.train_step))
  return losses, [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]


@pytest.fixture(scope="module")
def keras_single_device(batch, config):
  """STEPS graph-mode `train_on_batch` steps in this process, from the same initial weights."""
  model = mm.compile_keras_model(mm.build_keras_cnn(), "graph", config=config)
  mm.copy_flax_params_to_keras(mm.init_params(rng=jax.random.key(0)), model)
  losses = mm.keras_train_steps(model, _repeated(batch))
  return losses, model.get_weights()


def _max_diff(a, b):
  return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("devices", DEVICES)
def test_jax_data_parallel_equals_one_device(eight_devices, need_devices, batch, config, jax_single_device, devices):
  need_devices("jax", devices)
  info, losses, weights = _remote_steps(eight_devices, runs.jax_run, batch, devices, config)
  assert info["devices"] == devices and info["global_batch"] == -(-BATCH // devices) * devices
  np.testing.assert_allclose(losses, jax_single_device[0], rtol=LOSS_RTOL)
  assert _max_diff(weights, jax_single_device[1]) < WEIGHT_ATOL


@pytest.mark.parametrize("devices", DEVICES)
def test_keras_mirrored_equals_one_device(eight_devices, need_devices, batch, config, keras_single_device, devices):
  need_devices("keras", devices)
  info, losses, weights = _remote_steps(eight_devices, runs.keras_run, batch, devices, config)
  assert info["devices"] == devices
  np.testing.assert_allclose(losses, keras_single_device[0], rtol=LOSS_RTOL)
  assert _max_diff(weights, keras_single_device[1]) < WEIGHT_ATOL


def test_pad_batch_masks_the_padding(batch):
  padded = mm.pad_batch(batch, 8)
  assert len(padded.mask) == 64 and padded.images.shape == (64, 28, 28, 1)
  assert padded.mask.sum() == BATCH and not padded.mask[BATCH:].any()
  np.testing.assert_array_equal(padded.images[:BATCH], batch.images)
  assert mm.pad_batch(batch, 4) is batch  # 60 divides by 4: nothing to pad


def test_more_devices_than_exist_is_a_clear_error():
  with pytest.raises(ValueError, match=r"asked for 2 devices but JAX has 1 .*simulate_cpu_devices"):
    mm.data_mesh(2)
  with pytest.raises(ValueError, match=r"asked for 2 devices but TensorFlow has 1"):
    mm.mirrored_strategy(2)


def test_simulating_devices_after_start_is_a_clear_error():
  jax.devices()  # this process's JAX has started
  with pytest.raises(RuntimeError, match="already started in this process.*FreshProcess"):
    mm.simulate_cpu_devices(4)
  assert len(jax.devices()) == 1


def test_a_fresh_process_gets_its_environment_and_a_crash_is_a_clear_error():
  with processes.FreshProcess(env={"MNIST_BENCH_PROBE": "on"}) as process:
    assert process.call(os.getenv, "MNIST_BENCH_PROBE") == "on"
    with pytest.raises(RuntimeError, match=r"the worker process \(environment .*\) died in _exit"):
      process.call(os._exit, 3)
  assert "MNIST_BENCH_PROBE" not in os.environ  # this process's environment is as it was


def test_the_first_worker_asked_for_starts_every_planned_one_once(monkeypatch):
  """In a pytest-xdist process nothing starts until a test asks; then every planned worker starts side by side,
  importing Keras at start where any use of it asked for Keras."""
  started = []

  class Recorded:
    def __init__(self, env, cpu_devices, nice):
      self.key = (env, cpu_devices)

    def start(self):
      return self

    def preload(self, keras):
      started.append((*self.key, keras))

    def wait(self):
      return self

  monkeypatch.setattr(processes, "FreshProcess", Recorded)
  registry = processes.Workers()
  registry.plan([({"A": "1"}, None, False), (None, 8, True), ({"B": "1"}, None, False), ({"A": "1"}, None, True)])
  assert started == []
  assert registry.get(None, 8).key == (None, 8)
  assert started == [({"A": "1"}, None, True), (None, 8, True), ({"B": "1"}, None, False)]
  registry.get({"A": "1"})
  assert len(started) == 3
