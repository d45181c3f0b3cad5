"""Stability-gap metrics: pure functions of accuracy curves.

Task-1 metrics (the paper's), on a Task-1 accuracy curve ``a`` of shape
``[..., K·P]`` with ``P`` points per task block (``P = I / eval_every``):

- ``final_k``: the last value of block ``k``; ``min_k``: its minimum.
- avg-ACC ``= mean_k final_k``.
- ``SG_k = (final_k − min_{k+1}) / final_k`` for ``k = 1..K−1``; avg-SG is
  the mean of the defined ones (``SG_k`` is undefined where ``final_k = 0``;
  ``sg_defined`` counts the defined transitions, avg-SG is NaN when none is).
- avg-min-ACC ``= mean of min_k over blocks 2..K``.
- WC-ACC ``= (1/K)·final_K + (1 − 1/K)·avg-min-ACC``.

De Lange et al.'s continual-evaluation metrics, on per-task curves
``[..., P_all, K]`` recorded at iterations ``t``:

- min-ACC ``= mean over tasks j < K of min_{t > end of task j} a_j(t)``.
- WC-ACC ``= (1/K)·a_K(T) + (1 − 1/K)·min-ACC`` with ``a_K(T)`` the last
  task's final accuracy.

Accuracy over the seen tasks (:func:`seen_tasks_accuracy`): the mean of the
per-task test accuracies of tasks ``1..k`` at each point of task ``k``.

Leading axes (seeds, ...) are kept throughout; :func:`summarize` reduces the
seed axis to mean ± standard error (:func:`ngm_jax.stats.mean_and_stderr`).

Units: accuracies and every metric here are fractions in ``[0, 1]`` (an
avg-SG of ``0.0287`` is a gap of 2.87 points), as in ``result.metrics`` and
``metrics.json``; the tables (``table.md``, the command's summary) print
them in percent.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ngm_jax.stats import mean_and_stderr

__all__ = [
    "task_blocks",
    "task1_metrics",
    "de_lange_metrics",
    "seen_tasks_accuracy",
    "summarize",
    "TABLE_METRICS",
    "METRIC_LABELS",
]

#: The columns of the paper's Table 1, in order.
TABLE_METRICS = ("avg_acc", "avg_min_acc", "wc_acc", "avg_sg")
#: Each metric's name in tables and figures (every one is a percentage; the
#: ``dl_`` ones are De Lange et al.'s, over every task).
METRIC_LABELS = {
    "avg_acc": "avg-ACC",
    "avg_min_acc": "avg-min-ACC",
    "wc_acc": "WC-ACC",
    "avg_sg": "avg-SG",
    "dl_min_acc": "min-ACC",
    "dl_wc_acc": "WC-ACC",
    "dl_final_acc_all": "final ACC, all tasks",
}


def task_blocks(curve: np.ndarray, num_tasks: int) -> np.ndarray:
  """``[..., K·P]`` → ``[..., K, P]``: the curve cut into task blocks."""
  curve = np.asarray(curve, dtype=np.float64)
  if curve.shape[-1] % num_tasks:
    raise ValueError(
        f"A curve of {curve.shape[-1]} points cannot be cut into {num_tasks}"
        " equal task blocks."
    )
  return curve.reshape(curve.shape[:-1] + (num_tasks, -1))


def task1_metrics(task1_acc: np.ndarray, num_tasks: int) -> dict[str, np.ndarray]:
  """The paper's metrics of a Task-1 accuracy curve ``[..., K·P]``.

  Returns:
    ``final`` and ``min`` ``[..., K]``; ``sg`` ``[..., K−1]`` (NaN where
    ``final_k = 0``); ``avg_acc``, ``avg_min_acc``, ``wc_acc``, ``avg_sg``
    (the mean of the defined ``SG_k``) and ``sg_defined`` (how many ``SG_k``
    are defined, out of ``K − 1``) ``[...]``. Accuracies keep the curve's
    unit (fractions in, fractions out); SG is a fraction of final_k.
  """
  if num_tasks < 2:
    raise ValueError(f"num_tasks={num_tasks}: the metrics need at least 2 tasks.")
  blocks = task_blocks(task1_acc, num_tasks)
  final, minimum = blocks[..., -1], blocks.min(axis=-1)
  with np.errstate(divide="ignore", invalid="ignore"):  # final_k = 0: SG_k is undefined (NaN)
    sg = np.where(final[..., :-1] > 0,
                  (final[..., :-1] - minimum[..., 1:]) / final[..., :-1], np.nan)
  avg_min = minimum[..., 1:].mean(axis=-1)
  defined = np.isfinite(sg)
  count = defined.sum(axis=-1)
  with np.errstate(divide="ignore", invalid="ignore"):  # no SG_k defined: avg-SG is NaN
    avg_sg = np.where(defined, sg, 0.0).sum(axis=-1) / count
  k = num_tasks
  return {
      "final": final,
      "min": minimum,
      "sg": sg,
      "avg_acc": final.mean(axis=-1),
      "avg_min_acc": avg_min,
      "wc_acc": final[..., -1] / k + (1.0 - 1.0 / k) * avg_min,
      "avg_sg": avg_sg,
      "sg_defined": count.astype(np.float64),
  }


def de_lange_metrics(
    task_acc: np.ndarray, iterations: np.ndarray, iterations_per_task: int
) -> dict[str, np.ndarray]:
  """De Lange et al.'s per-task min-ACC and WC-ACC at the end of the stream.

  Args:
    task_acc: ``[..., P_all, K]`` accuracy on each task's test set.
    iterations: ``[P_all]`` the iteration of each point (1-based).
    iterations_per_task: I; task ``j`` (0-based) ends at iteration ``(j+1)·I``.

  Returns:
    ``final_per_task`` ``[..., K]`` (every task's accuracy at the end),
    ``min_per_task`` ``[..., K−1]`` (each old task's minimum after it was
    learned), ``min_acc`` and ``wc_acc`` ``[...]``, and ``final_acc_all``
    ``[...]`` (mean final accuracy over all tasks).
  """
  task_acc = np.asarray(task_acc, dtype=np.float64)
  iterations = np.asarray(iterations)
  k = task_acc.shape[-1]
  if k < 2:
    raise ValueError(f"{k} task(s): min-ACC needs at least 2 tasks.")
  mins = []
  for j in range(k - 1):
    after = iterations > (j + 1) * iterations_per_task
    if not after.any():
      raise ValueError(f"No evaluation point after the end of task {j + 1}.")
    mins.append(task_acc[..., after, j].min(axis=-1))
  min_per_task = np.stack(mins, axis=-1)
  min_acc = min_per_task.mean(axis=-1)
  final = task_acc[..., -1, :]
  return {
      "final_per_task": final,
      "min_per_task": min_per_task,
      "min_acc": min_acc,
      "wc_acc": final[..., -1] / k + (1.0 - 1.0 / k) * min_acc,
      "final_acc_all": final.mean(axis=-1),
  }


def seen_tasks_accuracy(
    task_acc: np.ndarray, iterations: np.ndarray, iterations_per_task: int
) -> np.ndarray:
  """Accuracy over all tasks seen so far, at each per-task evaluation point.

  At iteration ``t`` the tasks seen are ``1..k`` with ``k = ⌈t / I⌉`` (so at
  ``t = k·I``, the end of task ``k``, they are ``1..k``).

  Args:
    task_acc: ``[..., P, K]`` test accuracy of each task (fraction).
    iterations: ``[P]`` the iteration (1-based) of each point.
    iterations_per_task: I.

  Returns:
    ``[..., P]`` the mean accuracy over tasks ``1..k`` at each point.

  Raises:
    ValueError: shapes that do not match, ``I < 1``, or an iteration < 1.
  """
  task_acc = np.asarray(task_acc, dtype=np.float64)
  iterations = np.asarray(iterations)
  if iterations_per_task < 1:
    raise ValueError(f"iterations_per_task={iterations_per_task}: must be >= 1.")
  if task_acc.ndim < 2 or iterations.shape != task_acc.shape[-2:-1]:
    raise ValueError(
        f"task_acc {task_acc.shape} must be [..., P, K] with P ="
        f" len(iterations) = {iterations.shape}."
    )
  if iterations.size and iterations.min() < 1:
    raise ValueError(f"iterations start at 1; got {iterations.min()}.")
  k = task_acc.shape[-1]
  seen = np.clip(-(-iterations // iterations_per_task), 1, k)  # ⌈t / I⌉
  mask = np.arange(k)[None, :] < seen[:, None]  # [P, K]
  return (task_acc * mask).sum(axis=-1) / seen


def _to_json(x):
  """Array → nested lists of floats, with ``None`` for a non-finite value."""
  x = np.asarray(x, dtype=np.float64)
  if x.ndim == 0:
    return float(x) if math.isfinite(x) else None
  return [_to_json(v) for v in x]


def summarize(
    curves: Mapping[str, np.ndarray],
    num_tasks: int,
    iterations_per_task: int,
    task_iterations: np.ndarray,
) -> dict[str, dict]:
  """All metrics of one optimizer's curves ``[seed, ...]``.

  Each metric is reported three ways: ``per_seed``; ``mean`` ± ``stderr`` over
  seeds; and ``of_mean_curve``, the metric computed once on the
  seed-averaged curve (as the paper's own scripts did).

  Args:
    curves: at least ``task1_acc`` ``[S, K·P]`` and ``task_acc``
      ``[S, P_all, K]``.
    num_tasks: K.
    iterations_per_task: I.
    task_iterations: ``[P_all]`` iterations of the ``task_acc`` points.

  Returns:
    ``{metric: {"per_seed", "mean", "stderr", "of_mean_curve"}}`` of plain
    Python floats and lists (JSON-ready; an undefined value is ``None``).
    avg-SG's mean and standard error are over the seeds where it is defined
    (``"seeds_defined"`` is added when that is not every seed); ``sg_defined``
    counts each seed's defined ``SG_k``.
  """
  task1 = np.asarray(curves["task1_acc"], dtype=np.float64)
  tasks = np.asarray(curves["task_acc"], dtype=np.float64)
  per_seed = task1_metrics(task1, num_tasks)
  on_mean = task1_metrics(task1.mean(axis=0), num_tasks)
  dl = de_lange_metrics(tasks, task_iterations, iterations_per_task)
  dl_mean = de_lange_metrics(tasks.mean(axis=0), task_iterations, iterations_per_task)
  per_seed.update({f"dl_{k}": v for k, v in dl.items()})
  on_mean.update({f"dl_{k}": v for k, v in dl_mean.items()})
  out = {}
  for name, values in per_seed.items():
    kept = values
    if name == "avg_sg":  # over the seeds with at least one defined SG_k
      kept = values[np.isfinite(values)]
    mean, se = mean_and_stderr(kept, axis=0) if len(kept) else (np.nan, np.nan)
    out[name] = {
        "per_seed": _to_json(values),
        "mean": _to_json(mean),
        "stderr": _to_json(se),
        "of_mean_curve": _to_json(on_mean[name]),
    }
    if name == "avg_sg" and len(kept) < len(values):
      out[name]["seeds_defined"] = int(len(kept))
  return out
