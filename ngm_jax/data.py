"""Data sources: tensorflow-datasets by default, standard files on disk offline.

Every loader returns an :class:`ImageDataset` of NumPy arrays (uint8 images,
int32 labels) held in host memory; :mod:`ngm_jax.streams` turns it into tasks.

Where the data comes from, in order:

1. ``data_dir`` (the CLI's ``--data-dir``), else the environment variable
   ``NGM_JAX_DATA_DIR``: read the standard files found there. Nothing is
   downloaded.

   * MNIST: the four IDX files ``train-images-idx3-ubyte[.gz]`` etc., as
     torchvision and others leave them.
   * CIFAR-10 / CIFAR-100: the python-pickle folders of the official archives,
     ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
     ``test_batch``) and ``cifar-100-python/`` (``train``, ``test``), either
     inside ``data_dir`` or ``data_dir`` itself.
   * mini-ImageNet: the three pickles ``mini-imagenet-cache-train.pkl``,
     ``-val.pkl`` and ``-test.pkl`` (the only source; there is no
     tensorflow-datasets builder), see :func:`load_miniimagenet`.

2. Otherwise ``tensorflow_datasets`` (install ``ngm-jax[tfds]``), which
   downloads and prepares the dataset on first use (``mnist``, ``cifar10``,
   ``cifar100``).

The pickles are read with :mod:`pickle`, which can run code: only read files
you trust (the official archives).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "DATA_DIR_ENV",
    "DataUnavailableError",
    "ImageDataset",
    "MINIIMAGENET_FILES",
    "MINIIMAGENET_TEST_DIVISOR",
    "load_cifar10",
    "load_cifar100",
    "load_miniimagenet",
    "load_mnist",
    "load_tfds",
    "read_cifar10_pickles",
    "read_cifar100_pickles",
    "read_idx",
    "read_miniimagenet_pickles",
    "read_mnist_idx",
    "resolve_data_dir",
    "write_idx",
]

DATA_DIR_ENV = "NGM_JAX_DATA_DIR"


class DataUnavailableError(RuntimeError):
  """The data could be found neither on disk nor through tensorflow-datasets."""


class ImageDataset(NamedTuple):
  """A labelled image dataset in host memory.

  The first four fields are always set (and may be given positionally); the
  rest are optional and default to None.

  Attributes:
    train_images: uint8 ``[N_train, H, W]`` or ``[N_train, H, W, C]`` (channels
      last, HWC).
    train_labels: int32 ``[N_train]``; for CIFAR-100, the fine labels (0..99).
    test_images: uint8 ``[N_test, ...]``, same trailing shape.
    test_labels: int32 ``[N_test]``.
    train_coarse_labels: int32 ``[N_train]`` or None; for CIFAR-100, the 20
      superclasses (0..19).
    test_coarse_labels: int32 ``[N_test]`` or None.
    class_names: the name of each label id, or None if unknown.
    coarse_class_names: the name of each coarse label id, or None.
  """

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  train_coarse_labels: np.ndarray | None = None
  test_coarse_labels: np.ndarray | None = None
  class_names: tuple[str, ...] | None = None
  coarse_class_names: tuple[str, ...] | None = None


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


def load_tfds(
    name: str,
    tfds_data_dir: str | None = None,
    *,
    coarse_label: str | None = None,
    with_names: bool = False,
) -> ImageDataset:
  """Loads ``name`` (e.g. ``"mnist"``) with tensorflow-datasets, all in memory.

  Args:
    name: the tfds dataset name (``"mnist"``, ``"cifar10"``, ``"cifar100"``).
    tfds_data_dir: where tfds keeps its files (None: its default).
    coarse_label: the feature holding a second, coarse label (``"coarse_label"``
      for ``cifar100``). Given, the examples are read as feature dicts
      (``image``, ``label``, ``coarse_label``) rather than ``as_supervised``
      pairs, and the dataset's ``*_coarse_labels`` are set.
    with_names: also read the label names from the builder's info
      (``class_names``, and ``coarse_class_names`` with ``coarse_label``).

  Raises:
    DataUnavailableError: tensorflow-datasets is missing or failed to load.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataUnavailableError(
        f"tensorflow-datasets is not installed ({e})."
    ) from e
  kwargs = dict(
      split=["train", "test"],
      batch_size=-1,
      as_supervised=coarse_label is None,
      data_dir=tfds_data_dir,
  )
  if with_names:
    kwargs["with_info"] = True
  try:
    loaded = tfds.load(name, **kwargs)
    splits, info = loaded if with_names else (loaded, None)
    train, test = tfds.as_numpy(splits)
  except Exception as e:  # download or preparation failed: say so, keep cause
    raise DataUnavailableError(
        f"tensorflow-datasets could not load {name!r}: {type(e).__name__}: {e}"
    ) from e

  def images(x):
    x = np.asarray(x, dtype=np.uint8)
    return x[..., 0] if x.shape[-1] == 1 else x

  def labels(x):
    return np.asarray(x, dtype=np.int32)

  def names(feature):
    try:
      return tuple(str(n) for n in info.features[feature].names)
    except Exception:  # pylint: disable=broad-except
      return None  # names are optional

  if coarse_label is None:
    return ImageDataset(
        train_images=images(train[0]),
        train_labels=labels(train[1]),
        test_images=images(test[0]),
        test_labels=labels(test[1]),
        class_names=names("label") if with_names else None,
    )
  return ImageDataset(
      train_images=images(train["image"]),
      train_labels=labels(train["label"]),
      test_images=images(test["image"]),
      test_labels=labels(test["label"]),
      train_coarse_labels=labels(train[coarse_label]),
      test_coarse_labels=labels(test[coarse_label]),
      class_names=names("label") if with_names else None,
      coarse_class_names=names(coarse_label) if with_names else None,
  )


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
  """``data_dir`` if given, else ``$NGM_JAX_DATA_DIR`` if set, else None."""
  data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
  return None if data_dir is None else Path(data_dir)


