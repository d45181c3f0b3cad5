"""Failed seeds: runs that diverged, or ended no better than chance.

Two rules, each per seed:

- **diverged**: its training loss or gain became non-finite. The compiled
  loop records the first such iteration (``curves["diverged_at"]``, 1-based,
  -1 for none; :mod:`ngm_jax.train`); for runs saved before that record, the
  first non-finite value of the ``train_loss`` (and ``gain``) curve.
- **at chance**: its final accuracy over the tasks seen (at the last
  per-task evaluation, every task) is within ``z = 3`` standard errors of
  chance, ``1/C`` for ``C`` classes. The standard error is that of a uniform
  guess on these test sets, ``√(p(1−p)·Σ_j 1/n_j) / K`` with ``p = 1/C`` and
  ``n_j`` test images in task ``j``. Judged by accuracy, never by training
  loss, so a seed that learned is not flagged however short the run.

A failed seed's Task-1 metrics describe the failure, not a stability gap (a
seed that learned Task 1 and then collapsed shows a large SG); tables add
rows without failed seeds, figures leave diverged seeds out of their means.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["failed_seeds", "failed_seeds_note", "divergence", "final_seen_accuracy",
           "chance_threshold", "failure_reasons", "failed_seeds_of_run", "run_test_sizes", "Z_CHANCE",
           "CHANCE_MARGIN_UNKNOWN_SIZES"]

#: Standard errors above chance within which a seed counts as at chance.
Z_CHANCE = 3.0
#: The margin above chance (a fraction) used when the test-set sizes are unknown.
CHANCE_MARGIN_UNKNOWN_SIZES = 0.02


def divergence(curves: Mapping[str, Any]) -> np.ndarray:
  """Each seed's first iteration (1-based) with a non-finite training loss or
  gain, -1 for none: ``[S]`` int.

  Read from ``curves["diverged_at"]`` (recorded inside the compiled loop);
  without it (runs saved before the record), from the ``train_loss`` and
  ``gain`` curves ``[S, T]``, one value per iteration.

  Raises:
    ValueError: neither ``diverged_at`` nor a ``train_loss`` ``[S, T]``.
  """
  if "diverged_at" in curves:
    return np.asarray(curves["diverged_at"]).astype(np.int64).reshape(-1)
  if "train_loss" not in curves:
    raise ValueError("failed_seeds: the curves hold neither diverged_at nor train_loss.")
  loss = np.asarray(curves["train_loss"], np.float64)
  if loss.ndim != 2:
    raise ValueError(f"failed_seeds: train_loss must be [S, T]; got shape {loss.shape}.")
  bad = ~np.isfinite(loss)
  if "gain" in curves and np.shape(curves["gain"]) == loss.shape:
    bad |= ~np.isfinite(np.asarray(curves["gain"], np.float64))
  return np.where(bad.any(axis=1), bad.argmax(axis=1) + 1, -1)


def final_seen_accuracy(curves: Mapping[str, Any]) -> np.ndarray:
  """``[S]``: the mean of every task's test accuracy at the last per-task
  evaluation (the end of the stream: every task has been seen)."""
  task_acc = np.asarray(curves["task_acc"], np.float64)
  if task_acc.ndim != 3:
    raise ValueError(f"failed_seeds: task_acc must be [S, P, K]; got shape {task_acc.shape}.")
  return task_acc[:, -1, :].mean(axis=-1)


def chance_threshold(num_classes: int, test_sizes: Sequence[int] | None,
                     z: float = Z_CHANCE) -> float:
  """The accuracy at or below which a seed counts as at chance:
  ``1/C + z·√(p(1−p)·Σ_j 1/n_j)/K`` (``p = 1/C``), or ``1/C +``
  :data:`CHANCE_MARGIN_UNKNOWN_SIZES` when ``test_sizes`` is None."""
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
      or num_classes < 2:
    raise ValueError(f"failed_seeds: num_classes={num_classes!r} must be an integer >= 2.")
  p = 1.0 / num_classes
  if test_sizes is None:
    return p + CHANCE_MARGIN_UNKNOWN_SIZES
  sizes = np.asarray(test_sizes, np.float64)
  if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes < 1):
    raise ValueError(f"failed_seeds: test_sizes={list(test_sizes)!r} must be one count"
                     " >= 1 per task.")
  return p + z * math.sqrt(p * (1 - p) * float(np.sum(1.0 / sizes))) / sizes.size


def failed_seeds(
    curves: Mapping[str, Any],
    num_classes: int | None = None,
    test_sizes: Sequence[int] | None = None,
    *,
    z: float = Z_CHANCE,
) -> np.ndarray:
  """Which seeds failed: diverged, or (given ``num_classes``) at chance.

  Args:
    curves: one variant's curves ``{name: [S, ...]}``: ``diverged_at``
      ``[S]`` (or, from older runs, ``train_loss`` ``[S, T]``), and
      ``task_acc`` ``[S, P, K]`` when ``num_classes`` is given.
    num_classes: C (None: only divergence is checked).
    test_sizes: the ``K`` test-set sizes behind ``task_acc`` (None: a margin
      of :data:`CHANCE_MARGIN_UNKNOWN_SIZES` above chance).
    z: standard errors above chance still counted as chance.

  Returns:
    ``[S]`` bool, True for a failed seed.

  Raises:
    ValueError: curves without what the rule reads, or a bad ``num_classes``.
  """
  failed = divergence(curves) >= 0
  if num_classes is not None:
    threshold = chance_threshold(num_classes, test_sizes, z)
    with np.errstate(invalid="ignore"):
      failed |= final_seen_accuracy(curves) <= threshold
  return failed


def failure_reasons(
    curves: Mapping[str, Any],
    num_classes: int | None = None,
    test_sizes: Sequence[int] | None = None,
    *,
    z: float = Z_CHANCE,
) -> list[str]:
  """Per seed, why it failed (``""`` for a seed that did not), e.g.
  ``"diverged at iteration 11"`` or ``"at chance (final accuracy 10.2%)"``."""
  diverged = divergence(curves)
  reasons = [f"diverged at iteration {int(t)}" if t >= 0 else "" for t in diverged]
  if num_classes is not None:
    threshold = chance_threshold(num_classes, test_sizes, z)
    for s, acc in enumerate(final_seen_accuracy(curves)):
      if not reasons[s] and acc <= threshold:
        reasons[s] = f"at chance (final accuracy {100 * acc:.1f}%)"
  return reasons


def failed_seeds_of_run(curves: Mapping[str, Any], meta: Mapping[str, Any]) -> np.ndarray:
  """:func:`failed_seeds` with ``num_classes`` and the test sizes of a run's
  record (``run.json``; Task 1's size for every task where older records
  lack ``test_sizes``)."""
  return failed_seeds(curves, meta.get("num_classes"), run_test_sizes(meta))


def run_test_sizes(meta: Mapping[str, Any]) -> list[int] | None:
  """The per-task test sizes a run's accuracies are on, from its record."""
  if meta.get("test_sizes"):
    return [int(n) for n in meta["test_sizes"]]
  if meta.get("task1_test_size") and meta.get("num_tasks"):
    return [int(meta["task1_test_size"])] * int(meta["num_tasks"])
  return None


