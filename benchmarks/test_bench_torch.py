"""PyTorch beside JAX and Keras (the optional extra `.[torch]`; skipped without it): the same CNN, batches and Adam,
eager and under torch.compile, in the train-step, eval-step, epoch and compile groups.

PyTorch gets as many intra-op threads as this process may use CPUs (`torch_threads`, recorded), as JAX
and TF size their pools, and runs on the GPU where there is one, as JAX does. A timed round must not
compile a graph (TorchDynamo's counters must not move); reading the loss back waits for the device.
"""

import pytest

import mnist_models as mm
from mnist_models.bench import BATCH, Workload, host_batch

MODES = ("eager", "compile")
COMPILE_ROUNDS = 3  # each round compiles from scratch (seconds)


def _device() -> str:
  import torch

  return "cuda" if torch.cuda.is_available() else "cpu"


def _extra(threads: int) -> dict:
  return {"torch_threads": threads, "torch_device": _device()}


def _model(mode, params=None):
  model = mm.TorchCNN() if params is None else mm.copy_flax_params_to_torch(params, mm.TorchCNN())
  model = model.to(_device())
  return model, (mm.compile_torch_model(model) if mode == "compile" else model)


@pytest.mark.benchmark(group="train_step")
@pytest.mark.parametrize("mode", MODES)
def test_train_step_torch(timed, torch_threads, batches, mode):
  model, run = _model(mode)
  optimizer, batch = mm.torch_adam(model), mm.torch_batch(host_batch(batches, BATCH), _device())
  timed(
    lambda: float(mm.torch_train_step(run, optimizer, batch)),
    workload=Workload.train(batch),
    framework="torch",
    variant=f"torch-{mode}",
    counts=mm.torch_compile_counts,
    extra=_extra(torch_threads),
  )


@pytest.mark.benchmark(group="eval_step")
@pytest.mark.parametrize("mode", MODES)
def test_eval_step_torch(timed, torch_threads, seed_reference, mode):
  state, host, reference = seed_reference
  _, run = _model(mode, state.params)
  batch = mm.torch_batch(host, _device())
  timed(
    lambda: float(mm.torch_eval_loss(run, batch)),
    workload=Workload.eval(batch),
    framework="torch",
    variant=f"torch-{mode}",
    expect=reference,
    counts=mm.torch_compile_counts,
    extra=_extra(torch_threads),
  )


@pytest.mark.benchmark(group="epoch")
@pytest.mark.parametrize("mode", MODES)
def test_epoch_torch_loop(timed, torch_threads, batches, mode):
  """A Python loop over device-resident batches, the losses read back once at the end: as jax-loop."""
  model, run = _model(mode)
  optimizer, on_device = mm.torch_adam(model), mm.torch_batches(batches, _device())
  timed(
    lambda: mm.torch_train_steps(run, optimizer, on_device),
    workload=Workload.train(on_device),
    framework="torch",
    variant=f"torch-loop-{mode}",
    counts=mm.torch_compile_counts,
    extra=_extra(torch_threads),
  )


@pytest.mark.benchmark(group="compile")
def test_compile_torch(timed, torch_threads, seed_reference):
  """torch.compile's first train step on a new model, TorchDynamo and Inductor's caches emptied each round."""
  import torch

  state, host, reference = seed_reference
  batch = mm.torch_batch(host, _device())
  torch._inductor.config.fx_graph_cache = False  # no compiled graph reused from disk either

  def fresh():
    torch._dynamo.reset()
    model, run = _model("compile", state.params)
    return (run, mm.torch_adam(model)), {}

  timed.first_call(
    lambda run, optimizer: float(mm.torch_train_step(run, optimizer, batch)),
    setup=fresh,
    workload=Workload.train(batch),
    framework="torch",
    variant="torch-compile",
    expect=reference,
    rounds=COMPILE_ROUNDS,
    extra=_extra(torch_threads),
  )
