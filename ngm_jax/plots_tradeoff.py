"""Stability against plasticity: avg-SG against final accuracy over all tasks.

One point per method (mean over seeds), with standard-error bars on both
axes: down is a smaller Task-1 gap (stability), right a higher final
accuracy over all tasks (plasticity); the best methods sit bottom right.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ngm_jax.plots import LABELS, colours_for, finish, new_figure

__all__ = ["plot_tradeoff"]


def plot_tradeoff(
    metrics: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike | None = None,
    title: str = "",
    ax: Any = None,
):
  """Draws avg-SG (y, %) against final all-task accuracy (x, %) per method.

  Args:
    metrics: ``{label: metrics}`` of :func:`ngm_jax.metrics.summarize`
      (``avg_sg`` and ``dl_final_acc_all``, each with ``mean`` and ``stderr``
      as fractions).
    path: where to save the figure (None: not saved).
    title: the axes' title.
    ax: draw into these axes instead of a new figure.

  Returns:
    The figure.
  """
  fig = None
  if ax is None:
    fig = new_figure(figsize=(5.2, 4.2))
    ax = fig.add_subplot(1, 1, 1)
  palette = colours_for([label for label, m in metrics.items()
                         if m["dl_final_acc_all"]["mean"] is not None
                         and m["avg_sg"]["mean"] is not None])
  for label, m in metrics.items():
    x, y = m["dl_final_acc_all"], m["avg_sg"]
    if x["mean"] is None or y["mean"] is None:
      continue
    colour = palette[label]
    ax.errorbar(100 * x["mean"], 100 * y["mean"], xerr=100 * (x["stderr"] or 0.0),
                yerr=100 * (y["stderr"] or 0.0), fmt="o", color=colour, capsize=3,
                label=LABELS.get(label, label))
    ax.annotate(LABELS.get(label, label), (100 * x["mean"], 100 * y["mean"]), textcoords="offset points",
                xytext=(5, 4), fontsize=8, color=colour)
  ax.set_xlabel("final accuracy, all tasks (%)  → more plastic")
  ax.set_ylabel("avg-SG, Task 1 (%)  ↓ more stable")
  if title:
    ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  fig = fig or ax.figure
  if path is not None:
    finish(fig, path)
  return fig