def failed_seeds_note(
    failed: Mapping[str, Any],
    num_classes: int | None,
    test_sizes: Sequence[int] | None = None,
    *,
    reasons: Mapping[str, Sequence[str]] | None = None,
    z: float = Z_CHANCE,
) -> str:
  """The table's note on failed seeds: the rule in words, and which failed.

  Args:
    failed: ``{label: [S] bool}`` from :func:`failed_seeds`.
    num_classes: the C it was given (None: only divergence was checked).
    test_sizes: the test sizes it was given.
    reasons: ``{label: [S] str}`` from :func:`failure_reasons`, to name each
      failed seed's reason.
    z: the ``z`` it was given.
  """
  rule = ("Failed seeds: a seed *diverged* if its training loss or gain became non-finite"
          " at some iteration")
  if num_classes:
    threshold = chance_threshold(num_classes, test_sizes, z)
    how = (f"{z:g} standard errors (of a uniform guess on these test sets)" if test_sizes
           else f"{100 * CHANCE_MARGIN_UNKNOWN_SIZES:g} percentage points (the test-set sizes"
                " were not recorded)")
    rule += (f"; it is *at chance* if its final accuracy over all tasks seen is at most"
             f" {100 * threshold:.1f}%, no more than {how} above chance (1/{num_classes} ="
             f" {100 / num_classes:.1f}%): it collapsed to guessing or never learned."
             " Judged by accuracy, not training loss, so a seed that learned is not flagged")
  else:
    rule += ("; collapse to chance was not checked (this run.json predates num_classes)")
  rule += "."
  if not any(np.any(bad) for bad in failed.values()):
    return rule + " No seed failed."
  named = []
  for label, bad in failed.items():
    for s in np.flatnonzero(np.asarray(bad, bool)):
      why = (reasons or {}).get(label, [""] * (s + 1))[s]
      named.append(f"{label} seed index {s}" + (f" {why}" if why else ""))
  return (rule + " Here: " + "; ".join(named) + ". A failed seed's Task-1 metrics describe"
          " the failure, not a stability gap (a seed that learned Task 1 and then collapsed"
          " shows a large SG; a diverged seed's losses are NaN from then on). Rows marked ↳"
          " use only the seeds that did not fail; the figures leave out diverged seeds and"
          " count failed ones in their legends.")
