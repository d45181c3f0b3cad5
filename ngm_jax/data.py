"""Data sources: tensorflow-datasets by default, standard files on disk offline.

Every loader returns an :class:`ImageDataset` of NumPy arrays (uint8 images,
int32 labels) held in host memory; :mod:`ngm_jax.streams` turns it into tasks.

Where the data comes from, in order:

1. ``data_dir`` (the CLI's ``--data-dir``), else the environment variable
   ``NGM_JAX_DATA_DIR``: read the standard files found there (for MNIST, the
   four IDX files ``train-images-idx3-ubyte[.gz]`` etc., as torchvision and
   others leave them). Nothing is downloaded.
2. Otherwise ``tensorflow_datasets`` (install ``ngm-jax[tfds]``), which
   downloads and prepares the dataset on first use.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DATA_DIR_ENV",
    "DataUnavailableError",
    "ImageDataset",
    "load_mnist",
    "load_tfds",
    "read_idx",
    "read_mnist_idx",
    "resolve_data_dir",
    "write_idx",
]

DATA_DIR_ENV = "NGM_JAX_DATA_DIR"


class DataUnavailableError(RuntimeError):
  """The data could be found neither on disk nor through tensorflow-datasets."""


class ImageDataset(NamedTuple):
  """A labelled image dataset in host memory.

  Attributes:
    train_images: uint8 ``[N_train, H, W]`` or ``[N_train, H, W, C]``.
    train_labels: int32 ``[N_train]``.
    test_images: uint8 ``[N_test, ...]``, same trailing shape.
    test_labels: int32 ``[N_test]``.
  """

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray


# ----------------------------------------------------------------------------
# IDX files (the format MNIST is distributed in)

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _open(path: Path):
  return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads one IDX file (optionally gzip-compressed) into a NumPy array."""
  path = Path(path)
  with _open(path) as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r}).")
  dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
  shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
  offset = 4 + 4 * ndim
  expected = offset + int(np.prod(shape)) * dtype.itemsize
  if len(raw) != expected:
    raise ValueError(
        f"{path}: header says shape {shape} ({expected} bytes) but the file has"
        f" {len(raw)} bytes; is it truncated?"
    )
  return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
  """Writes a uint8 array as an IDX file (gzip-compressed if ``path`` ends in
  ``.gz``). Used by the tests to make fixtures."""
  path = Path(path)
  array = np.ascontiguousarray(array, dtype=np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(
      f">{array.ndim}I", *array.shape
  )
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())


def _find_idx(data_dir: Path, stem: str) -> Path | None:
  # The folder itself, then the layouts other tools leave behind.
  for folder in (data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"):
    for name in (stem, stem + ".gz"):
      if (folder / name).is_file():
        return folder / name
  return None


def read_mnist_idx(data_dir: str | os.PathLike) -> ImageDataset:
  """Reads MNIST from the four standard IDX files in ``data_dir``.

  Looks in ``data_dir``, ``data_dir/mnist`` and ``data_dir/MNIST/raw`` for
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally
  ending in ``.gz``.
  """
  data_dir = Path(data_dir)
  paths = {key: _find_idx(data_dir, stem) for key, stem in MNIST_FILES.items()}
  missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
  if missing:
    raise DataUnavailableError(
        f"MNIST IDX files not found in {str(data_dir)!r} (also looked in its"
        f" 'mnist/' and 'MNIST/raw/'): missing {', '.join(missing)} (plain or"
        " .gz)."
    )
  arrays = {key: read_idx(p) for key, p in paths.items()}
  for split in ("train", "test"):
    n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
    if n_img != n_lab:
      raise ValueError(
          f"MNIST {split}: {n_img} images but {n_lab} labels in {data_dir}."
      )
  return ImageDataset(
      train_images=arrays["train_images"].astype(np.uint8),
      train_labels=arrays["train_labels"].astype(np.int32),
      test_images=arrays["test_images"].astype(np.uint8),
      test_labels=arrays["test_labels"].astype(np.int32),
  )


# ----------------------------------------------------------------------------
# tensorflow-datasets


def _how_to_provide(name: str, files: str) -> str:
  return (
      f"To provide {name}, either (1) install the optional extra with"
      " `pip install 'ngm-jax[tfds]'` and let tensorflow-datasets download it"
      f" (needs internet), or (2) put {files} in a folder and pass"
      f" `--data-dir DIR` (or set {DATA_DIR_ENV}=DIR)."
  )


def load_tfds(name: str, tfds_data_dir: str | None = None) -> ImageDataset:
  """Loads ``name`` (e.g. ``"mnist"``) with tensorflow-datasets, all in memory.

  Raises:
    DataUnavailableError: tensorflow-datasets is missing or failed to load.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataUnavailableError(
        f"tensorflow-datasets is not installed ({e})."
    ) from e
  try:
    train, test = tfds.as_numpy(
        tfds.load(
            name,
            split=["train", "test"],
            batch_size=-1,
            as_supervised=True,
            data_dir=tfds_data_dir,
        )
    )
  except Exception as e:  # download or preparation failed: say so, keep cause
    raise DataUnavailableError(
        f"tensorflow-datasets could not load {name!r}: {type(e).__name__}: {e}"
    ) from e

  def images(x):
    x = np.asarray(x, dtype=np.uint8)
    return x[..., 0] if x.shape[-1] == 1 else x

  return ImageDataset(
      train_images=images(train[0]),
      train_labels=np.asarray(train[1], dtype=np.int32),
      test_images=images(test[0]),
      test_labels=np.asarray(test[1], dtype=np.int32),
  )


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
  """``data_dir`` if given, else ``$NGM_JAX_DATA_DIR`` if set, else None."""
  data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
  return None if data_dir is None else Path(data_dir)


def load_mnist(data_dir: str | os.PathLike | None = None) -> ImageDataset:
  """MNIST: uint8 images ``[N, 28, 28]``, int32 labels; 60,000 train, 10,000 test.

  Args:
    data_dir: a folder with the four IDX files; defaults to
      ``$NGM_JAX_DATA_DIR``. Without either, tensorflow-datasets is used.

  Raises:
    DataUnavailableError: with both ways to provide the data, if neither works.
  """
  how = _how_to_provide(
      "MNIST", "the four IDX files (train-images-idx3-ubyte[.gz], ...)"
  )
  folder = resolve_data_dir(data_dir)
  if folder is not None:
    try:
      return read_mnist_idx(folder)
    except DataUnavailableError as e:
      raise DataUnavailableError(f"{e}\n{how}") from e
  try:
    return load_tfds("mnist")
  except DataUnavailableError as e:
    raise DataUnavailableError(f"{e}\n{how}") from e