def _load(
    read_local, load_remote, data_dir: str | os.PathLike | None, how: str
) -> ImageDataset:
  """``read_local(folder)`` if a data folder is given or set, else
  ``load_remote()``; either's DataUnavailableError gains ``how``."""
  folder = resolve_data_dir(data_dir)
  try:
    return read_local(folder) if folder is not None else load_remote()
  except DataUnavailableError as e:
    raise DataUnavailableError(f"{e}\n{how}") from e


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
  return _load(read_mnist_idx, lambda: load_tfds("mnist"), data_dir, how)


# ----------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100: the python-pickle folders of the official archives

#: CIFAR-10's class names, by label id.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # pyformat: disable

_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_CIFAR100_FOLDER = "cifar-100-python"
_CIFAR100_FILES = ("train", "test")


def _read_pickle(path: Path, encoding: str = "bytes") -> Any:
  with open(path, "rb") as f:
    return pickle.load(f, encoding=encoding)


def _field(record: dict, key: str, path: Path) -> Any:
  """``record[key]``, whether the pickle's keys are str or bytes."""
  for k in (key, key.encode()):
    if k in record:
      return record[k]
  keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in record)
  raise ValueError(f"{path}: no {key!r} entry; it has {keys}.")


def _names(values: Sequence[Any]) -> tuple[str, ...]:
  return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _find_folder(
    data_dir: Path, subfolder: str, files: Sequence[str], what: str
) -> Path:
  """The first of ``data_dir/subfolder`` and ``data_dir`` holding ``files``.

  Raises:
    DataUnavailableError: naming the folder(s) and the missing files.
  """
  candidates = (data_dir / subfolder, data_dir)
  present = [[(c / f).is_file() for f in files] for c in candidates]
  for folder, found in zip(candidates, present):
    if all(found):
      return folder
  # Report the candidate that holds the most of the files.
  best = max(range(len(candidates)), key=lambda i: sum(present[i]))
  missing = [f for f, ok in zip(files, present[best]) if not ok]
  raise DataUnavailableError(
      f"{what} not found in {str(data_dir)!r} (also looked in its"
      f" '{subfolder}/'): missing {', '.join(missing)}"
      f" (in {str(candidates[best])!r})."
  )


