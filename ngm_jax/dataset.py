"""The in-memory dataset every loader returns, and the errors for data that
cannot be found or files that cannot be read.

:class:`ImageDataset` checks its shapes when it is made (the one place they are
checked): images ``[N, H, W]`` or ``[N, H, W, C]``, train and test of the same
trailing shape, one label per image. Loaders (:mod:`ngm_jax.data`) and the
file readers (:mod:`ngm_jax.idx`, :mod:`ngm_jax.pickles`) build it;
:mod:`ngm_jax.streams` turns it into tasks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["DataFileError", "DataUnavailableError", "ImageDataset", "label_error",
           "check_task_arrays"]


class DataUnavailableError(RuntimeError):
  """The data could be found neither on disk nor through tensorflow-datasets."""


class DataFileError(ValueError):
  """A data file exists but cannot be read as what it should be (truncated,
  not gzip, wrong format, wrong size). The message names the file, what is
  wrong, and what was expected. A ValueError, so callers that report bad
  values (the CLI) report it too; a missing file is a
  :class:`DataUnavailableError` instead."""


class _Fields(NamedTuple):
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  train_coarse_labels: np.ndarray | None = None
  test_coarse_labels: np.ndarray | None = None
  class_names: tuple[str, ...] | None = None
  coarse_class_names: tuple[str, ...] | None = None


class ImageDataset(_Fields):
  """A labelled image dataset in host memory (a named tuple).

  The first four fields are always set (and may be given positionally); the
  rest are optional and default to None.

  Attributes:
    train_images: uint8 ``[N_train, H, W]`` (one channel, e.g. MNIST) or
      ``[N_train, H, W, C]`` (channels last, HWC; ``C = 1`` is allowed).
    train_labels: int32 ``[N_train]``; for CIFAR-100, the fine labels (0..99).
    test_images: uint8 ``[N_test, ...]``, the same trailing shape as train.
    test_labels: int32 ``[N_test]``.
    train_coarse_labels: int32 ``[N_train]`` or None; for CIFAR-100, the 20
      superclasses (0..19).
    test_coarse_labels: int32 ``[N_test]`` or None.
    class_names: the name of each label id, or None if unknown.
    coarse_class_names: the name of each coarse label id, or None.

  Raises:
    ValueError: on construction (also through ``_replace``), naming the field
      and its shape, if images are not ``[N, H, W]`` / ``[N, H, W, C]``, train
      and test images differ in ``H, W[, C]``, or a label array is not
      one-dimensional with one label per image.
  """

  __slots__ = ()

  def __new__(
      cls,
      train_images,
      train_labels,
      test_images,
      test_labels,
      train_coarse_labels=None,
      test_coarse_labels=None,
      class_names=None,
      coarse_class_names=None,
  ):
    self = super().__new__(
        cls, train_images, train_labels, test_images, test_labels,
        train_coarse_labels, test_coarse_labels, class_names, coarse_class_names,
    )
    _check(self)
    return self

  @classmethod
  def _make(cls, iterable):  # _replace builds through here: check it too
    return cls(*iterable)


def image_shape_error(what: str, shape: tuple[int, ...]) -> str | None:
  """Why images of ``shape`` are not ``[N, H, W]`` / ``[N, H, W, C]``, or None."""
  if len(shape) not in (3, 4):
    return (
        f"{what} must be [N, H, W] or [N, H, W, C] (channels last), got shape"
        f" {tuple(shape)} ({len(shape)} axes)."
    )
  return None


def _check(d: ImageDataset) -> None:
  train, test = np.shape(d.train_images), np.shape(d.test_images)
  for what, shape in (("train_images", train), ("test_images", test)):
    problem = image_shape_error(f"ImageDataset: {what}", shape)
    if problem:
      raise ValueError(problem)
  if train[1:] != test[1:]:
    raise ValueError(
        f"ImageDataset: train_images {train} and test_images {test} differ in"
        " their image shape (all axes after the first must match)."
    )
  for what, labels, n in (
      ("train_labels", d.train_labels, train[0]),
      ("test_labels", d.test_labels, test[0]),
      ("train_coarse_labels", d.train_coarse_labels, train[0]),
      ("test_coarse_labels", d.test_coarse_labels, test[0]),
  ):
    if labels is None and "coarse" in what:
      continue
    shape = np.shape(labels)
    if shape != (n,):
      raise ValueError(
          f"ImageDataset: {what} has shape {shape}; expected ({n},), one label"
          f" per image of {what.replace('coarse_', '').replace('labels', 'images')}."
      )


def label_error(what: str, labels, num_classes: int | None = None) -> str | None:
  """Why ``labels`` are not class ids in ``[0, num_classes)`` (any ``>= 0``
  when ``num_classes`` is None), naming ``what``, the first bad index and
  value, and how many are bad; None if they all are."""
  labels = np.asarray(labels)
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    return f"{what} holds {labels.dtype.name} values; expected integer class ids."
  bad = labels < 0 if num_classes is None else (labels < 0) | (labels >= num_classes)
  where = np.flatnonzero(np.ravel(bad))
  if not where.size:
    return None
  first = int(where[0])
  allowed = f"[0, {num_classes})" if num_classes is not None else ">= 0"
  return (f"{what}: label {np.ravel(labels)[first]} at index {first} is not a class id"
          f" {allowed} ({where.size} of {labels.size} labels are not; the first at index"
          f" {first}).")


def check_task_arrays(name: str, num_classes: int, split: str, images, labels,
                      task_ends, num_tasks: int) -> None:
  """One split of a task stream: one label per image, every label a class id
  of the head (``[0, num_classes)``), ``task_ends`` ``[num_tasks]`` rising to
  the number of rows.

  Raises:
    ValueError: naming the stream, the array, and the first bad index.
  """
  what = f"TaskStream {name!r}: {split}"
  n_images, n_labels = len(images), np.shape(labels)[0] if np.ndim(labels) else -1
  if np.ndim(labels) != 1 or n_images != n_labels:
    raise ValueError(f"{what}_images has {n_images} rows but {split}_labels has shape"
                     f" {np.shape(labels)}; expected ({n_images},), one label per image.")
  problem = label_error(f"{what}_labels", labels, num_classes)
  if problem:
    raise ValueError(problem + " Expected a class id of the head (num_classes"
                     f" {num_classes}).")
  ends = np.asarray(task_ends)
  if (ends.shape != (num_tasks,) or not np.issubdtype(ends.dtype, np.integer)
      or np.any(np.diff(np.r_[0, ends]) < 0) or (num_tasks and ends[-1] != n_images)):
    raise ValueError(f"{what}_task_ends is {ends.tolist()}; expected {num_tasks} non-decreasing"
                     f" row counts (one per task), the last {n_images}, the {split} rows.")
