"""Failed seeds: runs that diverged, or collapsed to a uniform guess.

A failed seed's Task-1 accuracy is flat, so its ``SG_k`` is ~0 and its
stability-gap metrics do not measure a gap; tables count such seeds and add
rows without them, figures leave diverged seeds out of their means.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["failed_seeds", "failed_seeds_note"]


def failed_seeds(
    curves: Mapping[str, Any], num_classes: int | None = None, tail: float = 0.1
) -> np.ndarray:
  """Which seeds' training failed: diverged, or collapsed to guessing.

  A seed failed when its training loss became non-finite (diverged), or,
  given ``num_classes`` C, when its mean training loss over the last ``tail``
  of the iterations is at least ``0.99·ln C`` nats, no better than a uniform
  guess (collapsed). A failed seed's Task-1 accuracy is flat, so its SG_k is
  ~0 and its stability-gap metrics do not measure a gap.

  Args:
    curves: one variant's curves, with ``train_loss`` ``[S, T]`` (nats).
    num_classes: C, the output classes (None: only divergence is checked).
    tail: fraction of the iterations at the end, in ``(0, 1]``.

  Returns:
    ``[S]`` bool, True for a failed seed.

  Raises:
    ValueError: a bad ``tail``, or ``train_loss`` that is not ``[S, T]``.
  """
  if not 0.0 < tail <= 1.0:
    raise ValueError(f"failed_seeds: tail={tail!r} must be in (0, 1].")
  loss = np.asarray(curves["train_loss"], np.float64)
  if loss.ndim != 2:
    raise ValueError(f"failed_seeds: train_loss must be [S, T]; got shape {loss.shape}.")
  failed = ~np.all(np.isfinite(loss), axis=1)
  if num_classes is not None:
    last = loss[:, -max(1, int(round(tail * loss.shape[1]))):]
    with np.errstate(invalid="ignore"):
      failed |= last.mean(axis=1) >= 0.99 * math.log(num_classes)
  return failed


def failed_seeds_note(failed: Mapping[str, Any], num_classes: int | None) -> str | None:
  """One line for a table's notes on what :func:`failed_seeds` found.

  Args:
    failed: ``{label: [S] bool}`` from :func:`failed_seeds`.
    num_classes: the C it was given (None: only divergence was checked).

  Returns:
    The definition of a failed seed and how the table treats them when any
    seed failed; when none did and collapse was not checked, a line saying
    so; else None.
  """
  if any(np.any(bad) for bad in failed.values()):
    collapse = (f", or over the last 10% of iterations no lower than 0.99·ln {num_classes}"
                " nats (no better than a uniform guess: collapsed)" if num_classes else "")
    return (f"Failed seeds: training loss non-finite (diverged){collapse}. A failed seed's"
            " Task-1 accuracy is flat, so its SG is ~0: averages that include it do not measure"
            " a gap. Rows marked ↳ use only the seeds that did not fail; the figures leave out"
            " diverged seeds and count failed ones in their legends.")
  if num_classes is None:
    return ("No seed diverged (this run.json predates num_classes, so collapse to a"
            " uniform guess was not checked).")
  return None
