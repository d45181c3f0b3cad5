"""A validation split carved from each task's training data, for tuning.

:func:`validation_split` holds out a fixed, seeded fraction of every task's
training rows. The returned search stream trains on the rest and evaluates
on the held-out rows in place of the test set, so a tuner that reads only
the search stream's curves cannot see the test set: the search stream
carries no test row at all. :class:`ValidationSplit` is the record
(fraction, seed, sizes) written beside the tuning results.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ngm_jax import checks
from ngm_jax.streams import TaskStream

__all__ = ["ValidationSplit", "validation_split"]


@dataclasses.dataclass(frozen=True)
class ValidationSplit:
  """Which training rows were held out.

  Attributes:
    fraction: the held-out fraction of each task's training rows.
    seed: the NumPy seed of the choice of rows.
    train_sizes: rows per task left for training during the search.
    validation_sizes: rows per task held out.
    validation_rows: int64 ``[N_val]``, the held-out rows' indices in the
      original stream's training set, task by task.
  """

  fraction: float
  seed: int
  train_sizes: tuple[int, ...]
  validation_sizes: tuple[int, ...]
  validation_rows: np.ndarray

  def to_json(self) -> dict[str, Any]:
    """The record without the row indices (they follow from the seed)."""
    return {"fraction": self.fraction, "seed": self.seed,
            "train_sizes": list(self.train_sizes),
            "validation_sizes": list(self.validation_sizes)}


def validation_split(stream: TaskStream, fraction: float = 0.1, seed: int = 0
                     ) -> tuple[TaskStream, ValidationSplit]:
  """``stream`` with a seeded ``fraction`` of each task's training rows held out.

  Args:
    stream: the benchmark.
    fraction: held-out fraction per task, in ``(0, 1)``; each task keeps at
      least one row on each side.
    seed: seeds the choice of rows (``numpy.random.default_rng(seed)``, one
      permutation per task in task order), so the same seed gives the same
      split.

  Returns:
    ``(search_stream, split)``: ``search_stream`` has the same name, tasks
    and classes; its training set is the rows kept, its "test" set the rows
    held out (task by task, in their original order); the real test set is
    not in it. ``split`` records what was held out.

  Raises:
    TypeError: a fraction or seed that is not a number (an integer for the seed).
    ValueError: a fraction outside ``(0, 1)``, a negative seed, or a task too
      small to split.
  """
  checks.check_number("validation fraction", fraction, lambda v: 0.0 < v < 1.0,
                      "a number in (0, 1)")
  checks.check_integer("validation seed", seed, 0)
  rng = np.random.default_rng(int(seed))
  starts = np.concatenate([[0], stream.train_task_ends[:-1]]).astype(np.int64)
  ends = np.asarray(stream.train_task_ends, np.int64)
  keep, held = [], []
  for k, (a, b) in enumerate(zip(starts, ends)):
    n = int(b - a)
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val > n - 1:
      raise ValueError(
          f"validation fraction={fraction}: task {k + 1} ({stream.task_names[k]!r}) has"
          f" {n} training rows, so it would hold out {n_val}; each side needs at least one.")
    order = rng.permutation(n)
    held.append(np.sort(order[:n_val]) + a)
    keep.append(np.sort(order[n_val:]) + a)

  def ends_of(parts):
    return np.cumsum([len(p) for p in parts]).astype(np.int32)

  train_rows, val_rows = np.concatenate(keep), np.concatenate(held)
  search = dataclasses.replace(
      stream,
      train_images=stream.train_images[train_rows],
      train_labels=np.asarray(stream.train_labels[train_rows], np.int32),
      train_task_ends=ends_of(keep),
      test_images=stream.train_images[val_rows],
      test_labels=np.asarray(stream.train_labels[val_rows], np.int32),
      test_task_ends=ends_of(held))
  split = ValidationSplit(float(fraction), int(seed), tuple(len(p) for p in keep),
                          tuple(len(p) for p in held), val_rows)
  return search, split
