"""Fixed-shape batches: every batch [batch_size, ...], the last one padded and masked."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Batches(NamedTuple):
  """Stacked batches: images [num_batches, batch, 28, 28, 1], labels and mask [num_batches, batch]."""

  images: np.ndarray
  labels: np.ndarray
  mask: np.ndarray  # 1.0 for a real example, 0.0 for padding

  @property
  def num_examples(self) -> int:
    return int(self.mask.sum())


def make_batches(
  images: np.ndarray, labels: np.ndarray, batch_size: int, *, num_batches: int | None = None, seed: int | None = None
) -> Batches:
  """Cuts images [N, 28, 28, 1] and labels [N] into equal batches on the host.

  Args:
    images, labels: the examples.
    batch_size: examples per batch; the last batch is padded with zeros and masked out.
    num_batches: if given, exactly this many full batches, cycling through the data (for timings
      that must not depend on the dataset's size); padding is then never needed.
    seed: if given, shuffle the examples with it first; else keep their order.
  """
  n = len(images)
  if batch_size < 1 or n == 0 or len(labels) != n:
    raise ValueError(
      f"need batch_size >= 1 and as many labels as images; got batch_size={batch_size}, "
      f"{n} images, {len(labels)} labels"
    )
  order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
  if num_batches is not None:
    order = np.resize(order, num_batches * batch_size)  # repeats the order as often as needed
  total = -(-len(order) // batch_size) * batch_size
  mask = np.zeros(total, np.float32)
  mask[: len(order)] = 1.0
  order = np.pad(order, (0, total - len(order)))  # padding rows point at example 0, masked out
  shape = (total // batch_size, batch_size)
  return Batches(
    np.asarray(images)[order].reshape(*shape, *images.shape[1:]),
    np.asarray(labels, np.int32)[order].reshape(shape),
    mask.reshape(shape),
  )


def one_batch(images: np.ndarray, labels: np.ndarray) -> Batches:
  """A single batch of every given example: images [batch, 28, 28, 1], labels [batch], a mask of ones."""
  if len(images) != len(labels) or len(images) == 0:
    raise ValueError(f"one_batch needs as many labels as images, at least one; got {len(images)} and {len(labels)}")
  return Batches(np.asarray(images), np.asarray(labels, np.int32), np.ones(len(images), np.float32))


def device_batches(batches: Batches) -> list[Batches]:
  """One device-resident Batches per step; copying now keeps host transfers out of the loop.

  Each batch is its own array (not a slice of one stacked array), so that looping over them
  dispatches no indexing computation.
  """
  return [jax.device_put(Batches(*b)) for b in zip(*batches, strict=True)]


def valid_examples(batches: Batches) -> tuple[np.ndarray, np.ndarray]:
  """The real (unmasked) examples in batch order: feed these to Keras to get the same batches."""
  keep = batches.mask.reshape(-1) > 0
  return (batches.images.reshape(-1, *batches.images.shape[2:])[keep], batches.labels.reshape(-1)[keep])


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
  """Integer labels [N] -> float32 one-hot [N, num_classes]."""
  return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]
