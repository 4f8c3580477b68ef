"""What one timed call computes (steps, batch size, images, FLOPs), derived from the batches it steps."""

from __future__ import annotations

import dataclasses
from typing import Any

from mnist_models import DEFAULT_SPEC, Batches, CNNSpec, forward_flops, one_batch, valid_examples

BATCH = 64  # the batch size of every benchmark but the batch-size sweep
EPOCH_BATCHES = 16  # an epoch's batches: fixed, so that the bundled digits and full MNIST give comparable epochs


def host_batch(batches: Batches, batch_size: int) -> Batches:
  """The first `batch_size` real examples of `batches` as one all-real batch, on the host."""
  images, labels = valid_examples(batches)
  return one_batch(images[:batch_size], labels[:batch_size])


@dataclasses.dataclass(frozen=True)
class Workload:
  """The work of one timed call, read off the batches it steps rather than passed by hand.

  Attributes:
    steps: train or eval steps per call.
    batch_size: examples per step, padding included (the shape the compiled program runs on).
    images: real (unmasked) examples per call: what images/s counts.
    flops: FLOPs per call, padding included (it is computed): 3x the forward pass per example
      for a train step (`train_flops`), 1x for an eval step.
  """

  steps: int
  batch_size: int
  images: int
  flops: int

  @classmethod
  def train(cls, batches: Any, spec: CNNSpec = DEFAULT_SPEC) -> Workload:
    """A call that trains on `batches`: one batch, stacked batches [steps, batch, ...], or a list of them."""
    return cls.of(batches, 3 * forward_flops(spec))

  @classmethod
  def eval(cls, batches: Any, spec: CNNSpec = DEFAULT_SPEC) -> Workload:
    """A call that evaluates `batches` (forward pass only)."""
    return cls.of(batches, forward_flops(spec))

  @classmethod
  def of(cls, batches: Any, flops_per_example: int) -> Workload:
    """A call that computes `flops_per_example` FLOPs on each example of `batches`: a model of one's own."""
    steps, batch_size, images = _count(batches)
    return cls(steps, batch_size, images, flops_per_example * steps * batch_size)


def _count(batches: Any) -> tuple[int, int, int]:
  """(steps, batch size, real examples) of anything with `.images` (and maybe `.mask`), or a list of such."""
  if not hasattr(batches, "images"):
    parts = [_count(b) for b in batches]
    sizes = {size for _, size, _ in parts}
    if len(sizes) != 1:
      raise ValueError(f"a workload's batches must share one batch size, got {sorted(sizes)}")
    return sum(p[0] for p in parts), sizes.pop(), sum(p[2] for p in parts)
  shape = tuple(batches.images.shape)
  if len(shape) not in (4, 5):
    raise ValueError(f"images must be [batch, 28, 28, 1] or [steps, batch, 28, 28, 1], got shape {shape}")
  steps, batch_size = (shape[0], shape[1]) if len(shape) == 5 else (1, shape[0])
  mask = getattr(batches, "mask", None)
  return steps, batch_size, int(mask.sum()) if mask is not None else steps * batch_size  # numpy, JAX or PyTorch
