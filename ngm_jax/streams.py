"""Benchmarks as task streams: each task's examples, in order.

A :class:`TaskStream` holds a benchmark's examples ordered by task, so that
the union of tasks ``1..k`` is a prefix of the training arrays; incremental
joint training samples from that prefix (:mod:`ngm_jax.sampling`).

The builders (loaded by name through :func:`ngm_jax.benchmarks.load_benchmark`):

* ``split_mnist``, ``split_cifar10``: 5 tasks of 2 classes, in label order.
* ``rotated_mnist``: every digit at 0°, 80°, 160° (option ``interpolation``:
  ``"nearest"``, torchvision's rotation, or ``"bilinear"``).
* ``permuted_mnist``: every digit under ``num_tasks`` fixed pixel
  permutations (task 1 the identity), drawn from ``permutation_seed``; an
  optional random subset of ``train_per_task`` training images per task.
* ``domain_cifar100``: 20 superclass labels in every task; task ``t`` holds
  the ``t``-th fine class of each superclass.
* ``split_cifar100``: ``num_tasks`` tasks of ``classes_per_task`` fine
  classes, in label order (0-9, 10-19, ...).
* ``split_miniimagenet``: ``num_tasks`` tasks of ``classes_per_task`` classes.

:class:`TaskStream` and the helpers the builders share are
:mod:`ngm_jax.task_stream`; the rotated and permuted builders are
:mod:`ngm_jax.domain_streams`; all are importable from here.
:func:`subsample_test` keeps a fixed random subset of each task's test set.
Rotation is :mod:`ngm_jax.transforms`; the check that a stream fits on the
device (:func:`check_fits`) is :mod:`ngm_jax.memory`; both are re-exported
here.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ngm_jax.data import CIFAR10_CLASSES, ImageDataset
# The stream and the helpers builders share (ngm_jax.task_stream); the
# domain-incremental builders (ngm_jax.domain_streams), re-exported here.
from ngm_jax.domain_streams import (pixel_permutations, permuted, permuted_mnist, rotated,
                                    rotated_mnist)
# Re-exported from the modules they live in (rotation; the memory check).
from ngm_jax.memory import (
    DatasetTooLargeError,
    check_fits,
    device_memory_bytes,
    stream_nbytes,
)
from ngm_jax.task_stream import (TaskStream, _check_int, _check_labels, _from_rows,
                                 _single_channel, _take)
from ngm_jax.transforms import rotate_images

__all__ = [
    "TaskStream",
    "split_by_classes",
    "split_mnist",
    "split_cifar10",
    "domain_cifar100",
    "split_cifar100",
    "split_miniimagenet",
    "rotate_images",
    "rotated",
    "rotated_mnist",
    "pixel_permutations",
    "permuted",
    "permuted_mnist",
    "subsample_test",
    "DatasetTooLargeError",
    "stream_nbytes",
    "device_memory_bytes",
    "check_fits",
]


def split_by_classes(
    data: ImageDataset,
    class_groups: Sequence[Sequence[int]],
    name: str,
    num_classes: int | None = None,
    data_classes: int | None = None,
) -> TaskStream:
  """Class-incremental stream: task ``k`` holds the classes ``class_groups[k]``.

  Labels are kept as they are (one shared head over all classes). Within a
  task, examples keep their stored order. Images keep their shape,
  ``[N, H, W]`` or ``[N, H, W, C]`` (checked by :class:`ImageDataset`).
  Examples of classes in no group are left out; ``data_classes``: the class
  ids the data may hold are ``0..data_classes-1``, and a label outside is
  refused (ValueError naming it and its index) instead of left out. A
  negative label is always refused.
  """
  _check_labels(data, name, data_classes)
  groups = [tuple(int(c) for c in g) for g in class_groups]
  flat = [c for g in groups for c in g]
  if len(set(flat)) != len(flat):
    raise ValueError(f"{name}: class groups overlap: {groups}.")
  present = set(np.unique(data.train_labels).tolist())
  absent = sorted(set(flat) - present)
  if absent:
    raise ValueError(
        f"{name}: classes {absent} have no training examples; the data has"
        f" classes {sorted(present)}."
    )

  def rows(labels):
    return [np.flatnonzero(np.isin(labels, g)) for g in groups]

  return _from_rows(
      name,
      ["/".join(map(str, g)) for g in groups],
      num_classes or int(max(flat)) + 1,
      data,
      rows(data.train_labels),
      rows(data.test_labels),
  )


def split_mnist(data: ImageDataset) -> TaskStream:
  """Split MNIST: 5 tasks {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 10-way head.

  Images ``[N, 28, 28]`` or ``[N, 28, 28, 1]``; the stream's are
  ``[N, 28, 28]`` either way.
  """
  return split_by_classes(
      _single_channel(data, "split_mnist"),
      [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)], "split_mnist", 10, data_classes=10,
  )


def split_cifar10(data: ImageDataset) -> TaskStream:
  """Split CIFAR-10: 5 tasks of 2 classes in label order, {0,1} .. {8,9}
  (airplane/automobile, bird/cat, deer/dog, frog/horse, ship/truck); 10-way
  head. Task names are the class names."""
  groups = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
  stream = split_by_classes(data, groups, "split_cifar10", 10, data_classes=10)
  names = data.class_names if data.class_names is not None else CIFAR10_CLASSES
  if len(names) != 10:
    names = CIFAR10_CLASSES
  return dataclasses.replace(
      stream, task_names=tuple(f"{names[a]}/{names[b]}" for a, b in groups)
  )


#: CIFAR-100's superclasses each hold this many fine classes.
CIFAR100_FINE_PER_COARSE = 5


def domain_cifar100(data: ImageDataset, num_tasks: int = 5) -> TaskStream:
  """Domain-incremental CIFAR-100: predict the superclass, from new classes.

  The labels are the 20 superclasses (``data.*_coarse_labels``; a 20-way
  head). Each superclass's fine classes are ordered by fine label id; task
  ``t`` (0-based) holds the ``t``-th fine class of every superclass, so every
  task has all 20 labels, drawn from fine classes no other task has.

  Args:
    data: CIFAR-100 with coarse labels (:func:`ngm_jax.data.load_cifar100`).
    num_tasks: 1..5 (CIFAR-100 has 5 fine classes per superclass).

  Raises:
    ValueError: ``num_tasks`` out of range; no coarse labels; a fine label
      outside ``[0, 100)`` or a coarse one outside ``[0, 20)`` (naming the
      first); a fine class in two superclasses; a superclass with fewer than
      ``num_tasks`` classes.
  """
  num_tasks = _check_int(
      "domain_cifar100: num_tasks", num_tasks, 1, CIFAR100_FINE_PER_COARSE
  )
  if data.train_coarse_labels is None or data.test_coarse_labels is None:
    raise ValueError(
        "domain_cifar100 needs the superclass labels (train_coarse_labels,"
        " test_coarse_labels); load the data with ngm_jax.data.load_cifar100."
    )
  _check_labels(data, "domain_cifar100", 100, coarse=20)
  pairs = np.unique(
      np.stack([data.train_labels, data.train_coarse_labels], axis=1), axis=0
  )  # (fine, coarse), sorted by fine id
  fine_ids, count = np.unique(pairs[:, 0], return_counts=True)
  if (count > 1).any():
    raise ValueError(
        "domain_cifar100: fine classes"
        f" {fine_ids[count > 1].tolist()} appear under more than one superclass."
    )
  num_coarse = int(pairs[:, 1].max()) + 1
  fines = [pairs[pairs[:, 1] == c, 0] for c in range(num_coarse)]
  short = [c for c, f in enumerate(fines) if len(f) < num_tasks]
  if short:
    raise ValueError(
        f"domain_cifar100: num_tasks={num_tasks} needs {num_tasks} fine classes"
        f" in every superclass, but superclasses {short} have fewer."
    )
  task_fines = [[int(f[t]) for f in fines] for t in range(num_tasks)]

  def rows(fine):
    return [np.flatnonzero(np.isin(fine, tf)) for tf in task_fines]

  return _from_rows(
      "domain_cifar100",
      [f"fine-{t + 1}" for t in range(num_tasks)],
      num_coarse,
      data,
      rows(data.train_labels),
      rows(data.test_labels),
      train_labels=data.train_coarse_labels,
      test_labels=data.test_coarse_labels,
  )


def _split_class_ranges(
    data: ImageDataset, num_tasks: int, classes_per_task: int, name: str, held_note: str
) -> TaskStream:
  """Task ``t`` holds the labels ``t*classes_per_task .. (t+1)*classes_per_task
  - 1``; a head of ``num_tasks * classes_per_task`` outputs; task names the
  label ranges (``"0-9"``, or ``"3"`` for one class per task).

  Raises:
    ValueError: a non-positive count, or more classes than the data holds
      (the message ends with ``held_note``).
  """
  num_tasks = _check_int(f"{name}: num_tasks", num_tasks, 1)
  per = _check_int(f"{name}: classes_per_task", classes_per_task, 1)
  _check_labels(data, name, 100)  # CIFAR-100's and mini-ImageNet's 100 classes
  needed = num_tasks * per
  held = len(np.unique(data.train_labels))
  if needed > held:
    raise ValueError(
        f"{name}: {num_tasks} tasks x {per} classes = {needed}"
        f" classes, but the data holds {held} ({held_note})."
    )
  groups = [range(t * per, (t + 1) * per) for t in range(num_tasks)]
  stream = split_by_classes(data, groups, name, needed)
  return dataclasses.replace(
      stream,
      task_names=tuple(
          str(g[0]) if per == 1 else f"{g[0]}-{g[-1]}" for g in groups
      ),
  )


def split_miniimagenet(
    data: ImageDataset, num_tasks: int = 5, classes_per_task: int = 10
) -> TaskStream:
  """Split mini-ImageNet: task ``t`` holds classes
  ``t*classes_per_task .. (t+1)*classes_per_task - 1`` (class order as in
  :func:`ngm_jax.pickles.read_miniimagenet_pickles`).

  The head has ``num_tasks * classes_per_task`` outputs (50 by default); the
  labels stay the class ids. Task names are the class ranges, e.g. ``"0-9"``.

  Raises:
    ValueError: a non-positive count, or more classes than the data holds.
  """
  return _split_class_ranges(
      data, num_tasks, classes_per_task, "split_miniimagenet", "mini-ImageNet has 100"
  )


def split_cifar100(
    data: ImageDataset, num_tasks: int = 10, classes_per_task: int = 10
) -> TaskStream:
  """Split CIFAR-100 (class-incremental): task ``t`` holds the fine classes
  ``t*classes_per_task .. (t+1)*classes_per_task - 1``, by default 10 tasks of
  10 classes, 0-9, 10-19, ..., 90-99.

  The class order is the fine-label order of the official archive (and of
  tensorflow-datasets' ``cifar100``), which is alphabetical by class name
  (apple, aquarium_fish, baby, bear, ...): fixed, with no seed to record, and
  not grouped by superclass, so a task mixes superclasses. The labels stay the
  fine class ids; the head has ``num_tasks * classes_per_task`` outputs (100
  by default). Task names are the label ranges, e.g. ``"0-9"``. Images
  ``[N, 32, 32, 3]`` keep their shape; the superclass labels are not used.

  Args:
    data: CIFAR-100 (:func:`ngm_jax.data.load_cifar100`), fine labels 0..99.
    num_tasks: tasks, >= 1.
    classes_per_task: classes per task, >= 1; ``num_tasks *
      classes_per_task`` must not exceed the classes the data holds.

  Raises:
    ValueError: a non-positive count, or more classes than the data holds.
  """
  return _split_class_ranges(
      data, num_tasks, classes_per_task, "split_cifar100", "CIFAR-100 has 100"
  )


def subsample_test(stream: TaskStream, per_task: int, seed: int = 0) -> TaskStream:
  """Keeps a fixed random subset of ``per_task`` test images of each task.

  Task ``k``'s subset is drawn without replacement by
  ``np.random.default_rng([seed, k])``, so it depends only on ``seed``, ``k``
  and the task's size; a task with at most ``per_task`` images keeps them
  all. Kept rows stay in their stored order and tasks in their order; the
  training arrays are untouched. Record ``per_task`` and ``seed`` with the
  results: accuracies are then over the subset.

  Returns:
    The stream with new ``test_images``, ``test_labels``, ``test_task_ends``.
  """
  per_task = _check_int("subsample_test: per_task", per_task, 1)
  seed = _check_int("subsample_test: seed", seed, 0)
  ends = np.asarray(stream.test_task_ends)
  rows = []
  for k, (lo, hi) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
    n = int(hi - lo)
    if n <= per_task:
      rows.append(np.arange(lo, hi))
    else:
      pick = np.random.default_rng([seed, k]).choice(n, per_task, replace=False)
      rows.append(lo + np.sort(pick))
  images, labels, new_ends = _take(stream.test_images, stream.test_labels, rows)
  return dataclasses.replace(
      stream, test_images=images, test_labels=labels, test_task_ends=new_ends
  )
