"""The python-pickle files of CIFAR-10, CIFAR-100 and mini-ImageNet.

* CIFAR-10 / CIFAR-100: the folders of the official archives,
  ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``) and ``cifar-100-python/`` (``train``, ``test``).
* mini-ImageNet: ``mini-imagenet-cache-{train,val,test}.pkl`` (the Ravi &
  Larochelle split), see :func:`read_miniimagenet_pickles`.

The pickles are read with :mod:`pickle`, which can run code: only read files
you trust (the official archives).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ngm_jax.dataset import DataFileError, DataUnavailableError, ImageDataset, label_error

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_FOLDER",
    "CIFAR100_FOLDER",
    "MINIIMAGENET_FILES",
    "MINIIMAGENET_TEST_DIVISOR",
    "find_cifar10_files",
    "find_cifar100_files",
    "find_miniimagenet_files",
    "read_cifar10_pickles",
    "read_cifar100_pickles",
    "read_miniimagenet_pickles",
]

# ----------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100: the python-pickle folders of the official archives

#: CIFAR-10's class names, by label id.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # pyformat: disable

#: The archives' folders (in cifar-10-python.tar.gz, cifar-100-python.tar.gz).
CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR100_FOLDER = "cifar-100-python"
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


def _found_or_empty(data_dir, subfolder: str, files: Sequence[str]) -> list[Path]:
  try:
    folder = _find_folder(Path(data_dir), subfolder, files, "")
  except DataUnavailableError:
    return []
  return [folder / f for f in files]


def find_cifar10_files(data_dir: str | os.PathLike) -> list[Path]:
  """The CIFAR-10 pickles :func:`read_cifar10_pickles` reads from ``data_dir``
  (``data_batch_1`` .. ``data_batch_5``, ``test_batch``), found the way it
  finds them; [] unless all six are there. ``batches.meta`` (names only) is
  not listed."""
  return _found_or_empty(data_dir, CIFAR10_FOLDER, _CIFAR10_FILES)


def find_cifar100_files(data_dir: str | os.PathLike) -> list[Path]:
  """The CIFAR-100 pickles :func:`read_cifar100_pickles` reads from
  ``data_dir`` (``train``, ``test``), found the way it finds them; [] unless
  both are there. ``meta`` (names only) is not listed."""
  return _found_or_empty(data_dir, CIFAR100_FOLDER, _CIFAR100_FILES)


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
    paths: Sequence[Path], label_keys: dict[str, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
  """Images and one int32 label array per key (``{key: number of classes}``),
  from one or more batches; a label that is not a class id is refused,
  naming the file, the key and its index there."""
  images, labels = [], [[] for _ in label_keys]
  for path in paths:
    record = _read_pickle(path)
    images.append(_cifar_images(_field(record, "data", path), path))
    for out, (key, num_classes) in zip(labels, label_keys.items()):
      raw = np.asarray(_field(record, key, path))
      problem = label_error(f"{path}: {key!r}", raw, num_classes)
      if problem:
        raise DataFileError(problem)
      out.append(raw.astype(np.int32))
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
      Path(data_dir), CIFAR10_FOLDER, _CIFAR10_FILES, "CIFAR-10 pickles"
  )
  train_x, (train_y,) = _cifar_split(
      [folder / f for f in _CIFAR10_FILES[:-1]], {"labels": 10}
  )
  test_x, (test_y,) = _cifar_split([folder / _CIFAR10_FILES[-1]], {"labels": 10})
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
      Path(data_dir), CIFAR100_FOLDER, _CIFAR100_FILES, "CIFAR-100 pickles"
  )
  keys = {"fine_labels": 100, "coarse_labels": 20}
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


def find_miniimagenet_files(data_dir: str | os.PathLike) -> list[Path]:
  """The mini-ImageNet pickles present in the folder
  :func:`read_miniimagenet_pickles` reads ``data_dir`` from, in
  :data:`MINIIMAGENET_FILES` order; [] if it finds none. (A run of at most 64
  classes opens only the train pickle; all present are listed.)"""
  try:
    folder = _miniimagenet_folder(Path(data_dir))
  except DataUnavailableError:
    return []
  return [folder / n for n in MINIIMAGENET_FILES if (folder / n).is_file()]


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
