"""Statistics over seeds: mean ± standard error, Student-t intervals, lines.

Pure NumPy (and :mod:`scipy.stats` for the Student-t quantile) functions of
per-seed values; the leading axis is the seed axis ``S`` unless an ``axis``
is given.

- Standard error: ``s.e. = std(ddof=1) / √S`` (NaN for one seed).
- Confidence interval at ``level``: ``mean ± t_{(1+level)/2, S−1} · s.e.``,
  with ``t_{p, ν}`` the ``p`` quantile of Student's t with ``ν`` degrees of
  freedom (``scipy.stats.t.ppf``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["mean_and_stderr", "confidence_interval", "paired_difference", "linear_fit"]


def mean_and_stderr(values: Any, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard error (``std(ddof=1) / sqrt(n)``) over ``axis``.

  With a single value the standard error is NaN (undefined), not 0.
  """
  values = np.asarray(values, dtype=np.float64)
  n = values.shape[axis]
  mean = values.mean(axis=axis)
  if n < 2:
    return mean, np.full_like(mean, np.nan)
  return mean, values.std(axis=axis, ddof=1) / math.sqrt(n)


def confidence_interval(values: Any, level: float = 0.95) -> dict[str, float]:
  """Mean of per-seed values with a Student-t confidence interval.

  ``mean ± t_{(1+level)/2, S−1} · s.e.``, with ``s.e. = std(ddof=1) / √S``;
  e.g. ``t_{0.975, 4} = 2.7764`` for five seeds.

  Args:
    values: ``[S]`` one value per seed.
    level: coverage in ``(0, 1)``, default 0.95.

  Returns:
    ``{"mean", "stderr", "t", "half_width", "low", "high", "n"}`` as Python
    floats (``n`` an int); with one seed every value but ``mean`` and ``n``
    is NaN.

  Raises:
    ValueError: ``values`` is not a non-empty 1-D array, or a bad ``level``.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or values.size < 1:
    raise ValueError(f"confidence_interval: need a non-empty [S] array; got shape {values.shape}.")
  if not 0.0 < level < 1.0:
    raise ValueError(f"confidence_interval: level={level!r} must be in (0, 1).")
  from scipy import stats  # pylint: disable=g-import-not-at-top  (~0.9 s to import: only here)

  mean, se = mean_and_stderr(values)
  n = values.size
  t = float(stats.t.ppf(0.5 + level / 2, n - 1)) if n > 1 else math.nan
  half = t * float(se)
  return {"mean": float(mean), "stderr": float(se), "t": t, "half_width": half,
          "low": float(mean) - half, "high": float(mean) + half, "n": n}


def paired_difference(a: Any, b: Any, level: float = 0.95) -> dict[str, float]:
  """``a − b`` seed by seed (same seeds), with the :func:`confidence_interval`
  of the mean difference.

  Args:
    a, b: ``[S]`` a metric per seed for two variants trained on the same
      seeds.
    level: confidence level.

  Raises:
    ValueError: ``a`` and ``b`` have different shapes.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired_difference: shapes {a.shape} and {b.shape} differ.")
  return confidence_interval(a - b, level)


def linear_fit(y: Any, x: Any = None) -> tuple[np.ndarray, np.ndarray]:
  """Least-squares line ``y ≈ intercept + slope·x`` along the last axis.

  Args:
    y: ``[..., K]``.
    x: ``[K]`` (default ``1..K``, e.g. the task index).

  Returns:
    ``(slope, intercept)``, each ``[...]``.

  Raises:
    ValueError: fewer than two points, or ``x`` of the wrong length or constant.
  """
  y = np.asarray(y, dtype=np.float64)
  k = y.shape[-1] if y.ndim else 0
  x = np.arange(1, k + 1, dtype=np.float64) if x is None else np.asarray(x, np.float64)
  if k < 2 or x.shape != (k,):
    raise ValueError(f"linear_fit: need y [..., K] with K >= 2 and x [K]; got y {y.shape},"
                     f" x {x.shape}.")
  dx = x - x.mean()
  if not np.any(dx):
    raise ValueError("linear_fit: x is constant; the slope is undefined.")
  slope = (y - y.mean(axis=-1, keepdims=True)) @ dx / (dx @ dx)
  return slope, y.mean(axis=-1) - slope * x.mean()
