"""IDX files, the format MNIST is distributed in: read, write, and MNIST's four.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the values in
row-major order; ``.gz`` files are gzip-compressed IDX files.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from ngm_jax.dataset import DataUnavailableError, ImageDataset

__all__ = ["MNIST_FILES", "read_idx", "read_mnist_idx", "write_idx"]

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