def _cifar_images(data: Any, path: Path) -> np.ndarray:
  """``[N, 3072]`` rows (1024 red, 1024 green, 1024 blue values, each 32x32
  row-major) → uint8 ``[N, 32, 32, 3]`` (HWC)."""
  data = np.asarray(data, dtype=np.uint8)
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise ValueError(
        f"{path}: 'data' has shape {data.shape}; expected [N, 3072] (3x32x32,"
        " channel-major)."
    )
  return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _cifar_split(
    paths: Sequence[Path], label_keys: Sequence[str]
) -> tuple[np.ndarray, list[np.ndarray]]:
  """Images and one int32 label array per key, from one or more batches."""
  images, labels = [], [[] for _ in label_keys]
  for path in paths:
    record = _read_pickle(path)
    images.append(_cifar_images(_field(record, "data", path), path))
    for out, key in zip(labels, label_keys):
      out.append(np.asarray(_field(record, key, path), dtype=np.int32))
      if len(out[-1]) != len(images[-1]):
        raise ValueError(
            f"{path}: {len(images[-1])} images but {len(out[-1])} {key!r}."
        )
  images = images[0] if len(images) == 1 else np.concatenate(images)
  return images, [np.concatenate(out) for out in labels]


def read_cifar10_pickles(data_dir: str | os.PathLike) -> ImageDataset:
  """Reads CIFAR-10 from the official python-pickle batches.

  Looks in ``data_dir/cifar-10-batches-py`` and then ``data_dir`` for
  ``data_batch_1`` .. ``data_batch_5`` (train, in that order) and
  ``test_batch``: dicts with ``b'data'`` (uint8 ``[10000, 3072]``, CHW) and
  ``b'labels'``. Class names come from ``batches.meta`` if present, else
  :data:`CIFAR10_CLASSES`.

  Returns:
    uint8 images ``[N, 32, 32, 3]`` (HWC), int32 labels 0..9.
  """
  folder = _find_folder(
      Path(data_dir), _CIFAR10_FOLDER, _CIFAR10_FILES, "CIFAR-10 pickles"
  )
  train_x, (train_y,) = _cifar_split(
      [folder / f for f in _CIFAR10_FILES[:-1]], ["labels"]
  )
  test_x, (test_y,) = _cifar_split([folder / _CIFAR10_FILES[-1]], ["labels"])
  names = CIFAR10_CLASSES
  if (folder / "batches.meta").is_file():
    meta = folder / "batches.meta"
    names = _names(_field(_read_pickle(meta), "label_names", meta))
  return ImageDataset(train_x, train_y, test_x, test_y, class_names=names)


def read_cifar100_pickles(data_dir: str | os.PathLike) -> ImageDataset:
  """Reads CIFAR-100 from the official python-pickle files.

  Looks in ``data_dir/cifar-100-python`` and then ``data_dir`` for ``train``
  and ``test``: dicts with ``b'data'`` (uint8 ``[N, 3072]``, CHW),
  ``b'fine_labels'`` and ``b'coarse_labels'``. Class names come from ``meta``
  if present.

  Returns:
    uint8 images ``[N, 32, 32, 3]`` (HWC), int32 fine labels 0..99 as
    ``*_labels`` and int32 superclasses 0..19 as ``*_coarse_labels``.
  """
  folder = _find_folder(
      Path(data_dir), _CIFAR100_FOLDER, _CIFAR100_FILES, "CIFAR-100 pickles"
  )
  keys = ["fine_labels", "coarse_labels"]
  train_x, (train_y, train_c) = _cifar_split([folder / "train"], keys)
  test_x, (test_y, test_c) = _cifar_split([folder / "test"], keys)
  names = coarse_names = None
  if (folder / "meta").is_file():
    meta_path = folder / "meta"
    meta = _read_pickle(meta_path)
    names = _names(_field(meta, "fine_label_names", meta_path))
    coarse_names = _names(_field(meta, "coarse_label_names", meta_path))
  return ImageDataset(
      train_x, train_y, test_x, test_y,
      train_coarse_labels=train_c,
      test_coarse_labels=test_c,
      class_names=names,
      coarse_class_names=coarse_names,
  )


def load_cifar10(data_dir: str | os.PathLike | None = None) -> ImageDataset:
  """CIFAR-10: uint8 images ``[N, 32, 32, 3]``, int32 labels 0..9; 50,000
  train, 10,000 test; ``class_names`` :data:`CIFAR10_CLASSES`.

  Args:
    data_dir: a folder with ``cifar-10-batches-py/`` (or that folder itself);
      defaults to ``$NGM_JAX_DATA_DIR``. Without either, tensorflow-datasets
      (``cifar10``) is used.

  Raises:
    DataUnavailableError: with both ways to provide the data, if neither works.
  """
  how = _how_to_provide(
      "CIFAR-10",
      f"the python-pickle folder {_CIFAR10_FOLDER}/ (data_batch_1 ..."
      " data_batch_5, test_batch; from cifar-10-python.tar.gz)",
  )
  remote = lambda: load_tfds("cifar10")._replace(class_names=CIFAR10_CLASSES)
  return _load(read_cifar10_pickles, remote, data_dir, how)


