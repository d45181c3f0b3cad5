"""A benchmark as a sequence of tasks: :class:`TaskStream`, and how builders make one.

A :class:`TaskStream` holds a benchmark's examples ordered by task, so that
the union of tasks ``1..k`` is a prefix of the training arrays; incremental
joint training samples from that prefix (:mod:`ngm_jax.sampling`). The
builders of :mod:`ngm_jax.streams` (class-incremental) and
:mod:`ngm_jax.domain_streams` (rotated, permuted) assemble one from an
:class:`ngm_jax.data.ImageDataset` with the helpers here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from ngm_jax.dataset import ImageDataset, check_task_arrays, label_error

__all__ = ["TaskStream"]


@dataclasses.dataclass(frozen=True)
class TaskStream:
  """A benchmark as a sequence of tasks, examples ordered by task.

  Attributes:
    name: benchmark name, e.g. ``"split_mnist"``.
    task_names: one label per task, e.g. ``("0/1", "2/3", ...)``.
    num_classes: size of the shared output head.
    train_images: uint8 ``[N_train, ...]``, task 1's examples first.
    train_labels: int32 ``[N_train]``.
    train_task_ends: int32 ``[K]``; task ``k`` (0-based) owns training rows
      ``[train_task_ends[k-1], train_task_ends[k])``.
    test_images: uint8 ``[N_test, ...]``, ordered by task like the train set.
    test_labels: int32 ``[N_test]``.
    test_task_ends: int32 ``[K]``, as ``train_task_ends`` for the test rows.
  """

  name: str
  task_names: tuple[str, ...]
  num_classes: int
  train_images: np.ndarray
  train_labels: np.ndarray
  train_task_ends: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  test_task_ends: np.ndarray

  def __post_init__(self):
    if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)
                                                            ) or self.num_classes < 1:
      raise ValueError(f"TaskStream {self.name!r}: num_classes={self.num_classes!r}; expected"
                       " an integer >= 1, the head's size.")
    for split in ("train", "test"):
      check_task_arrays(self.name, int(self.num_classes), split,
                        *(getattr(self, f"{split}_{a}") for a in ("images", "labels",
                                                                   "task_ends")),
                        len(self.task_names))

  @property
  def num_tasks(self) -> int:
    return len(self.task_names)

  @property
  def test_task_ids(self) -> np.ndarray:
    """int32 ``[N_test]``: the (0-based) task of each test row."""
    return _task_ids(self.test_task_ends)

  def task_sizes(self, split: str = "train") -> np.ndarray:
    ends = self.train_task_ends if split == "train" else self.test_task_ends
    return np.diff(np.concatenate([[0], ends]))


def _task_ids(ends: np.ndarray) -> np.ndarray:
  return np.repeat(np.arange(len(ends), dtype=np.int32), np.diff(np.r_[0, ends]))


def _concat_tasks(parts: Sequence[tuple[np.ndarray, np.ndarray]]):
  images = np.concatenate([p[0] for p in parts])
  labels = np.concatenate([p[1] for p in parts]).astype(np.int32)
  ends = np.cumsum([len(p[1]) for p in parts]).astype(np.int32)
  return images, labels, ends


def _stream(name, task_names, num_classes, train, test) -> TaskStream:
  """A stream from ``(images, labels, task_ends)`` of the train and test sets."""
  return TaskStream(
      name=name,
      task_names=tuple(task_names),
      num_classes=num_classes,
      train_images=train[0],
      train_labels=train[1],
      train_task_ends=train[2],
      test_images=test[0],
      test_labels=test[1],
      test_task_ends=test[2],
  )


def _from_tasks(name, task_names, num_classes, train_parts, test_parts) -> TaskStream:
  """A stream from per-task ``(images, labels)`` pairs, in task order."""
  return _stream(name, task_names, num_classes, _concat_tasks(train_parts),
                 _concat_tasks(test_parts))


def _take(images: np.ndarray, labels: np.ndarray, rows: Sequence[np.ndarray]):
  """``images``/``labels`` at the rows of each task in turn, and the task ends.

  When the rows are every row in stored order, the arrays are returned as
  they are (no copy: a loader that stores classes in order, like mini-ImageNet,
  costs no second copy of its images).
  """
  idx = np.concatenate(rows) if len(rows) else np.zeros(0, np.int64)
  ends = np.cumsum([len(r) for r in rows]).astype(np.int32)
  if len(idx) == len(labels) and np.array_equal(idx, np.arange(len(labels))):
    return images, labels.astype(np.int32, copy=False), ends
  return images[idx], labels[idx].astype(np.int32, copy=False), ends


def _from_rows(
    name, task_names, num_classes, data: ImageDataset, train_rows, test_rows,
    train_labels=None, test_labels=None,
) -> TaskStream:
  """A stream from each task's row indices into ``data`` (labels default to
  ``data``'s)."""
  train = _take(
      data.train_images,
      data.train_labels if train_labels is None else train_labels,
      train_rows,
  )
  test = _take(
      data.test_images,
      data.test_labels if test_labels is None else test_labels,
      test_rows,
  )
  return _stream(name, task_names, num_classes, train, test)


def _check_int(what: str, value: Any, low: int, high: int | None = None) -> int:
  """``value`` as an int if it is an integer in ``low..high``, else ValueError."""
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
  ok = ok and value >= low and (high is None or value <= high)
  if not ok:
    allowed = f"in {low}..{high}" if high is not None else f">= {low}"
    raise ValueError(f"{what} must be an integer {allowed}, got {value!r}.")
  return int(value)


def _check_labels(data: ImageDataset, name: str, num_classes: int | None,
                  coarse: int | None = None) -> None:
  """Every label of ``data`` a class id in ``[0, num_classes)`` (``>= 0`` for
  None), every coarse label in ``[0, coarse)``; ValueError naming the array
  and the first bad index (a label outside would be dropped, or train a
  class the head does not have)."""
  arrays = [("train_labels", data.train_labels, num_classes),
            ("test_labels", data.test_labels, num_classes)]
  if coarse is not None:
    arrays += [("train_coarse_labels", data.train_coarse_labels, coarse),
               ("test_coarse_labels", data.test_coarse_labels, coarse)]
  for what, labels, n in arrays:
    problem = label_error(f"{name}: {what}", labels, n)
    if problem:
      raise ValueError(problem)


def _single_channel(data: ImageDataset, name: str) -> ImageDataset:
  """``data`` with images ``[N, H, W]``: a trailing channel axis of size 1 is
  dropped (a view, no copy), as the MNIST model expects; more channels are an
  error."""
  shape = data.train_images.shape
  if len(shape) == 3:
    return data
  if shape[-1] != 1:
    raise ValueError(
        f"{name}: images of shape {shape} have {shape[-1]} channels; MNIST"
        " streams need one ([N, H, W] or [N, H, W, 1])."
    )
  return data._replace(
      train_images=data.train_images[..., 0], test_images=data.test_images[..., 0]
  )
