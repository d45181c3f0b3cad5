"""IDX files, the format MNIST is distributed in: read, write, and MNIST's four.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the values in
row-major order; ``.gz`` files are gzip-compressed IDX files.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ngm_jax.dataset import DataFileError, DataUnavailableError, ImageDataset, label_error

__all__ = ["MNIST_FILES", "find_mnist_files", "read_idx", "read_mnist_idx", "write_idx"]

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


_IDX_LAYOUT = (
    "an IDX file: 2 zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,"
    " 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, one"
    " big-endian uint32 per dimension, then the values"
)


def _read_bytes(path: Path) -> bytes:
  """The file's bytes, decompressed if its name ends in ``.gz``.

  Raises:
    DataUnavailableError: the file does not exist.
    DataFileError: it cannot be read, or a ``.gz`` file is not (complete) gzip.
  """
  try:
    if path.suffix != ".gz":
      return path.read_bytes()
    with gzip.open(path, "rb") as f:
      return f.read()
  except FileNotFoundError as e:
    raise DataUnavailableError(f"{path}: no such file; expected {_IDX_LAYOUT}.") from e
  except gzip.BadGzipFile as e:
    raise DataFileError(
        f"{path}: not a gzip file ({e}), though its name ends in .gz; expected"
        " gzip-compressed IDX data (an uncompressed IDX file must not end in"
        " .gz)."
    ) from e
  except EOFError as e:
    raise DataFileError(
        f"{path}: the gzip data ends before its end marker ({e}); the file is"
        " truncated (an interrupted download?). Expected a complete"
        " gzip-compressed IDX file: download it again."
    ) from e
  except zlib.error as e:
    raise DataFileError(
        f"{path}: corrupt gzip data ({e}); expected a complete gzip-compressed"
        " IDX file: download it again."
    ) from e
  except OSError as e:  # a folder, no permission, ...
    raise DataFileError(f"{path}: cannot be read ({e}); expected {_IDX_LAYOUT}.") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads one IDX file (gzip-compressed if its name ends in ``.gz``).

  Returns:
    The array, of the shape and dtype its header gives.

  Raises:
    DataUnavailableError: the file does not exist.
    DataFileError: (a ValueError) the file is empty, not gzip or truncated gzip
      (for ``.gz``), has no IDX magic number, or is shorter or longer than its
      header says; the message names the file, the sizes found and expected.
  """
  path = Path(path)
  raw = _read_bytes(path)
  what = "decompressed data" if path.suffix == ".gz" else "file"
  if not raw:
    raise DataFileError(f"{path}: the {what} is empty (0 bytes); expected {_IDX_LAYOUT}.")
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    hint = ""
    if raw[:2] == b"\x1f\x8b":
      hint = " It looks gzip-compressed: name it with a .gz ending."
    raise DataFileError(
        f"{path} is not an IDX file (bad magic number {raw[:4]!r}); expected"
        f" {_IDX_LAYOUT}.{hint}"
    )
  dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
  offset = 4 + 4 * ndim
  if len(raw) < offset:
    raise DataFileError(
        f"{path}: too short for its header: the magic number declares {ndim}"
        f" dimensions ({offset} header bytes) but the {what} has {len(raw)}"
        " bytes; is it truncated?"
    )
  shape = struct.unpack(f">{ndim}I", raw[4:offset])
  expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(raw) != expected:
    if len(raw) < expected:
      problem = (f"too short: {expected - len(raw)} bytes missing; is it"
                 " truncated (an interrupted download)?")
    else:
      problem = (f"too long: {len(raw) - expected} bytes after the data; is it"
                 " two files joined, or not the file its header describes?")
    raise DataFileError(
        f"{path}: {problem} Its header says shape {shape} of {dtype.name}, so"
        f" {expected} bytes in all ({offset} header + {expected - offset} data),"
        f" but the {what} has {len(raw)} bytes."
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


#: MNIST's classes: the digits 0..9.
MNIST_CLASSES = 10


def _check_values(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
  """uint8 images of one shape in train and test, labels 0..9; DataFileError
  naming the file (and the first bad index) otherwise."""
  for key in ("train_images", "test_images"):
    if arrays[key].dtype != np.uint8:
      raise DataFileError(f"{paths[key]}: holds {arrays[key].dtype.name} values; expected uint8"
                          " pixels (IDX type 0x08).")
  train, test = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
  if train != test:
    raise DataFileError(
        f"{paths['train_images']} holds images of {train[0]}x{train[1]} pixels but"
        f" {paths['test_images']} of {test[0]}x{test[1]}; expected one image size.")
  for key in ("train_labels", "test_labels"):
    problem = label_error(str(paths[key]), arrays[key], MNIST_CLASSES)
    if problem:
      raise DataFileError(problem + " MNIST's labels are the digits 0..9.")


def _find_idx(data_dir: Path, stem: str) -> Path | None:
  # The folder itself, then the layouts other tools leave behind.
  for folder in (data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"):
    for name in (stem, stem + ".gz"):
      if (folder / name).is_file():
        return folder / name
  return None


def find_mnist_files(data_dir: str | os.PathLike) -> list[Path]:
  """The MNIST IDX files :func:`read_mnist_idx` reads from ``data_dir``, found
  the way it finds them, in the order of :data:`MNIST_FILES`; those missing
  are left out ([] if none is there)."""
  found = [_find_idx(Path(data_dir), stem) for stem in MNIST_FILES.values()]
  return [p for p in found if p is not None]


def read_mnist_idx(data_dir: str | os.PathLike) -> ImageDataset:
  """Reads MNIST from the four standard IDX files in ``data_dir``.

  Looks in ``data_dir``, ``data_dir/mnist`` and ``data_dir/MNIST/raw`` for
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally
  ending in ``.gz``.

  Raises:
    DataUnavailableError: a file is missing (the message lists which).
    DataFileError: a file is unreadable (see :func:`read_idx`), holds an array
      of the wrong rank or type (images uint8, labels integers), train and
      test images differ in size, images and labels differ in number, or a
      label is not a digit 0..9 (naming the file and the first bad index).
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
  for key, array in arrays.items():
    want = 3 if key.endswith("images") else 1
    if array.ndim != want:
      raise DataFileError(
          f"{paths[key]}: holds an array of shape {array.shape}; expected"
          f" {'[N, 28, 28] images' if want == 3 else '[N] labels'} ({want}"
          " dimension(s))."
      )
  for split in ("train", "test"):
    n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
    if n_img != n_lab:
      raise DataFileError(
          f"MNIST {split}: {paths[f'{split}_images']} holds {n_img} images but"
          f" {paths[f'{split}_labels']} holds {n_lab} labels; expected one label"
          " per image (are the files from the same release?)."
      )
  _check_values(arrays, paths)
  return ImageDataset(
      train_images=arrays["train_images"].astype(np.uint8),
      train_labels=arrays["train_labels"].astype(np.int32),
      test_images=arrays["test_images"].astype(np.uint8),
      test_labels=arrays["test_labels"].astype(np.int32),
  )
