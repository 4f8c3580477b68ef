"""PyTorch training with the same Adam and loss, on the same batches: eager, and under torch.compile.

PyTorch's Adam adds epsilon to sqrt(v) after bias correction, as optax does (Keras adds it before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from mnist_models._batches import Batches
from mnist_models._spec import DEFAULT_TRAIN, TrainConfig


class TorchBatch(NamedTuple):
  """One batch (or stacked batches) as PyTorch tensors on `device`: images, int64 labels, float mask."""

  images: torch.Tensor
  labels: torch.Tensor
  mask: torch.Tensor


def torch_batch(batch: Batches, device: str | torch.device = "cpu") -> TorchBatch:
  """`batch` on the device (copied): the PyTorch side's `jax.device_put(batch)`."""
  return TorchBatch(
    torch.tensor(np.asarray(batch.images), device=device),
    torch.tensor(np.asarray(batch.labels), dtype=torch.int64, device=device),
    torch.tensor(np.asarray(batch.mask), device=device),
  )


def torch_adam(model: torch.nn.Module, config: TrainConfig = DEFAULT_TRAIN) -> torch.optim.Adam:
  """PyTorch's Adam with the suite's hyper-parameters."""
  return torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(config.b1, config.b2), eps=config.eps)


def torch_mean_nll(logprobs: torch.Tensor, batch: TorchBatch) -> torch.Tensor:
  """Mean cross-entropy over the batch's real examples, as `mean_nll`."""
  nll = -logprobs.gather(1, batch.labels[:, None])[:, 0]
  return (nll * batch.mask).sum() / batch.mask.sum().clamp(min=1.0)


def torch_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: TorchBatch) -> torch.Tensor:
  """One Adam step on one batch, in place; returns the batch's loss before the update (a 0-d tensor)."""
  optimizer.zero_grad(set_to_none=True)
  loss = torch_mean_nll(model(batch.images), batch)
  loss.backward()
  optimizer.step()
  return loss.detach()


def torch_eval_loss(model: torch.nn.Module, batch: TorchBatch) -> torch.Tensor:
  """The batch's mean loss, without gradients."""
  with torch.no_grad():
    return torch_mean_nll(model(batch.images), batch)


def compile_torch_model(model: torch.nn.Module) -> Callable:
  """`torch.compile(model)`: the forward (and so its backward) compiled by TorchInductor at the first call."""
  return torch.compile(model)


def torch_batches(batches: Batches, device: str | torch.device = "cpu") -> list[TorchBatch]:
  """Stacked batches [num_batches, batch, ...] as one TorchBatch per step, on the device: as `device_batches`."""
  return [torch_batch(Batches(*b), device) for b in zip(*batches, strict=True)]


def torch_train_steps(model, optimizer, on_device: list[TorchBatch]) -> np.ndarray:
  """`torch_train_step` over the batches in order; each step's loss [num_batches], read back once at the end."""
  return torch.stack([torch_train_step(model, optimizer, batch) for batch in on_device]).cpu().numpy()


def torch_compile_counts() -> dict[str, int]:
  """TorchDynamo's counters: graphs compiled (unique_graphs) and recompilations, for the compile guard."""
  from torch._dynamo.utils import counters  # noqa: PLC0415 - no public API counts compiled graphs

  return {
    "unique_graphs": int(counters["stats"]["unique_graphs"]),
    "recompiles": int(sum(counters["recompiles"].values())),
  }
