import numpy as np
import pytest

import mnist_models as mm


def _data(n):
  return np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 28, 28, 1), np.float32), np.arange(n) % 10


@pytest.mark.parametrize("n, batch", [(10, 4), (12, 4), (1, 64), (130, 64)])
def test_every_example_once_in_equal_padded_batches(n, batch):
  images, labels = _data(n)
  b = mm.make_batches(images, labels, batch, seed=3)
  assert b.images.shape == (-(-n // batch), batch, 28, 28, 1) and b.labels.shape == b.mask.shape == b.images.shape[:2]
  assert b.num_examples == n
  kept_ids, kept_labels = mm.valid_examples(b)
  assert sorted(kept_ids[:, 0, 0, 0].astype(int)) == list(range(n))
  np.testing.assert_array_equal(kept_labels, kept_ids[:, 0, 0, 0].astype(int) % 10)
  assert b.mask[:-1].all() and b.mask[-1].sum() == n - (len(b.mask) - 1) * batch  # padding only at the end


def test_fixed_number_of_batches_cycles_the_data():
  images, labels = _data(10)
  b = mm.make_batches(images, labels, 4, num_batches=5)
  assert b.mask.all() and b.images.shape[:2] == (5, 4)
  np.testing.assert_array_equal(b.labels.reshape(-1), np.resize(np.arange(10), 20))


@pytest.mark.parametrize("batch, n_labels", [(0, 10), (4, 9)])
def test_bad_batching_is_a_clear_error(batch, n_labels):
  images, labels = _data(10)
  with pytest.raises(ValueError, match="batch_size >= 1 and as many labels"):
    mm.make_batches(images, labels[:n_labels], batch)


def test_one_batch_is_all_real():
  images, labels = _data(5)
  b = mm.one_batch(images, labels)
  assert b.images.shape == (5, 28, 28, 1) and b.labels.dtype == np.int32 and b.mask.tolist() == [1.0] * 5
  with pytest.raises(ValueError, match="as many labels as images"):
    mm.one_batch(images, labels[:4])


def test_keras_refuses_a_padded_batch():
  images, labels = _data(10)
  with pytest.raises(ValueError, match="all real"):
    mm.keras_batch(mm.Batches(*(x[0] for x in mm.make_batches(images, labels, 16))))