def load_cifar100(data_dir: str | os.PathLike | None = None) -> ImageDataset:
  """CIFAR-100: uint8 images ``[N, 32, 32, 3]``; int32 fine labels 0..99
  (``*_labels``) and superclasses 0..19 (``*_coarse_labels``); 50,000 train,
  10,000 test.

  Args:
    data_dir: a folder with ``cifar-100-python/`` (or that folder itself);
      defaults to ``$NGM_JAX_DATA_DIR``. Without either, tensorflow-datasets
      (``cifar100``, features ``image``, ``label``, ``coarse_label``) is used.

  Raises:
    DataUnavailableError: with both ways to provide the data, if neither works.
  """
  how = _how_to_provide(
      "CIFAR-100",
      f"the python-pickle folder {_CIFAR100_FOLDER}/ (train, test; from"
      " cifar-100-python.tar.gz)",
  )
  remote = lambda: load_tfds(
      "cifar100", coarse_label="coarse_label", with_names=True
  )
  return _load(read_cifar100_pickles, remote, data_dir, how)


# ----------------------------------------------------------------------------
# mini-ImageNet: the three pickles of the Ravi & Larochelle split

#: The pickles, in the order their classes are numbered.
MINIIMAGENET_FILES = (
    "mini-imagenet-cache-train.pkl",
    "mini-imagenet-cache-val.pkl",
    "mini-imagenet-cache-test.pkl",
)
#: Of a class's ``n`` images, the last ``n // 6`` are test (100 of 600).
MINIIMAGENET_TEST_DIVISOR = 6
_MINIIMAGENET_SUBFOLDERS = ("mini-imagenet", "miniimagenet", "mini_imagenet")


def _miniimagenet_folder(data_dir: Path) -> Path:
  for folder in (data_dir,) + tuple(data_dir / s for s in _MINIIMAGENET_SUBFOLDERS):
    if (folder / MINIIMAGENET_FILES[0]).is_file():
      return folder
  raise DataUnavailableError(
      f"mini-ImageNet pickles not found in {str(data_dir)!r} (also looked in"
      f" its {', '.join(s + '/' for s in _MINIIMAGENET_SUBFOLDERS)}): missing"
      f" {MINIIMAGENET_FILES[0]} (and {', '.join(MINIIMAGENET_FILES[1:])} for"
      f" classes beyond the train pickle's 64)."
  )


