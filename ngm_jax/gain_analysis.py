"""The gain as a readout: its time average, its schedule, its mean per task block.

Pure NumPy functions of the gain curve of :func:`ngm_jax.train.make_train`:
the gain ``g`` (unitless) after every optimizer step, ``[S, T]`` (seeds
``S``), with ``T = K·I`` (``K`` tasks of ``I`` iterations). Task ``k``
(1-based) covers iterations ``((k−1)·I, k·I]``.

- Time-averaged gain ``ḡ``: the mean of ``g`` over iterations (per seed) and
  over seeds; the constant gain of the ``g0_sgd`` ablation that matches NGM's
  average step size.
- Block gain ``ḡ_k``: the mean of ``g`` over task ``k``'s iterations (or over
  its later iterations only, leaving out the transient after the boundary),
  per seed, ``[S, K]``; its trend over ``k`` (a line fitted per seed, then
  mean ± ``t_{(1+level)/2, S−1}``·s.e. of the slopes,
  :func:`ngm_jax.stats.confidence_interval`) tests the gain as a readout of
  task complexity.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ngm_jax.metrics import task_blocks
from ngm_jax.stats import confidence_interval, linear_fit, mean_and_stderr

__all__ = ["TimeAveragedGain", "time_averaged_gain", "gain_schedule", "block_mean_gain",
           "gain_trend"]


class TimeAveragedGain(NamedTuple):
  """The time-averaged gain ``ḡ`` of a gain curve ``[S, T]``.

  Attributes:
    mean: ``ḡ``, the mean over iterations and seeds (unitless float).
    per_seed: ``[S]`` the mean over iterations of each seed.
    stderr: the standard error of ``per_seed`` over seeds (NaN for one seed).
  """

  mean: float
  per_seed: np.ndarray
  stderr: float


def _gain_curve(gain: Any) -> np.ndarray:
  gain = np.asarray(gain, dtype=np.float64)
  if gain.ndim != 2 or gain.shape[0] < 1 or gain.shape[1] < 1:
    raise ValueError(
        f"A gain curve must be [seeds, iterations] with at least one of each;"
        f" got shape {gain.shape}."
    )
  if not np.all(np.isfinite(gain)):
    raise ValueError("The gain curve holds non-finite values.")
  return gain


def time_averaged_gain(gain: Any) -> TimeAveragedGain:
  """``ḡ``: the gain averaged over iterations and seeds, and per seed.

  Every seed has the same ``T`` iterations, so ``ḡ`` is also the mean of the
  per-seed means.

  Args:
    gain: ``[S, T]`` the gain after every iteration (unitless).

  Returns:
    A :class:`TimeAveragedGain`.

  Raises:
    ValueError: ``gain`` is not a finite ``[S, T]`` array.
  """
  gain = _gain_curve(gain)
  per_seed = gain.mean(axis=1)
  _, se = mean_and_stderr(per_seed)
  return TimeAveragedGain(float(gain.mean()), per_seed, float(se))


def gain_schedule(gain: Any, g0: float) -> np.ndarray:
  """The gain each step of a run *used*, from the gain recorded after each.

  A training curve records the gain after every step's update (the gain the
  next step trains with); step 0 trains with the initial gain ``g0``. This
  is the schedule that :func:`ngm_jax.gain.replayed_gain_sgd` replays.

  Args:
    gain: ``[S, T]`` the gain after every iteration (unitless).
    g0: the initial gain (NGM's resting gain), ``> 0``.

  Returns:
    ``[S, T]`` float32: ``[g0, gain[:, 0], ..., gain[:, T−2]]`` per seed.

  Raises:
    ValueError: ``gain`` is not a finite ``[S, T]`` array, or ``g0`` is not
      a finite positive number.
  """
  gain = _gain_curve(gain)
  if not (math.isfinite(g0) and g0 > 0):
    raise ValueError(f"gain_schedule: g0={g0!r} must be a finite number > 0.")
  first = np.full((gain.shape[0], 1), g0)
  return np.concatenate([first, gain[:, :-1]], axis=1).astype(np.float32)


def block_mean_gain(gain: Any, num_tasks: int, skip: int = 0) -> np.ndarray:
  """``ḡ_k``: the mean gain over each task's block of iterations, per seed.

  Args:
    gain: ``[S, T]`` the gain after every iteration, ``T = K·I``.
    num_tasks: K.
    skip: leave out the first ``skip`` iterations of every block (``0 <= skip
      < I``), e.g. ``I // 2`` to read the settled gain without the transient
      after each boundary (and, in block 1, the learning from scratch).

  Returns:
    ``[S, K]``; entry ``[s, k−1]`` is seed ``s``'s mean gain over iterations
    ``((k−1)·I + skip, k·I]``.

  Raises:
    ValueError: a bad gain curve, ``T`` not a multiple of ``K``, or a bad
      ``skip``.
  """
  if num_tasks < 1:
    raise ValueError(f"num_tasks={num_tasks}: must be >= 1.")
  blocks = task_blocks(_gain_curve(gain), num_tasks)
  if not (isinstance(skip, (int, np.integer)) and 0 <= skip < blocks.shape[-1]):
    raise ValueError(f"skip={skip!r}: must be an integer in [0, {blocks.shape[-1]}), the"
                     " iterations per task.")
  return blocks[..., skip:].mean(axis=-1)


def gain_trend(gain: Any, num_tasks: int, level: float = 0.95, skip: int = 0
               ) -> dict[str, Any]:
  """The block gain ``ḡ_k`` against the task index ``k``, with the fitted slope.

  A line ``ḡ_k ≈ a + b·k`` (``k = 1..K``) is fitted to each seed; the slope
  ``b`` (gain per task) is reported as mean ± ``t_{(1+level)/2, S−1}``·s.e.
  over seeds.

  Args:
    gain: ``[S, T]`` the gain after every iteration.
    num_tasks: K >= 2.
    level: confidence level of the slope's interval.
    skip: iterations left out at the start of every block
      (:func:`block_mean_gain`).

  Returns:
    ``block_gain`` ``[S, K]``; ``block_mean``, ``block_stderr`` ``[K]``;
    ``slope_per_seed``, ``intercept_per_seed`` ``[S]``; ``slope`` (the dict
    of :func:`ngm_jax.stats.confidence_interval`); ``intercept`` (mean over
    seeds); ``time_averaged`` (ḡ over every iteration), ``level`` and
    ``skip``. Arrays are NumPy arrays.

  Raises:
    ValueError: fewer than 2 tasks, or a bad gain curve.
  """
  if num_tasks < 2:
    raise ValueError(f"gain_trend: num_tasks={num_tasks}; a slope needs at least 2 tasks.")
  blocks = block_mean_gain(gain, num_tasks, skip)
  slope, intercept = linear_fit(blocks)
  mean, se = mean_and_stderr(blocks)
  return {
      "block_gain": blocks,
      "block_mean": mean,
      "block_stderr": se,
      "slope_per_seed": slope,
      "intercept_per_seed": intercept,
      "slope": confidence_interval(slope, level),
      "intercept": float(intercept.mean()),
      "time_averaged": time_averaged_gain(gain).mean,
      "level": level,
      "skip": skip,
  }
