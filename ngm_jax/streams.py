"""Benchmarks as task streams, and joint sampling over the tasks seen so far.

A :class:`TaskStream` holds a benchmark's examples ordered by task, so that
the union of tasks ``1..k`` is a prefix of the training arrays. Incremental
joint training (no task labels, one shared head) then samples a minibatch at
task ``k`` uniformly, with replacement, from that prefix:
:func:`sample_joint_indices`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ngm_jax.data import ImageDataset, load_mnist

__all__ = [
    "TaskStream",
    "split_by_classes",
    "split_mnist",
    "rotate_images",
    "rotated",
    "rotated_mnist",
    "sample_joint_indices",
    "Sampler",
    "joint_sampler",
    "BENCHMARKS",
    "load_benchmark",
]


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


def _from_tasks(name, task_names, num_classes, train_parts, test_parts) -> TaskStream:
  """A stream from per-task ``(images, labels)`` pairs, in task order."""
  train, test = _concat_tasks(train_parts), _concat_tasks(test_parts)
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


def split_by_classes(
    data: ImageDataset,
    class_groups: Sequence[Sequence[int]],
    name: str,
    num_classes: int | None = None,
) -> TaskStream:
  """Class-incremental stream: task ``k`` holds the classes ``class_groups[k]``.

  Labels are kept as they are (one shared head over all classes).
  """
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

  def select(images, labels):
    return [
        (images[np.isin(labels, g)], labels[np.isin(labels, g)]) for g in groups
    ]

  return _from_tasks(
      name,
      ["/".join(map(str, g)) for g in groups],
      num_classes or int(max(flat)) + 1,
      select(data.train_images, data.train_labels),
      select(data.test_images, data.test_labels),
  )


def split_mnist(data: ImageDataset) -> TaskStream:
  """Split MNIST: 5 tasks {0,1}, {2,3}, {4,5}, {6,7}, {8,9}; 10-way head."""
  return split_by_classes(
      data, [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)], "split_mnist", 10
  )


def rotate_images(images: np.ndarray, degrees: float) -> np.ndarray:
  """Rotates ``[N, H, W]`` uint8 images counter-clockwise about their centre.

  Bilinear interpolation, zeros outside the source image; the same sampling
  grid for every image, so this is one gather over the batch.
  """
  if degrees % 360 == 0:
    return images.copy()
  n, h, w = images.shape
  theta = np.deg2rad(degrees)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  # Inverse map: the source pixel of each output pixel (rotate by -theta).
  dy, dx = yy - cy, xx - cx
  sx = np.cos(theta) * dx - np.sin(theta) * dy + cx
  sy = np.sin(theta) * dx + np.cos(theta) * dy + cy
  x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
  fx, fy = sx - x0, sy - y0
  flat = images.reshape(n, h * w).astype(np.float32)
  out = np.zeros((n, h * w), np.float32)
  for oy, ox, weight in (
      (0, 0, (1 - fy) * (1 - fx)),
      (0, 1, (1 - fy) * fx),
      (1, 0, fy * (1 - fx)),
      (1, 1, fy * fx),
  ):
    py, px = y0 + oy, x0 + ox
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    idx = np.where(inside, py * w + px, 0).ravel()
    wgt = np.where(inside, weight, 0.0).ravel().astype(np.float32)
    out += flat[:, idx] * wgt
  return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, h, w)


def rotated(
    data: ImageDataset, angles: Sequence[float], name: str, num_classes: int
) -> TaskStream:
  """Domain-incremental stream: task ``k`` is every image rotated by
  ``angles[k]`` degrees, all labels in every task."""
  return _from_tasks(
      name,
      [f"{a:g}°" for a in angles],
      num_classes,
      [(rotate_images(data.train_images, a), data.train_labels) for a in angles],
      [(rotate_images(data.test_images, a), data.test_labels) for a in angles],
  )


def rotated_mnist(
    data: ImageDataset, angles: Sequence[float] = (0.0, 80.0, 160.0)
) -> TaskStream:
  """Rotated MNIST: all ten digits rotated by 0°, 80°, 160° (3 tasks)."""
  return rotated(data, angles, "rotated_mnist", 10)


def sample_joint_indices(
    key: jax.Array, task: jax.Array, train_task_ends: jax.Array, batch_size: int
) -> jax.Array:
  """Minibatch rows for incremental joint training at ``task`` (0-based).

  Draws ``batch_size`` rows uniformly, with replacement, from the training
  examples of tasks ``0..task``, i.e. from ``[0, train_task_ends[task])``.

  Returns:
    int32 ``[batch_size]``.
  """
  return jax.random.randint(
      key, (batch_size,), 0, train_task_ends[task], dtype=jnp.int32
  )


class Sampler(NamedTuple):
  """Which training rows each step draws, as a pure pair of functions.

  Attributes:
    init: ``key -> state``, the sampler's state at iteration 0 (any pytree).
    sample: ``(key, step, state) -> (rows int32 [B], state)`` for the
      (0-based) optimizer step ``step``.
  """

  init: Callable[[jax.Array], Any]
  sample: Callable[[jax.Array, jax.Array, Any], tuple[jax.Array, Any]]


def joint_sampler(
    stream: TaskStream, batch_size: int, iterations_per_task: int
) -> Sampler:
  """Incremental joint training: step ``t`` is in task ``t // I`` and draws
  from every task seen so far (:func:`sample_joint_indices`). Stateless."""
  ends = jnp.asarray(stream.train_task_ends)

  def sample(key, step, state):
    task = step // iterations_per_task
    return sample_joint_indices(key, task, ends, batch_size), state

  return Sampler(init=lambda key: (), sample=sample)


#: Benchmark name → (dataset loader, stream builder).
BENCHMARKS = {
    "split_mnist": (load_mnist, split_mnist),
    "rotated_mnist": (load_mnist, rotated_mnist),
}


def load_benchmark(name: str, data_dir: str | None = None) -> TaskStream:
  """Loads a benchmark's data (see :mod:`ngm_jax.data`) and builds its stream.

  Raises:
    ValueError: for an unknown benchmark (the message lists the known ones).
    ngm_jax.data.DataUnavailableError: when the data cannot be found.
  """
  if name not in BENCHMARKS:
    raise ValueError(
        f"Unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}."
    )
  load, build = BENCHMARKS[name]
  return build(load(data_dir))