def read_miniimagenet_pickles(
    data_dir: str | os.PathLike, num_classes: int | None = None
) -> ImageDataset:
  """Reads mini-ImageNet from ``mini-imagenet-cache-{train,val,test}.pkl``.

  Each pickle is a dict with ``'image_data'`` (uint8 ``[N, 84, 84, 3]``) and
  ``'class_dict'`` (class name → list of row indices into ``image_data``).
  They are looked for in ``data_dir`` and then in its ``mini-imagenet/``,
  ``miniimagenet/`` or ``mini_imagenet/``.

  Class order (label ids 0..C-1): the train pickle's classes, then the val
  pickle's, then the test pickle's, each in sorted class-name order (for the
  standard files 64 + 16 + 20 = 100 WordNet ids such as ``n01532829``).

  Train/test split, per class: its indices in their stored order; the last
  ``n // 6`` are test and the rest train (500 / 100 of the standard 600); a
  class with fewer than 6 images is an error. Rows come grouped by class, in
  class order, each class's rows in stored order.

  Args:
    data_dir: the folder with the pickles.
    num_classes: read only the first ``num_classes`` classes (a pickle whose
      classes are not needed is not opened: up to 64 classes need only the
      train pickle); None reads every class of all three pickles.

  Returns:
    uint8 images ``[N, 84, 84, 3]``, int32 labels; ``class_names`` the class
    names in label order.

  Raises:
    DataUnavailableError: a needed pickle is missing.
    ValueError: ``num_classes`` is not a positive integer or exceeds the
      classes the pickles hold; a pickle is malformed.
  """
  if num_classes is not None and (
      isinstance(num_classes, bool)
      or not isinstance(num_classes, (int, np.integer))
      or num_classes < 1
  ):
    raise ValueError(
        f"num_classes must be None (all) or an integer >= 1, got {num_classes!r}."
    )
  folder = _miniimagenet_folder(Path(data_dir))
  names, counts = [], {"train": [], "test": []}
  parts = {"train": [], "test": []}
  for filename in MINIIMAGENET_FILES:
    if num_classes is not None and len(names) >= num_classes:
      break
    path = folder / filename
    if not path.is_file():
      raise DataUnavailableError(
          f"mini-ImageNet: {filename} not found in {str(folder)!r}; it is"
          f" needed for classes beyond the first {len(names)}"
          f" (asked for {num_classes or 'all'}). Expected files:"
          f" {', '.join(MINIIMAGENET_FILES)}."
      )
    cache = _read_pickle(path, encoding="latin1")  # also reads Python-2 pickles
    image_data = np.asarray(_field(cache, "image_data", path))
    class_dict = {
        _names([k])[0]: v for k, v in _field(cache, "class_dict", path).items()
    }
    if image_data.ndim != 4:
      raise ValueError(
          f"{path}: 'image_data' has shape {image_data.shape}; expected"
          " [N, H, W, C]."
      )
    take = sorted(class_dict)
    if num_classes is not None:
      take = take[: num_classes - len(names)]
    rows = {"train": [], "test": []}
    for name in take:
      if name in names:
        raise ValueError(f"{path}: class {name!r} also appears in an earlier pickle.")
      idx = np.asarray(class_dict[name], dtype=np.int64).ravel()
      n_test = len(idx) // MINIIMAGENET_TEST_DIVISOR
      if n_test == 0:
        raise ValueError(
            f"{path}: class {name!r} has {len(idx)} images; at least"
            f" {MINIIMAGENET_TEST_DIVISOR} are needed (the last n //"
            f" {MINIIMAGENET_TEST_DIVISOR} are the test set)."
        )
      if idx.min() < 0 or idx.max() >= len(image_data):
        raise ValueError(
            f"{path}: class {name!r} indexes rows outside 0..{len(image_data) - 1}."
        )
      rows["train"].append(idx[: len(idx) - n_test])
      rows["test"].append(idx[len(idx) - n_test :])
      names.append(name)
    for split in ("train", "test"):
      if rows[split]:
        counts[split] += [len(r) for r in rows[split]]
        taken = image_data[np.concatenate(rows[split])]
        parts[split].append(taken.astype(np.uint8, copy=False))
    del cache, image_data, class_dict  # free the pickle before the next one
  if num_classes is not None and len(names) < num_classes:
    raise ValueError(
        f"mini-ImageNet: asked for {num_classes} classes but the pickles in"
        f" {str(folder)!r} hold only {len(names)}."
    )

  if not names:
    raise ValueError(f"mini-ImageNet: the pickles in {str(folder)!r} hold no classes.")

  def images(split):
    return parts[split][0] if len(parts[split]) == 1 else np.concatenate(parts[split])

  def labels(split):
    return np.repeat(np.arange(len(names), dtype=np.int32), counts[split])

  return ImageDataset(
      images("train"), labels("train"), images("test"), labels("test"),
      class_names=tuple(names),
  )


def load_miniimagenet(
    data_dir: str | os.PathLike | None = None, num_classes: int | None = None
) -> ImageDataset:
  """mini-ImageNet: uint8 images ``[N, 84, 84, 3]``, int32 labels 0..99; 500
  train and 100 test images per class (see :func:`read_miniimagenet_pickles`
  for the class order and the split).

  Args:
    data_dir: the folder with ``mini-imagenet-cache-{train,val,test}.pkl``;
      defaults to ``$NGM_JAX_DATA_DIR``. There is no tensorflow-datasets
      builder: without either, this raises.
    num_classes: read only the first ``num_classes`` classes (saves memory);
      None: all.

  Raises:
    DataUnavailableError: no folder is given or a needed pickle is missing.
  """
  how = (
      "mini-ImageNet has no tensorflow-datasets builder: provide it as the"
      f" pickles {', '.join(MINIIMAGENET_FILES)} in a folder and pass"
      f" `--data-dir DIR` (or set {DATA_DIR_ENV}=DIR)."
  )

  def remote():
    raise DataUnavailableError("No data folder given for mini-ImageNet.")

  return _load(
      lambda folder: read_miniimagenet_pickles(folder, num_classes),
      remote, data_dir, how,
  )
