"""Domain-incremental task streams: every task holds every class, seen anew.

* ``rotated_mnist`` (:func:`rotated`): every digit at 0°, 80°, 160°
  (``interpolation``: ``"nearest"``, torchvision's rotation, or
  ``"bilinear"``; :mod:`ngm_jax.transforms`).
* ``permuted_mnist`` (:func:`permuted`): every digit under ``num_tasks`` fixed
  pixel permutations (task 1 the identity), drawn from ``permutation_seed``;
  an optional random subset of ``train_per_task`` training images per task.

All are re-exported by :mod:`ngm_jax.streams`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ngm_jax.dataset import ImageDataset
from ngm_jax.task_stream import (TaskStream, _check_int, _check_labels, _from_tasks,
                                 _single_channel, _stream)
from ngm_jax.transforms import rotate_images

__all__ = ["rotated", "rotated_mnist", "pixel_permutations", "permuted", "permuted_mnist"]


def rotated(
    data: ImageDataset,
    angles: Sequence[float],
    name: str,
    num_classes: int,
    interpolation: str = "nearest",
) -> TaskStream:
  """Domain-incremental stream: task ``k`` is every image rotated
  counter-clockwise by ``angles[k]`` degrees, all labels in every task.
  Images ``[N, H, W]`` or ``[N, H, W, C]`` keep their shape (every channel is
  rotated alike).

  ``interpolation`` is :func:`ngm_jax.transforms.rotate_images`'s:
  ``"nearest"`` (torchvision's / Pillow's ``rotate``, pixel for pixel) or
  ``"bilinear"``. Every label must be a class id of the head,
  ``[0, num_classes)`` (ValueError naming the first that is not).
  """
  _check_labels(data, name, num_classes)
  return _from_tasks(
      name,
      [f"{a:g}°" for a in angles],
      num_classes,
      [(rotate_images(data.train_images, a, interpolation), data.train_labels)
       for a in angles],
      [(rotate_images(data.test_images, a, interpolation), data.test_labels)
       for a in angles],
  )


def rotated_mnist(
    data: ImageDataset,
    angles: Sequence[float] = (0.0, 80.0, 160.0),
    interpolation: str = "nearest",
) -> TaskStream:
  """Rotated MNIST: all ten digits rotated by 0°, 80°, 160° (3 tasks).

  ``interpolation="nearest"`` (default) gives the pixels of torchvision's
  ``rotate`` (Pillow's nearest-neighbour rotation about the image centre,
  fill 0); ``"bilinear"`` is the rotation of this library's earlier runs.
  Images ``[N, 28, 28]`` or ``[N, 28, 28, 1]``; the stream's are
  ``[N, 28, 28]`` either way.
  """
  data = _single_channel(data, "rotated_mnist")
  return rotated(data, angles, "rotated_mnist", 10, interpolation)


def pixel_permutations(num_tasks: int, seed: int = 0, num_pixels: int = 784) -> np.ndarray:
  """The pixel permutations of a permuted stream: int32 ``[num_tasks, num_pixels]``.

  Row 0 is the identity (task 1 is the original images, as in most permuted
  MNIST setups); row ``k >= 1`` is
  ``np.random.default_rng([seed, k]).permutation(num_pixels)``, so a task's
  permutation depends only on ``seed`` and ``k``, not on ``num_tasks``
  (the first 5 of 10 tasks are the 5 tasks of a 5-task stream).

  Raises:
    ValueError: ``num_tasks`` or ``num_pixels`` below 1, ``seed`` below 0.
  """
  num_tasks = _check_int("pixel_permutations: num_tasks", num_tasks, 1)
  seed = _check_int("pixel_permutations: seed", seed, 0)
  num_pixels = _check_int("pixel_permutations: num_pixels", num_pixels, 1)
  perms = np.empty((num_tasks, num_pixels), np.int32)
  perms[0] = np.arange(num_pixels)
  for k in range(1, num_tasks):
    perms[k] = np.random.default_rng([seed, k]).permutation(num_pixels)
  return perms


def _train_subset_rows(n: int, per_task: int | None, seed: int, task: int) -> np.ndarray:
  """Task ``task``'s training rows: all ``n`` (None), else ``per_task`` drawn
  without replacement by ``default_rng([seed, task, 1])``, in stored order."""
  if per_task is None or per_task >= n:
    return np.arange(n)
  pick = np.random.default_rng([seed, task, 1]).choice(n, per_task, replace=False)
  return np.sort(pick)


def permuted(
    data: ImageDataset,
    permutations: np.ndarray,
    name: str,
    num_classes: int,
    train_per_task: int | None = None,
    seed: int = 0,
) -> TaskStream:
  """Domain-incremental stream: task ``k`` is the images with their pixels
  reordered by ``permutations[k]``, every label in every task, labels unchanged.

  A permutation acts on the ``H*W`` pixel positions of the row-major
  flattened image (every channel alike): the permuted image's pixel ``i`` is
  the original's pixel ``permutations[k][i]``. Images ``[N, H, W]`` or
  ``[N, H, W, C]`` keep their shape.

  The stream's arrays are written in place, one task at a time (peak host
  memory: the stream plus one task's images), not built per task and then
  concatenated.

  Args:
    data: the images and labels.
    permutations: int ``[K, H*W]``, each row a permutation of ``0..H*W-1``
      (:func:`pixel_permutations`).
    name: the stream's name.
    num_classes: the head's size.
    train_per_task: keep this many training images per task, a different
      fixed random subset for each task (drawn by
      ``np.random.default_rng([seed, k, 1])``, kept in stored order); None, or
      at least the training set's size: every training image in every task.
      The test set is kept whole in every task.
    seed: the seed of the training subsets.

  Raises:
    ValueError: a row of ``permutations`` is not a permutation of the pixel
      positions; ``train_per_task`` below 1; a label outside
      ``[0, num_classes)`` (naming the first).
  """
  _check_labels(data, name, num_classes)
  perms = np.asarray(permutations)
  pixels = int(np.prod(data.train_images.shape[1:3]))
  if perms.ndim != 2 or perms.shape[1] != pixels:
    raise ValueError(
        f"{name}: permutations of shape {perms.shape}; expected [tasks, {pixels}]"
        f" for images of shape {data.train_images.shape[1:]}."
    )
  bad = [k for k, p in enumerate(perms) if not np.array_equal(np.sort(p), np.arange(pixels))]
  if bad:
    raise ValueError(f"{name}: rows {bad} of permutations are not permutations of"
                     f" 0..{pixels - 1}.")
  if train_per_task is not None:
    train_per_task = _check_int(f"{name}: train_per_task", train_per_task, 1)

  def build(images, labels, rows_of_task):
    n = len(labels)
    rows = [rows_of_task(n, k) for k in range(len(perms))]
    ends = np.cumsum([len(r) for r in rows]).astype(np.int32)
    out = np.empty((int(ends[-1]),) + images.shape[1:], images.dtype)
    flat_in = images.reshape(n, pixels, -1)  # a view: [N, H*W, C]
    flat_out = out.reshape(len(out), pixels, -1)
    for k, (r, lo) in enumerate(zip(rows, np.r_[0, ends[:-1]])):
      picked = flat_in if len(r) == n else flat_in[r]
      # mode="clip": the rows were checked to be permutations; "raise" would
      # buffer the output.
      np.take(picked, perms[k], axis=1, out=flat_out[lo:lo + len(r)], mode="clip")
    out_labels = np.concatenate([labels[r] for r in rows]).astype(np.int32)
    return out, out_labels, ends

  train = build(data.train_images, data.train_labels,
                lambda n, k: _train_subset_rows(n, train_per_task, seed, k))
  test = build(data.test_images, data.test_labels, lambda n, k: np.arange(n))
  task_names = ["identity" if np.array_equal(p, np.arange(pixels)) else f"perm-{k}"
                for k, p in enumerate(perms)]
  return _stream(name, task_names, num_classes, train, test)


def permuted_mnist(
    data: ImageDataset,
    num_tasks: int = 10,
    permutation_seed: int = 0,
    train_per_task: int | None = None,
) -> TaskStream:
  """Permuted MNIST (domain-incremental): all ten digits under ``num_tasks``
  fixed pixel permutations of the flattened 28×28 image; a 10-way head.

  Task 1 is the identity (the original images, as in most permuted MNIST
  setups: its accuracy is that of plain MNIST); task ``k >= 2`` permutes the
  784 pixels by ``np.random.default_rng([permutation_seed, k - 1])
  .permutation(784)`` (:func:`pixel_permutations`), so the permutations are
  reproducible from the recorded seed, and a task's permutation does not
  depend on ``num_tasks``. Labels are unchanged.

  Training images per task: all 60,000 by default (every task is all of
  MNIST), or a random ``train_per_task`` of them, a different subset for each
  task, also drawn from ``permutation_seed``. Measured on the real files on
  the 2-core development machine: 10 tasks of all 60,000 are 470 MB of
  training images (552 MB with the test sets and labels) built in 1.8 s
  (peak RSS 0.8 GB, of which 0.3 GB before building); a one-seed run of the
  MLP held 1.0 GB on the device (XLA's memory analysis: data, outputs,
  temporaries) and peaked at 1.9 GB RSS. ``train_per_task=10000``: 78 MB, 0.13
  s, 0.6 GB on the device, 1.2 GB RSS. The time per iteration does not
  depend on it (a minibatch is sampled from the stream), so the full set is
  the default, and the option is for devices with little memory.

  Args:
    data: MNIST, images ``[N, 28, 28]`` or ``[N, 28, 28, 1]`` (the stream's
      are ``[N, 28, 28]``); the test set is kept whole in every task.
    num_tasks: tasks, >= 1.
    permutation_seed: seed of the permutations and of the training subsets,
      >= 0.
    train_per_task: training images per task (>= 1; at least the training
      set's size keeps all), or None for all.

  Raises:
    ValueError: an option out of range.
  """
  num_tasks = _check_int("permuted_mnist: num_tasks", num_tasks, 1)
  seed = _check_int("permuted_mnist: permutation_seed", permutation_seed, 0)
  if train_per_task is not None:
    train_per_task = _check_int("permuted_mnist: train_per_task", train_per_task, 1)
  data = _single_channel(data, "permuted_mnist")
  pixels = int(np.prod(data.train_images.shape[1:3]))
  return permuted(data, pixel_permutations(num_tasks, seed, pixels), "permuted_mnist", 10,
                  train_per_task, seed)
